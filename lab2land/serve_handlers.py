"""Tornado handlers behind ``publish.py serve`` (see ``lab2land.serve``; kernels: ``serve_kernels``)."""

from __future__ import annotations

import html
import json
import logging
import os
import re
from pathlib import Path
from urllib.parse import quote

import voila.handler
from jupyter_client.session import DELIM
from jupyter_server.base.handlers import FileFindHandler, JupyterHandler
from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection
from tornado import web
from voila.notebook_renderer import NotebookRenderer
from voila.static_file_handler import TemplateStaticFileHandler
from voila.tornado.handler import TornadoVoilaHandler
from voila.tornado.kernel_websocket_handler import VoilaKernelWebsocketHandler

from lab2land import dashboards as dash
from lab2land import sanitize
from lab2land.params import ParameterError
from lab2land.serve_kernels import AtCapacity, DashboardKernelManager, page_kernels
from lab2land.store import MANIFEST

log = logging.getLogger("lab2land.serve")

# Kinds of file a built site is made of. Anything else in the site folder (data snapshots,
# scripts) is not served; a version's executed notebook only if its manifest names it (as
# the version page links it; `publish_notebook = false` leaves it out of both).
SITE_SUFFIXES = {".html", ".css", ".js", ".mjs", ".json", ".svg", ".png", ".jpg", ".jpeg", ".gif", ".webp",
                 ".ico", ".woff", ".woff2", ".ttf", ".xml", ".txt", ".map"}
BUSY_RETRY_S = 10  # the Retry-After of the "busy" page
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


def _published_notebook(path: str) -> bool:
    """True if ``path`` is the executed notebook its version folder's manifest names."""
    file = Path(path)
    if file.suffix.lower() != ".ipynb":
        return False
    try:
        manifest = json.loads((file.parent / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("executed_notebook") == file.name


class TrailingSlashHandler(PlainErrorsMixin, JupyterHandler):
    """``/dashboards/<report>`` → ``/dashboards/<report>/`` (keeping the query string)."""

    @web.authenticated
    def get(self, report):
        query = f"?{self.request.query}" if self.request.query else ""
        # Quoted: tornado refuses a Location header with control characters (``%00``) with a 500.
        self.redirect(f"/dashboards/{quote(report, safe='')}/{query}")


class EndingNotebookRenderer(NotebookRenderer):
    """Voila's page renderer, whose page ends when rendering fails instead of never.

    Voila renders a page in a task that feeds a queue, and streams the queue with keep-alives
    until the task puts its end marker: a task that raised (the kernel died before it replied,
    so the template's ``kernel_start`` failed) never puts it, and the page streamed keep-alives
    for ever. Here the rendering ends normally instead and the handler learns why
    (``DashboardHandler.page_failure``), so it can end the page with its failure notice.
    """

    def generate_content_generator(self, kernel_id=None, kernel_future=None):
        snippets = super().generate_content_generator(kernel_id, kernel_future)
        handler = self.request_handler

        async def ending():
            try:
                async for item in snippets:
                    yield item
            except Exception as exc:  # noqa: BLE001 - re-raised by the handler, which logs it
                handler.page_failure = exc

        return ending()


def end_failed_pages() -> None:
    """Make Voila's page handler render with :class:`EndingNotebookRenderer` (Voila 0.5 has no
    setting for its renderer class; its handler looks the name up in its module)."""
    voila.handler.NotebookRenderer = EndingNotebookRenderer


class DashboardHandler(PlainErrorsMixin, TornadoVoilaHandler):
    """A report's live dashboard, default parameters or validated query parameters."""

    page_failure: Exception | None = None  # why the page's rendering stopped (EndingNotebookRenderer)

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
        _ = self.xsrf_token  # sets the cookie the page's shutdown request on unload is checked with
        manager: DashboardKernelManager = self.kernel_manager
        if manager.busy_for(self.notebook_path):
            self._busy(dashboard)
            return
        kernels = page_kernels()  # the kernel Voila hands this page: not culled while it loads
        started = False
        try:
            async for snippet in self.get_generator(path=None):
                if not started:
                    for kernel_id in kernels:
                        manager.page_started(kernel_id)
                started = True
                self.write(snippet)
                self.flush()
            if self.page_failure is not None:
                raise self.page_failure
        except AtCapacity as exc:
            log.warning("dashboard %r: busy, viewer turned away (%s)", report, exc)
            self._busy(dashboard)
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

        finally:
            if started:
                for kernel_id in kernels:
                    manager.page_finished(kernel_id)

    def _busy(self, dashboard: dash.Dashboard) -> None:
        self.clear_header("Cache-Control")
        self.set_status(503)
        self.set_header("Retry-After", str(BUSY_RETRY_S))
        self.set_header("Cache-Control", "no-store")
        self.finish(page(f"{dashboard.title}: busy", "<p>The server is busy: every dashboard kernel it may run "
                         "is in use. Try again in a moment.</p>"))

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
        if os.path.isfile(real) and Path(real).suffix.lower() not in SITE_SUFFIXES and not _published_notebook(real):
            raise web.HTTPError(404)
        return super().validate_absolute_path(root, absolute_path)

    def set_extra_headers(self, path):
        if path.lower().endswith(".ipynb"):
            # A download, never a document the browser would render.
            self.set_header("Content-Disposition", f"attachment; filename*=UTF-8''{quote(Path(path).name)}")
            self.set_header("X-Content-Type-Options", "nosniff")

    def get_content_type(self):
        if self.absolute_path and self.absolute_path.lower().endswith(".ipynb"):
            return "application/x-ipynb+json"
        return super().get_content_type()

    def _no_site(self) -> None:
        dashboards = self.settings["lab2land_dashboards"]
        items = "".join(f'<li><a href="/dashboards/{html.escape(n)}/">{html.escape(d.title)}</a></li>'
                        for n, d in sorted(dashboards.items())) or "<li>none</li>"
        self.set_status(404)
        self.finish(page(self.settings["lab2land_site_title"],
                         "<p>The site has not been built yet: run <code>publish.py build</code>.</p>"
                         f"<p>Dashboards:</p><ul>{items}</ul>"))
