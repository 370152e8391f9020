"""What a page must load beyond the basics, read from the notebook: MathJax for TeX in widget
labels (``Label("$E=mc^2$")``, ``HTMLMath``), MathJax's SVG output for plotly figures whose
titles, axes or legends hold TeX, and the smallest plotly.js bundle that draws the figures'
trace types. Each build is only loaded where it is needed: the SVG build alone is ~2 MB, and
the full plotly.js takes ~1.5 s to start in Chromium where a partial bundle takes 0.25-0.45 s.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from plotly.offline import get_plotlyjs_version

from lab2land import vendor

PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_STATE_MIME = "application/vnd.jupyter.widget-state+json"

# TeX delimiters as Jupyter's renderers recognize them (the same rule as markdown's in render.py).
MATH = re.compile(r"\$\$|\$[^$\n]+\$|\\\(|\\\[|\\begin\{")
# plotly.js typesets a text with TeX when it holds `$...$` (svg_text_utils' FIND_TEX).
_PLOT_TEX = re.compile(r"\$[^$]*\$")
# Widget fields the widget manager typesets: Label and HTMLMath values, every description.
_TYPESET_FIELDS = ("value", "description")


def widgets_have_math(nb) -> bool:
    """Whether a widget saved in the notebook shows TeX (the widget manager typesets it)."""
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE_MIME, {}).get("state") or {}
    for model in state.values():
        fields = model.get("state") if isinstance(model, dict) else None
        if isinstance(fields, dict) and any(isinstance(fields.get(f), str) and MATH.search(fields[f])
                                            for f in _TYPESET_FIELDS):
            return True
    return False


def plots_have_tex(nb) -> bool:
    """Whether a plotly figure in the notebook's outputs holds TeX in a text plotly typesets."""
    return any(_has_tex(figure) for figure in notebook_figures(nb))


def _has_tex(value: Any, depth: int = 0) -> bool:
    if isinstance(value, str):
        return bool(_PLOT_TEX.search(value))
    if depth > 12:
        return False
    if isinstance(value, dict):
        return any(_has_tex(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        # Numeric data arrays hold no text; skip them without walking every number.
        return any(_has_tex(v, depth + 1) for v in value if isinstance(v, (str, dict, list)))
    return False


# plotly.js's partial bundles (lab2land.vendor), smallest first; the full one is plotly.py's.
PARTIAL_BUNDLES = ("plotly-basic", "plotly-cartesian", "plotly-svg")
PLOTLY_JS_VERSION = get_plotlyjs_version()


def trace_types(figure: dict) -> set:
    """The trace types a figure draws (plotly's default is ``scatter``); ``{None}`` for a trace
    that is not a trace object, which no partial bundle is known to draw."""
    data = figure.get("data") if isinstance(figure, dict) else None
    if not isinstance(data, list):
        return set() if data is None else {None}
    return {(t.get("type") or "scatter") if isinstance(t, dict) else None for t in data}


def figures_trace_types(figures: Iterable[dict]) -> set:
    return set().union(*(trace_types(f) for f in figures))


def notebook_figures(nb) -> list[dict]:
    """Every plotly figure in the notebook's outputs."""
    return [out["data"][PLOTLY_MIME] for cell in nb.cells if cell.cell_type == "code"
            for out in cell.get("outputs", []) if PLOTLY_MIME in (out.get("data") or {})]


def partial_bundle(traces: set, available: Callable[[str], bool] = vendor.present) -> str | None:
    """The key of the smallest partial bundle that draws every trace type in ``traces`` and is
    ``available``, when it is the release of the plotly.js plotly.py ships (the figures' JSON is
    written for that one); None: only the full plotly.min.js will do."""
    for key in PARTIAL_BUNDLES:
        pkg = vendor.PACKAGES[key]
        if pkg["version"] == PLOTLY_JS_VERSION and traces <= set(pkg["traces"]) and available(key):
            return key
    return None


def site_plotly_js(figures: Iterable[dict]) -> str:
    """Path under a site's assets/ of the plotly.js that draws ``figures``."""
    key = partial_bundle(figures_trace_types(figures))
    return f"{vendor.PACKAGES[key]['assets']}/{key}.min.js" if key else "plotly.min.js"


def static_plotly_js(nb) -> str:
    """Path under a site's assets/ of the plotly.js a version page of ``nb`` loads."""
    return site_plotly_js(notebook_figures(nb))
