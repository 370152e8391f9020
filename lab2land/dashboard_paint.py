"""First paint of a dashboard: its outputs drawn the static pages' way, before Voila starts.

Voila's page shows nothing until its front end has loaded (~60 webpack chunks and, for plotly
figures, the 4.8 MB jupyterlab-plotly bundle) and connected to the kernel. A preheated
kernel has already run the notebook, so the grid template paints what it produced at once,
with what the static site uses:

* plotly figures: a JSON data block drawn by the site's ``lab2land.js`` with the shared
  ``plotly.min.js`` (static figures never need the kernel, so Voila does not draw them again);
* HTML, images and text: written into the page as HTML (already sanitized);
* widgets: the kernel's widget state, taken by a hidden last cell (:func:`add_state_cell`),
  painted in its initial state as HTML (:mod:`lab2land.widget_paint`, the common controls), or
  else drawn by the html-manager's ``embed.js`` (the static pages' widget renderer); each is
  replaced by Voila's live view once the kernel connected
  (``templates/grid/static/lab2land-dashboard.js``).

Everything else (LaTeX, other mime types) is left to Voila's front end as before.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from pathlib import Path
from typing import Any

import plotly
from markupsafe import Markup
from nbconvert.filters import ansi2html
from nbformat.v4 import new_code_cell
from tornado import web

from lab2land import page_needs, sanitize, vendor, widget_paint
from lab2land.templating import TEMPLATES_DIR

PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"
STATE_MIME = "application/vnd.lab2land.widget-state+json"
# Outputs written into the page as HTML, in nbconvert's order of preference.
STATIC_MIMES = ("text/html", "image/svg+xml", "image/png", "image/jpeg", "text/plain")
PREFERENCE = ("text/html", "text/markdown", "text/latex", "image/svg+xml", "image/png", "image/jpeg", "image/gif",
              "text/plain")
# Voila's front end still loads jupyterlab-plotly for pages that may show a figure after
# they loaded: through an Output widget (interact, callbacks displaying into one).
PLOTLY_EXTENSION = "jupyterlab-plotly"
BUILTIN_MODULES = {"@jupyter-widgets/base", "@jupyter-widgets/controls", "@jupyter-widgets/output"}

# The hidden last cell: the kernel's widget state, as a notebook saves it (its names start
# with an underscore and are deleted, so the viewer's namespace is as the notebook left it).
STATE_CODE = f"""\
def _lab2land_widget_state():
    try:
        import ipywidgets
        from IPython.display import display
        state = ipywidgets.Widget.get_manager_state(drop_defaults=True)
    except Exception:
        return
    if state.get("state"):
        display({{{STATE_MIME!r}: state}}, raw=True)
_lab2land_widget_state()
del _lab2land_widget_state"""


def add_state_cell(nb, timeout: int | None = None) -> None:
    """Append the hidden cell whose output is the kernel's widget state (not shown)."""
    cell = new_code_cell(STATE_CODE)
    cell.metadata["lab2land"] = {"grid": {"hidden": True}, "widget_state": True, "timeout": timeout}
    nb.cells.append(cell)


def output_kind(output: dict | None) -> str:
    """How the grid template paints a cleaned output: ``plotly``, ``widget``, ``static`` or
    ``voila`` (left to Voila's front end)."""
    if not output:
        return "voila"
    data = output.get("data") or {}
    if PLOTLY_MIME in data and isinstance(data[PLOTLY_MIME], dict):
        return "plotly"
    if WIDGET_VIEW_MIME in data:
        return "widget"
    # JupyterLab's order of preference: an output with LaTeX and plain text is LaTeX (Voila's).
    preferred = next((m for m in PREFERENCE if m in data), None)
    return "static" if preferred in STATIC_MIMES else "voila"


def static_mime(output: dict) -> str:
    """The mime type a ``static`` output is painted with."""
    data = output.get("data") or {}
    return next(m for m in STATIC_MIMES if m in data)


def text(value: Any) -> str:
    """A notebook text field (a string or a list of lines) as one string."""
    return "".join(value) if isinstance(value, list) else str(value)


def static_html(output: dict) -> Markup:
    """A ``static`` output (already cleaned by :func:`lab2land.sanitize.clean_dashboard_output`)
    as the HTML JupyterLab's renderer would make of it. SVG becomes an ``<img>``, where
    script inside it never runs."""
    mime = static_mime(output)
    value = output["data"][mime]
    if mime == "text/html":
        body = text(value)  # cleaned by the sanitizer
        return Markup(f'<div class="jp-RenderedHTMLCommon jp-RenderedHTML jp-OutputArea-output" '
                      f'data-mime-type="text/html">{body}</div>')
    if mime == "text/plain":
        return Markup(f'<div class="jp-RenderedText jp-OutputArea-output" data-mime-type="text/plain">'
                      f"<pre>{ansi2html(text(value))}</pre></div>")
    if mime == "image/svg+xml":
        data = base64.b64encode(text(value).encode("utf-8")).decode("ascii")
    else:
        data = "".join(text(value).split())
        if not re.fullmatch(r"[A-Za-z0-9+/=]*", data):
            return Markup("")
    sizes = (output.get("metadata") or {}).get(mime) or {}
    attrs = "".join(f' {k}="{sizes[k]}"' for k in ("width", "height")
                    if isinstance(sizes.get(k), (int, float)) and not isinstance(sizes.get(k), bool))
    return Markup(f'<div class="jp-RenderedImage jp-OutputArea-output"><img src="data:{mime};base64,{data}"'
                  f'{attrs} alt=""></div>')


def plotly_height(figure: dict) -> int:
    """The height the figure will be drawn at (its layout's, else plotly's default), so the
    page keeps the room for it while plotly.js loads."""
    height = ((figure or {}).get("layout") or {}).get("height")
    return int(height) if isinstance(height, (int, float)) and 10 <= height <= 10_000 else 450


