"""Tornado handlers and the kernel manager behind ``publish.py serve`` (see ``lab2land.serve``)."""

from __future__ import annotations

import html
import logging
import os
import re
from pathlib import Path
from urllib.parse import quote

from jupyter_client.session import DELIM
from jupyter_server._tz import utcnow
from jupyter_server.base.handlers import FileFindHandler, JupyterHandler
from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado import web
from traitlets import Dict
from voila.static_file_handler import TemplateStaticFileHandler
from voila.tornado.handler import TornadoVoilaHandler
from voila.tornado.kernel_websocket_handler import VoilaKernelWebsocketHandler

from lab2land import dashboards as dash
from lab2land import sanitize
from lab2land.params import ParameterError

log = logging.getLogger("lab2land.serve")

# Kinds of file a built site is made of. Anything else in the site folder (the executed
# notebooks, data snapshots, scripts) is not served.
SITE_SUFFIXES = {".html", ".css", ".js", ".mjs", ".json", ".svg", ".png", ".jpg", ".jpeg", ".gif", ".webp",
                 ".ico", ".woff", ".woff2", ".ttf", ".xml", ".txt", ".map"}
_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:50em;margin:3em auto;padding:0 1em;color:#222}}
li{{margin:.3em 0}} code{{background:#f3f3f3;padding:0 .2em}}</style></head>
<body><h1>{title}</h1>{body}<p><a href="/">Back to the reports</a></p></body></html>"""


def page(title: str, body_html: str) -> str:
    """A small self-contained HTML page (no external resources); ``title`` is escaped."""
    return _PAGE.format(title=html.escape(title), body=body_html)


class PlainErrorsMixin:
    """Errors as a short page: never a traceback, never the server's template assets."""

    def write_error(self, status_code: int, **kwargs) -> None:
        reason = self._reason if hasattr(self, "_reason") else "Error"
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(page(f"{status_code} {reason}", "<p>The page could not be served.</p>"))


# How long a kernel handed to a viewer's page may wait for its websocket before the idle culler
# may take it (a page on a busy machine loads slowly; a tab closed before it connected frees it).
PAGE_GRACE_S = int(os.environ.get("LAB2LAND_PAGE_GRACE_SECONDS", "120"))

class DashboardKernelManager(AsyncMappingKernelManager):
    """Runs each dashboard's kernels in the folder of its source notebook.

    Voila starts kernels in the folder of the notebook it serves, which for lab2land is the
    private runtime folder of prepared notebooks; the notebooks expect their own folder.
    """

    kernel_dirs = Dict(config=True, help="Folder to run kernels in, by report name.")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.viewed: set[str] = set()  # kernels a viewer's websocket has been connected to
        self.handed_out: dict = {}  # kernel id -> when the culler first saw it out of the pool

    async def cull_kernels(self):
        # The culler only knows "idle, no connection", which is also what a kernel looks like
        # while its viewer's page is still loading (a slow page on a busy machine takes longer
        # than the idle timeout before its websocket opens: the viewer got "This dashboard
        # failed"). So restart the idle clock of kernels no viewer has used yet: those waiting
        # in a preheated pool, and those handed to a page whose websocket has not opened, for
        # up to PAGE_GRACE_S. A kernel that had a viewer is culled as before once they leave.
        now = utcnow()
        pooled = set()
        for pool in getattr(self, "_pools", {}).values():
            for task in pool:
                if task.done() and not task.cancelled() and task.exception() is None:
                    pooled.add(task.result().get("kernel_id"))
        connected = getattr(self, "_kernel_connections", {})
        for kernel_id, kernel in list(self._kernels.items()):
            if connected.get(kernel_id, 0) > 0:
                self.viewed.add(kernel_id)
            elif kernel_id in pooled:
                kernel.last_activity = now
            elif kernel_id not in self.viewed:
                handed = self.handed_out.setdefault(kernel_id, now)
                if (now - handed).total_seconds() < PAGE_GRACE_S:
                    kernel.last_activity = now
        await super().cull_kernels()
        for kernel_id in set(self.handed_out) - set(self._kernels):
            self.handed_out.pop(kernel_id, None)
            self.viewed.discard(kernel_id)

    def cwd_for_path(self, path, **kwargs):
        report = str(path).replace(os.sep, "/").strip("/").split("/", 1)[0]
        if report in self.kernel_dirs:
            return self.kernel_dirs[report]
        return super().cwd_for_path(path, **kwargs)


class TemplateAssetsHandler(PlainErrorsMixin, TemplateStaticFileHandler):
    """Voila's template assets, refusing malformed paths up front (Voila's answers them with a
    failed assertion, a 500)."""

    def parse_url_path(self, path):
        parts = path.split("/")
        if len(parts) < 3 or parts[1] != "static" or any(p in ("", ".", "..") for p in parts):
            raise web.HTTPError(404)
        return super().parse_url_path(path)


class LabExtensionsHandler(FileFindHandler):
    """Front-end extension files. Voila marks them all ``no-cache``; webpack's content-hashed
    chunks (``remoteEntry.<hash>.js``, ``<id>.<hash>.js``) never change under their name, so a
    returning viewer's browser may keep them without asking again."""

    HASHED = re.compile(r"/static/[\w.-]*\.[0-9a-f]{16,}\.js")

    def set_headers(self) -> None:
        super().set_headers()
        if self.HASHED.search(self.request.path) and self.get_status() == 200:
            self.set_header("Cache-Control", "public, max-age=31536000, immutable")


class KernelChannelsHandler(PlainErrorsMixin, VoilaKernelWebsocketHandler):
    """Voila's kernel websocket; a refused connection (e.g. the kernel has gone) is answered
    with a plain error instead of Jupyter's error page, which needs assets we do not serve."""


class SanitizingConnection(ZMQChannelsWebsocketConnection):
    """The kernel websocket, cleaning what the kernel sends before the viewer's browser gets it.

    Voila's front end renders what arrives live as trusted: an HTML widget's new value, an
    Output widget's captured output, a display from a widget callback. Each goes through the
    static pages' sanitizer (:mod:`lab2land.sanitize`) here, as the page's first render does
    in the grid template. Widget updates carry no model name, so each comm's is remembered
    from its ``comm_open`` or from the ``update_states`` reply the widget manager asks for.
    """

    OUTPUT_MESSAGES = {"display_data", "execute_result", "update_display_data"}
    WIDGET_MESSAGES = {"comm_open", "comm_msg"}

    def handle_outgoing_message(self, stream: str, outgoing_msg: list) -> None:
        idents, frames = self.session.feed_identities(outgoing_msg)
        msg_type = self.session.unpack(bytes(frames[1])).get("msg_type")
        if msg_type in self.OUTPUT_MESSAGES | self.WIDGET_MESSAGES:
            content = self.session.unpack(bytes(frames[4]))
            content = (sanitize.clean_dashboard_output(content) if msg_type in self.OUTPUT_MESSAGES
                       else self._clean_widget_message(content))
            if content is None:
                return  # nothing but script: never sent
            frames = [None, *frames[1:4], self.session.pack(content), *frames[5:]]
            frames[0] = self.session.sign(frames[1:5])  # re-signed: the content changed
            outgoing_msg = [*idents, DELIM, *frames]
        super().handle_outgoing_message(stream, outgoing_msg)

    def _clean_widget_message(self, content: dict) -> dict:
        models = self.__dict__.setdefault("_l2l_models", {})  # comm id -> [model name, allow_html]
        data = content.get("data")
        if not isinstance(data, dict):
            return content
        comm_id = content.get("comm_id")
        if isinstance(data.get("state"), dict):
            state = data["state"]
            known = models.setdefault(comm_id, [state.get("_model_name"), False])
            known[0] = state.get("_model_name", known[0])
            known[1] = bool(state.get("description_allow_html", known[1]))
            data = {**data, "state": sanitize.clean_widget_state(known[0], state, allow_html=known[1])}
        if data.get("method") == "update_states" and isinstance(data.get("states"), dict):
            states = {}
            for model_id, model in data["states"].items():
                if isinstance(model, dict) and isinstance(model.get("state"), dict):
                    allow = bool(model["state"].get("description_allow_html", False))
                    models[model_id] = [model.get("model_name"), allow]
                    model = {**model, "state": sanitize.clean_widget_state(model.get("model_name"), model["state"])}
                states[model_id] = model
            data = {**data, "states": states}
        return {**content, "data": data}


class TrailingSlashHandler(PlainErrorsMixin, JupyterHandler):
    """``/dashboards/<report>`` → ``/dashboards/<report>/`` (keeping the query string)."""

    @web.authenticated
    def get(self, report):
        query = f"?{self.request.query}" if self.request.query else ""
        # Quoted: tornado refuses a Location header with control characters (``%00``) with a 500.
        self.redirect(f"/dashboards/{quote(report, safe='')}/{query}")


class DashboardHandler(PlainErrorsMixin, TornadoVoilaHandler):
    """A report's live dashboard, default parameters or validated query parameters."""

    @property
    def content_security_policy(self) -> str:
        # The static pages' policy (no inline script), plus the kernel's websocket.
        return sanitize.content_security_policy(widgets=True, live=True)

    @web.authenticated
    async def get(self, report):
        dashboards: dict[str, dash.Dashboard] = self.settings["lab2land_dashboards"]
        dashboard = dashboards.get(report)
        if dashboard is None:
            self._unknown(report, dashboards)
            return
        arguments = {k: v for k, v in self.request.arguments.items() if k != "token"}
        try:
            values = dash.parse_query(dashboard, arguments) if arguments else dashboard.defaults
        except ParameterError as exc:
            self._bad_query(dashboard, exc)
            return
        runtime_dir: Path = self.settings["lab2land_runtime_dir"]
        self.notebook_path = dash.write_variant(dashboard, values, runtime_dir)
        started = False
        try:
            async for snippet in self.get_generator(path=None):
                started = True
                self.write(snippet)
                self.flush()
        except Exception:
            # A failing start (missing kernel, dead kernel) must not take the server down or
            # show a traceback: the details go to the log, the viewer gets a notice.
            log.exception("dashboard %r failed (notebook %s)", report, dashboard.notebook)
            notice = ('<div class="l2l-failed" role="alert"><strong>This dashboard failed.</strong> '
                      "It could not be computed; the details are in the server's log.</div>")
            if started:
                self.write(notice)
            else:
                self.set_status(500)
                self.write(page(f"{dashboard.title}: this dashboard failed", notice))

    def _unknown(self, report: str, dashboards: dict) -> None:
        self.set_status(404)
        items = "".join(f'<li><a href="/dashboards/{html.escape(n)}/">{html.escape(d.title)}</a></li>'
                        for n, d in sorted(dashboards.items())) or "<li>none (set dashboard = true)</li>"
        self.finish(page("No such dashboard", f"<p>There is no dashboard <code>{html.escape(report)}</code>. "
                                              f"Dashboards:</p><ul>{items}</ul>"))

    def _bad_query(self, dashboard: dash.Dashboard, exc: ParameterError) -> None:
        self.set_status(400)
        problems = "".join(f"<li>{html.escape(p)}</li>" for p in exc.problems)
        valid = "".join(f"<li><code>{html.escape(p.describe())}</code></li>"
                        for p in (dashboard.declared or {}).values()) or "<li>none</li>"
        self.finish(page(f"{dashboard.title}: invalid parameters",
                         f"<p>The query string has problems:</p><ul>{problems}</ul>"
                         f"<p>This dashboard's parameters:</p><ul>{valid}</ul>"
                         f'<p><a href="/dashboards/{html.escape(dashboard.report)}/">Open it with its '
                         f"default parameters</a></p>"))


class SiteHandler(PlainErrorsMixin, JupyterHandler, web.StaticFileHandler):
    """The built site: allowlisted kinds of file inside the site folder, nothing else."""

    @web.authenticated
    def head(self, path):
        return self.get(path, include_body=False)

    @web.authenticated
    def get(self, path, include_body=True):
        if "\x00" in path:
            raise web.HTTPError(404)  # the file system would refuse it with a ValueError, a 500
        if path.strip("/") == "" and not (Path(self.root) / "index.html").is_file():
            self._no_site()
            return None
        return web.StaticFileHandler.get(self, path, include_body=include_body)

    def validate_absolute_path(self, root, absolute_path):
        real_root = os.path.realpath(root)
        real = os.path.realpath(absolute_path)
        if os.path.commonpath([real_root, real]) != real_root:
            raise web.HTTPError(404)  # outside the site, e.g. through a symbolic link
        parts = Path(real).relative_to(real_root).parts
        if any(part.startswith(".") for part in parts):
            raise web.HTTPError(404)
        if os.path.isfile(real) and Path(real).suffix.lower() not in SITE_SUFFIXES:
            raise web.HTTPError(404)
        return super().validate_absolute_path(root, absolute_path)

    def _no_site(self) -> None:
        dashboards = self.settings["lab2land_dashboards"]
        items = "".join(f'<li><a href="/dashboards/{html.escape(n)}/">{html.escape(d.title)}</a></li>'
                        for n, d in sorted(dashboards.items())) or "<li>none</li>"
        self.set_status(404)
        self.finish(page(self.settings["lab2land_site_title"],
                         "<p>The site has not been built yet: run <code>publish.py build</code>.</p>"
                         f"<p>Dashboards:</p><ul>{items}</ul>"))
