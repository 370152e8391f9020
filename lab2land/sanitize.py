"""Make notebook-produced HTML and JSON safe to place in a report page.

Report pages show whatever a notebook printed, and notebooks print data: a customer name
like ``<img src=x onerror=...>`` must show as text, never run. HTML outputs and rendered
markdown go through nh3 (an allow-list sanitizer); JSON that pages read back from
``<script type="application/json">`` blocks is escaped so no data can close the tag.
Outputs that could only show by running script (``application/javascript``, third-party
widgets whose code would come from a CDN) are dropped or fall back to their text.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import nh3

# Tags a pandas table, a markdown cell or a typical rich repr needs; nothing that runs
# script, loads frames or submits forms.
ALLOWED_TAGS = frozenset(nh3.ALLOWED_TAGS) | {
    "caption", "col", "colgroup", "table", "tbody", "td", "tfoot", "th", "thead", "tr",
    "details", "summary", "figure", "figcaption", "mark", "del", "ins", "s", "u", "sub", "sup",
    "kbd", "samp", "var", "dl", "dt", "dd", "hr", "img", "span", "div", "pre", "code", "br",
    "h1", "h2", "h3", "h4", "h5", "h6", "p", "small", "time", "input",
}

_COMMON_ATTRS = {"class", "id", "title", "lang", "dir", "align", "valign", "style"}

# Inline styles are how notebooks draw KPI cards and coloured cells, so `style` stays, but
# only with these properties: no positioning (a fixed overlay could cover the page's own
# banner and links). A url() in `background` cannot load from elsewhere: the page's CSP
# allows images only from the site itself and data: URLs.
STYLE_PROPERTIES = frozenset({
    "color", "background", "background-color", "opacity",
    "font", "font-family", "font-size", "font-style", "font-weight", "font-variant",
    "line-height", "letter-spacing", "text-align", "text-decoration", "text-transform",
    "vertical-align", "white-space", "word-break", "overflow-wrap",
    "display", "flex", "flex-basis", "flex-direction", "flex-grow", "flex-shrink", "flex-wrap",
    "gap", "row-gap", "column-gap", "align-items", "align-self", "justify-content",
    "grid-template-columns", "grid-column", "grid-row",
    "width", "min-width", "max-width", "height", "min-height", "max-height", "box-sizing",
    "margin", "margin-top", "margin-right", "margin-bottom", "margin-left",
    "padding", "padding-top", "padding-right", "padding-bottom", "padding-left",
    "border", "border-top", "border-right", "border-bottom", "border-left", "border-color",
    "border-style", "border-width", "border-radius", "border-collapse", "border-spacing",
    "list-style", "list-style-type", "overflow", "overflow-x", "overflow-y",
})
ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "*": _COMMON_ATTRS,
    "a": {"href", "name"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "col": {"span"},
    "colgroup": {"span"},
    "ol": {"start", "type"},
    "time": {"datetime"},
    # Markdown task lists render as disabled checkboxes.
    "input": {"type", "checked", "disabled"},
    # pandas writes border="1" on its tables; harmless and it keeps the look.
    "table": {"border"},
}

_URL_SCHEMES = {"http", "https", "mailto"}
_WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"
_WIDGET_STATE_MIME = "application/vnd.jupyter.widget-state+json"


def _filter_attribute(tag: str, attr: str, value: str) -> str | None:
    """Allow ``data:`` URLs only as image sources (inline plots, markdown attachments).

    ``data:image/...`` in an ``<img>`` cannot run script, while a ``data:text/html`` link
    could; nh3's scheme list cannot tell the two apart, so this callback does.
    """
    if attr in ("src", "href") and value.strip().lower().startswith("data:"):
        if tag == "img" and value.strip().lower().startswith("data:image/"):
            return value
        return None
    if tag == "input" and attr == "type" and value.lower() != "checkbox":
        return None
    return value


def clean_html(html: str) -> str:
    """Sanitize an HTML fragment from a notebook output or a markdown cell.

    Args:
        html: Untrusted HTML (``text/html`` output, rendered markdown).

    Returns:
        HTML with only allow-listed tags, attributes and inline-style properties: no
        script, event handlers, frames, forms or positioning; the text of
        ``<script>``/``<style>`` elements is dropped.
    """
    schemes = _URL_SCHEMES | {"data"}
    return nh3.clean(
        str(html),
        tags=set(ALLOWED_TAGS),
        attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
        url_schemes=schemes,
        attribute_filter=_filter_attribute,
        link_rel="noopener noreferrer nofollow",
        filter_style_properties=set(STYLE_PROPERTIES),
        strip_comments=True,
    )


def json_for_script(value: Any) -> str:
    """Serialize ``value`` as JSON that is safe inside ``<script type="application/json">``.

    ``<``, ``>`` and ``&`` become ``\\u003c``/``\\u003e``/``\\u0026``, so a string such as
    ``</script><script>alert(1)</script>`` cannot end the data block; JSON.parse turns the
    escapes back into the original characters. U+2028/U+2029 are escaped for old parsers.

    Args:
        value: Any JSON-serializable value (a plotly figure dict, widget state, ...).

    Returns:
        A JSON string with no raw ``<``, ``>`` or ``&``.
    """
    try:
        text = _dumps(value)
    except ValueError:
        # NaN/Infinity are not JSON and would break JSON.parse in the page; plotly itself
        # sends them as null.
        text = _dumps(_finite(value))
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False,
                      default=_json_default)


def _finite(value: Any) -> Any:
    """A copy of ``value`` with non-finite floats replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    """Convert the non-JSON types nbformat nodes may carry (sets, tuples of nodes)."""
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"cannot put a {type(value).__name__} into a page data block: {value!r}")


