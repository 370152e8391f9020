"""``publish.py serve``: the static site and the live dashboards on one address.

One standalone Voila application (not Voila as a jupyter_server extension) serves everything:

* ``/`` and below: the built site folder, files of an allowlisted kind only;
* ``/dashboards/<report>/``: the report's notebook run live in the ``templates/grid`` template;
* ``/voila/...`` and ``/api/kernels/<id>/channels``: Voila's assets and kernel websockets.

Standalone Voila is chosen because its kernel manager only lets widget (comm) and
kernel-info/shutdown messages through a kernel websocket: a viewer's ``execute_request`` is
dropped. Voila as a server extension does not filter, and would also bring Jupyter's
contents and terminals APIs along. Sources are stripped and tracebacks are not sent.

Dashboard kernels are forked from warm fork servers (``lab2land.serve_warm``) where a build's
would be, and start cold elsewhere; the servers are separate processes that die with this one.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import tempfile
from pathlib import Path

import psutil
import tornado.ioloop
from traitlets.config import Config as TraitletsConfig
from voila.app import Voila
from voila.paths import collect_static_paths, collect_template_paths

from lab2land import dashboards as dash
from lab2land import serve_warm
from lab2land.config import Config
from lab2land.dashboard_paint import PaintAssetsHandler
from lab2land.dashboard_refresh import Refresher
from lab2land.errors import ServeError
from lab2land.forked import stop_servers
from lab2land.serve_handlers import (
    DashboardHandler,
    DashboardKernelManager,
    KernelChannelsHandler,
    LabExtensionsHandler,
    SanitizingConnection,
    SiteHandler,
    TemplateAssetsHandler,
    TrailingSlashHandler,
    end_failed_pages,
)
from lab2land.templating import TEMPLATES_DIR

GRID_TEMPLATE_DIR = TEMPLATES_DIR / "grid"
# Our template's index.html.j2 comes first on the template path; it is registered under the
# name of its base, "lab", so the assets it inherits resolve through Voila's own static handler
# (which only knows templates installed in Jupyter's data folders).
TEMPLATE = "lab"
# A closed tab's kernel is shut down by the page's unload request or, failing that, soon after
# its websocket closes (lab2land.serve_kernels); culling idle kernels without a viewer stays as
# the safety net. Overridable for tests and busy servers.
CULL_IDLE_SECONDS = int(os.environ.get("LAB2LAND_CULL_IDLE_SECONDS", "120"))
CULL_INTERVAL_SECONDS = int(os.environ.get("LAB2LAND_CULL_INTERVAL_SECONDS", "30"))
# Messages a viewer's browser may send to a kernel: widget traffic, kernel info, shutdown.
ALLOWED_MESSAGES = ["comm_open", "comm_close", "comm_msg", "comm_info_request", "kernel_info_request",
                    "shutdown_request"]

FRONTEND_EXTENSIONS = ["@voila-dashboards/widgets-manager8", "@voila-dashboards/widgets-manager7",
                       "@jupyter-widgets/jupyterlab-manager",
                       "jupyterlab-plotly", "jupyterlab_pygments"]

# What one dashboard kernel takes (a pandas/plotly/ipywidgets kernel after its notebook ran),
# for the default of [serve] max_kernels.
KERNEL_BYTES = 150 * 2**20
MIN_KERNELS = 2

log = logging.getLogger("lab2land.serve")


class DashboardServer(Voila):
    """Voila, serving lab2land's dashboards under ``/dashboards/`` and the site under ``/``."""

    def __init__(self, *, project: Config, dashboards: dict[str, dash.Dashboard], runtime_dir: Path, **kwargs):
        super().__init__(**kwargs)
        self.project = project
        self.dashboards = dashboards
        self.runtime_dir = runtime_dir

    def setup_template_dirs(self):
        # Our template is not installed in a Jupyter data folder: put it in front of Voila's lab.
        self.template_paths = [str(GRID_TEMPLATE_DIR), *collect_template_paths(["voila", "nbconvert"], "lab")]
        # Our page script (templates/grid/static) is served at /voila/static/ beside Voila's.
        self.static_paths = [str(GRID_TEMPLATE_DIR / "static"), *collect_static_paths(["voila", "nbconvert"], "lab"),
                             *self.static_paths]

    def init_settings(self):
        settings = super().init_settings()
        # Voila passes the same allowlist; set it again so that it is certain, and checked, here.
        self.kernel_manager.allowed_message_types = ALLOWED_MESSAGES
        settings["lab2land_dashboards"] = self.dashboards
        settings["lab2land_runtime_dir"] = self.runtime_dir
        settings["lab2land_site_title"] = self.project.site.title
        return settings

    def init_handlers(self):
        # Left out besides: /voila/query/<kernel> (preheated notebooks that wait for their
        # viewer's query string; ours get parameters injected instead) is a websocket Voila does
        # not protect with the token, and it handed anyone the viewer's query, token included;
        # /logout answered 500 (there is no session to end: the token is the sign-in).
        keep = ("/api/kernels/", "/voila/static/", "/voila/api/themes/", "/voila/api/shutdown/",
                "/voila/labextensions/", "/login")
        handlers = [h for h in super().init_handlers() if h[0].startswith(keep)]
        handlers = [(h[0], KernelChannelsHandler, *h[2:]) if h[0].endswith("/channels") else h for h in handlers]
        handlers = [(h[0], LabExtensionsHandler, *h[2:]) if h[0].startswith("/voila/labextensions/") else h
                    for h in handlers]
        voila_kwargs = {"template_paths": self.template_paths, "config": self.config,
                        "voila_configuration": self.voila_configuration}
        # Voila's tree, render, contents and files handlers are left out on purpose: only the
        # prepared dashboards and the built site are reachable.
        return [
            (r"/voila/templates/(.*)", TemplateAssetsHandler),
            *handlers,
            (r"/lab2land/static/(.*)", PaintAssetsHandler),
            (r"/dashboards/([^/]+)", TrailingSlashHandler),
            (r"/dashboards/([^/]+)/", DashboardHandler, voila_kwargs),
            (r"/(.*)", SiteHandler, {"path": str(self.project.output_dir), "default_filename": "index.html"}),
        ]

    def listen(self):
        try:
            self.app.listen(self.port, self.ip)
        except OSError as exc:
            hint = "choose another --port" if exc.errno == errno.EADDRINUSE else "check --host"
            raise ServeError(f"cannot listen on {self.ip}:{self.port}: {exc.strerror}; {hint}") from None
        log.info("serving %s and %d dashboard(s) at http://%s:%d/", self.project.output_dir,
                 len(self.dashboards), self.ip, self.port)
        print(f"lab2land: serving on http://{self.ip}:{self.port}/ (Ctrl-C to stop)", flush=True)
        self.ioloop = tornado.ioloop.IOLoop.current()
        # New builds' data for new viewers, without a restart (lab2land.dashboard_refresh).
        refresher = Refresher(self.project, self.dashboards, self.runtime_dir, self.kernel_manager)
        self.ioloop.add_callback(refresher.start)
        try:
            self.ioloop.start()
        except KeyboardInterrupt:
            log.info("stopping")
        finally:
            self.stop()

    def stop(self):
        children = psutil.Process().children(recursive=True)
        try:
            super().stop()
        finally:
            stop_servers()  # the fork servers, and any kernel of theirs still there
            shutil.rmtree(self.runtime_dir, ignore_errors=True)
            _reap(children)