def script_json(value: Any) -> str:
    """``value`` as JSON safe inside a ``<script type="application/json">`` data block."""
    return sanitize.json_for_script(value)


def page_paint(nb) -> dict:
    """What the executed notebook's page needs: ``state`` (the widget state, cleaned, or None),
    ``plotly`` (a figure was painted), ``pictures`` (model id -> HTML picture of each widget
    view, or None), ``widgets`` (widget views are drawn by embed.js instead) and
    ``plotly_extension`` (Voila's front end must load jupyterlab-plotly)."""
    needs = {"state": None, "plotly": False, "widgets": False, "plotly_extension": False, "version": ASSET_VERSION,
             "pictures": None}
    traces: set = set()
    views: list[str] = []
    for cell in nb.cells:
        meta = (cell.get("metadata") or {}).get("lab2land") or {}
        for output in cell.get("outputs") or []:
            data = output.get("data") or {}
            if meta.get("widget_state") and isinstance(data.get(STATE_MIME), dict):
                needs["state"] = _clean_state(data[STATE_MIME])
            elif not (meta.get("grid") or {}).get("hidden"):
                kind = output_kind(output)
                needs["plotly"] |= kind == "plotly"
                needs["widgets"] |= kind == "widget"
                if kind == "plotly":
                    traces |= page_needs.trace_types(data[PLOTLY_MIME])
                elif kind == "widget":
                    views.append(str((data[WIDGET_VIEW_MIME] or {}).get("model_id")))
    needs["plotly_js"] = plotly_bundle(traces)
    models = (needs["state"] or {}).get("state") or {}
    needs["plotly_extension"] = any(m.get("model_name") == "OutputModel" or "anywidget" in str(m.get("model_module"))
                                    for m in models.values() if isinstance(m, dict))
    # embed.js draws ipywidgets' own models; another library's it would fetch from a CDN
    # (which the page's CSP refuses): then Voila draws the widgets, as before.
    if needs["state"] is None or any(m.get("model_module") not in BUILTIN_MODULES
                                     for m in models.values() if isinstance(m, dict)):
        needs["widgets"] = False
    elif needs["widgets"]:
        # The common controls are painted here, as HTML: the page needs no embed.js then.
        needs["pictures"] = widget_paint.pictures(needs["state"], views)
        needs["widgets"] = needs["pictures"] is None
    return needs


def plotly_bundle(traces: set) -> str:
    """The file under ``/lab2land/static/`` that draws every trace type in ``traces``."""
    key = page_needs.partial_bundle(traces, lambda k: f"{k}.min.js" in ASSET_PATHS)
    return f"{key}.min.js" if key else "plotly.min.js"


def _clean_state(state: dict) -> dict:
    models = {}
    for model_id, model in (state.get("state") or {}).items():
        if isinstance(model, dict) and isinstance(model.get("state"), dict):
            model = {**model, "state": sanitize.clean_widget_state(model.get("model_name"), model["state"])}
        models[model_id] = model
    return {**state, "state": models}


def extensions(federated: list, needs: dict) -> list:
    """The page's front-end extensions: jupyterlab-plotly only where :func:`page_paint` says."""
    if needs.get("plotly_extension"):
        return federated
    return [e for e in federated if not (isinstance(e, dict) and e.get("name") == PLOTLY_EXTENSION)]


# The files the first paint uses, at /lab2land/static/<name>: nothing else is reachable.
def _asset_paths() -> dict[str, Path]:
    files = {"plotly.min.js": Path(plotly.__file__).parent / "package_data" / "plotly.min.js",
             "lab2land.js": TEMPLATES_DIR / "site" / "static" / "lab2land.js"}
    for key in page_needs.PARTIAL_BUNDLES:
        if vendor.present(key):
            files[f"{key}.min.js"] = vendor.VENDOR_DIR / key / f"{key}.min.js"
    widgets = vendor.VENDOR_DIR / "html-manager"
    if widgets.is_dir():
        files.update({f"widgets/{p.name}": p for p in widgets.iterdir() if p.is_file() and not p.name.startswith(".")})
    return files


ASSET_PATHS = _asset_paths()
# The ``?v=`` of the template's asset URLs: a new plotly, html-manager, partial bundle (or its
# recipe) or lab2land.js is a new URL.
ASSET_VERSION = hashlib.sha256(b"".join(
    ASSET_PATHS[n].read_bytes() for n in ("lab2land.js",) if n in ASSET_PATHS)
    + f"{plotly.__version__}-{vendor.PACKAGES['html-manager']['version']}".encode()
    + "".join(vendor.PACKAGES[k]["integrity"] for k in page_needs.PARTIAL_BUNDLES).encode()).hexdigest()[:12]


class PaintAssetsHandler(web.StaticFileHandler):
    """``/lab2land/static/``: plotly.min.js, lab2land.js and the html-manager; cached for a year
    when asked for with the ``?v=`` the template puts (the assets' versions)."""

    def initialize(self, **kwargs) -> None:
        super().initialize(path=os.sep, **kwargs)

    @classmethod
    def get_absolute_path(cls, root: str, path: str) -> str:
        file = ASSET_PATHS.get(path)
        if file is None:
            raise web.HTTPError(404)
        return str(file)

    def validate_absolute_path(self, root: str, absolute_path: str) -> str:
        if not os.path.isfile(absolute_path):
            raise web.HTTPError(404)
        return absolute_path

    def set_extra_headers(self, path: str) -> None:
        if self.get_argument("v", None) == ASSET_VERSION:
            self.set_header("Cache-Control", "public, max-age=31536000, immutable")
        else:
            self.set_header("Cache-Control", "no-cache")