# Widget modules the bundled embed.js can draw without loading code from elsewhere.
_BUILTIN_WIDGET_MODULES = {"@jupyter-widgets/base", "@jupyter-widgets/controls", "@jupyter-widgets/output"}


def drop_unrenderable_widget_views(nb) -> None:
    """Fall back to the text repr for widget views embed.js cannot draw offline.

    A third-party widget (bqplot, ipyleaflet, ...) anywhere in a view's tree of models would
    need its JavaScript from a CDN, which pages never load; the view's mimetype is removed
    from the output (in place) so its ``text/plain`` shows instead of an empty box.

    Args:
        nb: A notebook whose ``metadata.widgets`` holds the saved widget state.
    """
    state = nb.metadata.get("widgets", {}).get(_WIDGET_STATE_MIME, {}).get("state") or {}
    memo: dict[str, bool] = {}

    def drawable(model_id: str, seen: frozenset = frozenset()) -> bool:
        if model_id not in memo:
            model = state.get(model_id)
            ok = isinstance(model, dict) and model.get("model_module") in _BUILTIN_WIDGET_MODULES
            refs = re.findall(r"IPY_MODEL_([0-9a-f]+)", json.dumps(model.get("state", {}))) if ok else []
            memo[model_id] = ok and all(r in seen or drawable(r, seen | {model_id}) for r in refs)
        return memo[model_id]

    for cell in nb.cells:
        for out in cell.get("outputs", []):
            view = out.get("data", {}).get(_WIDGET_VIEW_MIME)
            if isinstance(view, dict) and not drawable(str(view.get("model_id"))):
                del out["data"][_WIDGET_VIEW_MIME]


def is_script_only(output) -> bool:
    """Whether an output is script plus, at most, its useless text repr.

    Pages never run ``application/javascript``; what is left of such an output is
    ``<IPython.core.display.Javascript object>``, so callers drop it whole.
    """
    data = set(output.get("data", {}))
    return "application/javascript" in data and not data - {"application/javascript", "text/plain"}