def _reap(processes: list[psutil.Process], timeout: float = 5.0) -> None:
    """Make sure kernels that did not exit on shutdown_all (e.g. still starting) are gone."""
    alive = [p for p in processes if p.is_running()]
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    _gone, alive = psutil.wait_procs(alive, timeout=timeout)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()


def default_max_kernels() -> int:
    """``[serve] max_kernels`` when not set: what the available memory holds, at least 2."""
    return max(MIN_KERNELS, psutil.virtual_memory().available // KERNEL_BYTES)


def _voila_config(dashboards: dict[str, dash.Dashboard], runtime_dir: Path, host: str, port: int,
                  token: str | None, max_kernels: int = 0,
                  preloads: dict[str, list[str]] | None = None) -> TraitletsConfig:
    c = TraitletsConfig()
    c.Voila.root_dir = str(runtime_dir)
    c.Voila.ip = host
    c.Voila.port = port
    c.Voila.open_browser = False
    c.Voila.config_file_paths = []  # no voila.json from the current folder changes what viewers get
    c.Voila.token = token or None
    c.VoilaConfiguration.template = TEMPLATE
    c.VoilaConfiguration.strip_sources = True
    c.VoilaConfiguration.show_tracebacks = False
    c.VoilaConfiguration.allow_template_override = "NO"
    c.VoilaConfiguration.allow_theme_override = "NO"
    c.VoilaConfiguration.file_allowlist = []
    # Only the front-end extensions dashboards use: others installed in the environment (e.g.
    # Jupyter Notebook's) fail in Voila's page and slow its start.
    c.VoilaConfiguration.extension_allowlist = FRONTEND_EXTENSIONS
    c.VoilaConfiguration.preheat_kernel = True
    c.VoilaConfiguration.default_pool_size = 0
    c.VoilaConfiguration.multi_kernel_manager_class = DashboardKernelManager
    c.VoilaExecutor.cell_error_instruction = ""
    c.VoilaExecutor.timeout_func = dash.cell_timeout  # the report's `timeout`, as for the static pages
    # One sanitizer for the static pages and the dashboards: the grid template cleans outputs
    # and markdown with these, and the kernel websocket cleans what the kernel sends live.
    c.VoilaExporter.filters = {"l2l_clean_html": "lab2land.sanitize.clean_html",
                               "l2l_clean_output": "lab2land.sanitize.clean_dashboard_output",
                               # The first paint, before Voila's front end (lab2land.dashboard_paint).
                               **{f"l2l_{name}": f"lab2land.dashboard_paint.{func}" for name, func in (
                                   ("paint_kind", "output_kind"), ("static_html", "static_html"),
                                   ("script_json", "script_json"), ("plotly_height", "plotly_height"),
                                   ("page_paint", "page_paint"), ("extensions", "extensions"))}}
    c.Voila.kernel_websocket_connection_class = SanitizingConnection
    c.VoilaKernelManager.kernel_pools_config = {
        "default": {"pool_size": 0},
        **{d.default_path: {"pool_size": d.pool_size} for d in dashboards.values()},
    }
    c.DashboardKernelManager.kernel_dirs = {name: str(d.cwd) for name, d in dashboards.items()}
    c.DashboardKernelManager.max_kernels = max_kernels
    # Kernels forked from warm fork servers where they apply (lab2land.serve_warm), cold elsewhere.
    c.DashboardKernelManager.kernel_manager_class = "lab2land.serve_warm.ForkingKernelManager"
    c.DashboardKernelManager.kernel_preload = preloads or {}
    c.MappingKernelManager.cull_idle_timeout = CULL_IDLE_SECONDS
    c.MappingKernelManager.cull_interval = CULL_INTERVAL_SECONDS
    c.MappingKernelManager.cull_connected = False  # a viewer's open tab keeps its kernel
    c.MappingKernelManager.cull_busy = False
    return c


def serve(config: Config, *, host: str = "127.0.0.1", port: int = 8866, token: str | None = None) -> None:
    """Serve the built site and every report's dashboard until Ctrl-C or SIGTERM.

    Args:
        config: The project's configuration; ``config.output_dir`` is the site served at ``/``.
        host: Interface to bind; the default only accepts connections from this machine.
        port: TCP port.
        token: If given (or ``LAB2LAND_TOKEN`` is set), every page and dashboard needs it,
            once, as ``?token=...``; a cookie then keeps the viewer signed in.

    Raises:
        ConfigError: a dashboard's default parameters do not fit its notebook.
        ServeError: the address cannot be bound.
    """
    token = token or os.environ.get("LAB2LAND_TOKEN") or None
    if host not in ("127.0.0.1", "localhost", "::1") and not token:
        log.warning("serving on %s without a token: anyone who can reach this address can use it", host)
    dashboards = dash.collect(config)
    runtime_dir = Path(tempfile.mkdtemp(prefix="lab2land-dashboards-"))
    try:
        for dashboard in dashboards.values():
            dash.write_default(dashboard, runtime_dir)
        max_kernels = config.serve.max_kernels or default_max_kernels()
        pooled = sum(d.pool_size for d in dashboards.values())
        if pooled >= max_kernels:
            log.warning("[serve] max_kernels = %d but the dashboards' pools take %d: viewers may find it busy",
                        max_kernels, pooled)
        preloads = serve_warm.plan(config, dashboards)
        serve_warm.start_servers(dashboards, preloads)
        end_failed_pages()
        app = DashboardServer(config=_voila_config(dashboards, runtime_dir, host, port, token, max_kernels, preloads),
                              dashboards=dashboards, runtime_dir=runtime_dir, project=config)
        app.initialize([])
        app.start()
    finally:
        stop_servers()
        shutil.rmtree(runtime_dir, ignore_errors=True)
