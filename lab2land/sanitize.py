"""Make notebook-produced HTML and JSON safe to place in a report page.

Report pages show whatever a notebook printed, and notebooks print data: a customer name
like ``<img src=x onerror=...>`` must show as text, never run. HTML outputs and rendered
markdown go through nh3 (an allow-list sanitizer); JSON that pages read back from
``<script type="application/json">`` blocks is escaped so no data can close the tag.
Outputs that could only show by running script (``application/javascript``, third-party
widgets whose code would come from a CDN) are dropped or fall back to their text.

The static pages and the live dashboards share these rules: the same :func:`clean_output`,
:func:`clean_widget_state` and :func:`content_security_policy` (dashboards apply them in their
Voila template and on the kernel websocket, ``lab2land.serve_handlers``).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import nh3

from lab2land import css

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
# allows images only from the site itself and data: URLs. `<style>` blocks have their own,
# scoped rules (lab2land.css).
STYLE_PROPERTIES = css.INLINE_PROPERTIES
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


# Ids a notebook may not give its elements. Every element id becomes a property of `window`
# ("named access"), shadowing what the page's scripts and bundled libraries look up there
# (`window.MathJax`, `window.define`, ...) and what window inherits from EventTarget and
# Object; window's own properties (location, document, ...) win over ids, so need no entry.
# `l2l-` ids are the page's own (the failing cell, output containers).
CLOBBERED_IDS = frozenset({
    "MathJax", "Plotly", "PlotlyConfig", "lab2landVersions", "require", "requirejs", "define", "module",
    "exports", "global", "process", "Buffer", "jQuery", "$", "_", "d3", "katex", "Jupyter", "IPython",
    "addEventListener", "removeEventListener", "dispatchEvent", "toString", "toLocaleString", "valueOf",
    "hasOwnProperty", "isPrototypeOf", "propertyIsEnumerable", "__proto__", "__defineGetter__",
    "__defineSetter__", "__lookupGetter__", "__lookupSetter__",
})
_RESERVED_ID_PREFIXES = ("l2l-", "lab2land")


def _attribute_filter(scope: str | None, resolve_image):
    """nh3's per-attribute callback for one cleaning: ``data:`` URLs only as image sources,
    relative image paths embedded by ``resolve_image``, ids that cannot clobber page globals."""

    def keep(tag: str, attr: str, value: str) -> str | None:
        lowered = value.strip().lower()
        if attr in ("src", "href") and lowered.startswith("data:"):
            # data:image/... in an <img> cannot run script, while a data:text/html link could;
            # nh3's scheme list cannot tell the two apart.
            return value if tag == "img" and lowered.startswith("data:image/") else None
        if tag == "img" and attr == "src" and resolve_image is not None:
            return resolve_image(value) or value
        if attr == "id" and value != scope and (value in CLOBBERED_IDS or value.startswith(_RESERVED_ID_PREFIXES)):
            return None
        if tag == "input" and attr == "type" and lowered != "checkbox":
            return None
        return value

    return keep


def scope_id(text: str) -> str:
    """A container id for an output's scoped CSS when no position names it (live outputs)."""
    import hashlib

    return "l2l-s" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def clean_html(html: str, *, scope: str | None = None, wrap: bool = False, resolve_image=None) -> str:
    """Sanitize an HTML fragment from a notebook output or a markdown cell.

    Args:
        html: Untrusted HTML (``text/html`` output, rendered markdown).
        scope: Keep the fragment's ``<style>`` rules, cleaned and scoped to the element with
            this id (see :mod:`lab2land.css`); None drops them. The caller puts the result in
            an element with this id and class ``l2l-scoped``, unless ``wrap``.
        wrap: Wrap the result in ``<div class="l2l-scoped" id="{scope}">`` (when it has CSS).
        resolve_image: Maps a relative ``<img src>`` to a ``data:`` URL
            (:func:`lab2land.images.resolver`); None leaves image sources as they are.

    Returns:
        HTML with only allow-listed tags, attributes and inline-style properties: no
        script, event handlers, frames, forms or positioning; the text of ``<script>``
        elements is dropped, that of ``<style>`` elements kept only as scoped, filtered CSS.

    Raises:
        ValueError: ``scope`` is not a plain id.
    """
    schemes = _URL_SCHEMES | {"data"}
    styles = ""
    if scope is not None:
        styles = "\n".join(filter(None, (css.clean_css(t, scope) for t in css.style_texts(str(html)))))
    body = nh3.clean(
        str(html),
        tags=set(ALLOWED_TAGS),
        attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
        url_schemes=schemes,
        attribute_filter=_attribute_filter(scope, resolve_image),
        link_rel="noopener noreferrer nofollow",
        filter_style_properties=set(STYLE_PROPERTIES),
        strip_comments=True,
    )
    if not styles:
        return body
    opening = f'<div class="l2l-scoped" id="{scope}">'
    if wrap and not (body.startswith(opening) and body.endswith("</div>")):  # not wrapped by a first cleaning
        body = f"{opening}{body}</div>"
    # The container clips what its rules position (no rule of the output can select the
    # container itself, so none can undo this); lab2land.css says the same for static pages.
    return f"<style>{_CONTAINER_RULE.format(scope=scope)}\n{styles}</style>{body}"


_CONTAINER_RULE = "#{scope}{{contain: paint; position: relative; overflow-x: auto}}"


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


def content_security_policy(*, widgets: bool, live: bool = False) -> str:
    """The Content-Security-Policy of every page lab2land shows: script only from its own files.

    One policy for the static pages (a ``<meta>`` tag) and the live dashboards (a header): no
    inline script and no ``javascript:`` URLs, so notebook markup that slipped past
    :func:`clean_html` still cannot run.

    Args:
        widgets: The page draws widgets. The widget manager compiles JSON-schema validators
            with ``new Function`` (ajv), so those pages also allow ``'unsafe-eval'``; inline
            script stays blocked, so that does not let data run.
        live: A dashboard, which talks to its kernel over a websocket and fetches its theme
            from the server (``connect-src 'self'``); static pages connect nowhere.
    """
    script = "'self' 'unsafe-eval'" if widgets else "'self'"
    connect = "'self'" if live else "'none'"
    return (f"default-src 'none'; script-src {script}; style-src 'self' 'unsafe-inline'; "
            f"img-src 'self' data: blob:; font-src 'self' data:; connect-src {connect}; "
            "media-src 'self' data:; object-src 'none'; frame-src 'none'; base-uri 'none'; "
            "form-action 'none'")


_IMAGE_SIZES = ("width", "height")


def clean_output(output: dict, *, markdown_as_html: bool = False, scope: str | None = None, wrap: bool = False,
                 resolve_image=None) -> dict | None:
    """A copy of a notebook output that is safe to show; None if only script would be left.

    HTML goes through :func:`clean_html`, ``application/javascript`` is dropped, and image
    ``width``/``height`` metadata must be numbers (templates print them unquoted into ``<img>``,
    so ``"1 onload=..."`` would add an attribute). Text, images and plot/widget JSON are kept.

    Args:
        output: An nbformat output (``display_data``, ``execute_result``, ...) or a
            message's content holding ``data`` and ``metadata``.
        markdown_as_html: Replace ``text/markdown`` with its cleaned HTML rendering. For live
            dashboards, whose browser side would render markdown itself without sanitizing.
        scope, wrap, resolve_image: As for :func:`clean_html`: keep the HTML's ``<style>``
            rules scoped to the element with id ``scope`` (``wrap``: in a container of ours).
    """
    if is_script_only(output):
        return None
    if "data" not in output and "metadata" not in output:
        return output
    clean = dict(output)
    options = {"scope": scope, "wrap": wrap, "resolve_image": resolve_image}
    data = {k: v for k, v in (output.get("data") or {}).items() if k != "application/javascript"}
    if "text/html" in data:
        data["text/html"] = clean_html(_text(data["text/html"]), **options)
    if markdown_as_html and "text/markdown" in data:
        from nbconvert.filters import markdown2html  # nbconvert's own rendering, as the static pages

        markdown = data.pop("text/markdown")
        data.setdefault("text/html", clean_html(markdown2html(_text(markdown)), **options))
    if "data" in output:
        clean["data"] = data
    if "metadata" in output:
        clean["metadata"] = _clean_sizes(output.get("metadata") or {})
    return clean


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _clean_sizes(metadata: dict) -> dict:
    """Output metadata with every image width/height a number or removed (top level and per mimetype)."""
    clean = {}
    for key, value in metadata.items():
        if key in _IMAGE_SIZES:
            number = _number(value)
            if number is not None:
                clean[key] = number
        elif isinstance(value, dict) and key.startswith("image/"):
            clean[key] = _clean_sizes(value)
        else:
            clean[key] = value
    return clean


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value if math.isfinite(value) and value >= 0 else None
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return (int(number) if number.is_integer() else number) if math.isfinite(number) and number >= 0 else None


# Widget models whose ``value`` the browser shows as HTML.
HTML_WIDGET_MODELS = {"HTMLModel", "HTMLMathModel"}


def clean_widget_state(model_name: str | None, state: dict, *, allow_html: bool = False) -> dict:
    """A widget's state with every value the browser would show as HTML cleaned.

    The ``value`` of HTML and HTMLMath widgets and a ``description`` shown as HTML
    (``description_allow_html``) go through :func:`clean_html`; an Output widget's ``outputs``
    through :func:`clean_output`, keeping their ``<style>`` rules scoped to a container of
    their own, as for any other output. ``model_name`` None means not known: ``value`` is
    cleaned then.

    Args:
        model_name: The widget model's ``_model_name`` (``HTMLModel``, ``OutputModel``, ...).
        state: The (possibly partial) state, as saved in a notebook or sent by the kernel.
        allow_html: The model's ``description_allow_html`` if it is not in ``state``.
    """
    clean = dict(state)
    if isinstance(clean.get("value"), str) and (model_name is None or model_name in HTML_WIDGET_MODELS):
        clean["value"] = clean_html(clean["value"])
    if isinstance(clean.get("description"), str) and clean.get("description_allow_html", allow_html):
        clean["description"] = clean_html(clean["description"])
    if model_name == "OutputModel" and isinstance(clean.get("outputs"), list):
        outputs = (clean_output(o, markdown_as_html=True, scope=scope_id(json.dumps(o, sort_keys=True, default=str)),
                                wrap=True) for o in clean["outputs"] if isinstance(o, dict))
        clean["outputs"] = [o for o in outputs if o is not None]
    return clean


def clean_saved_widget_state(nb) -> None:
    """Clean (in place) the widget state saved in a notebook's metadata, which pages draw."""
    state = nb.metadata.get("widgets", {}).get(_WIDGET_STATE_MIME, {}).get("state") or {}
    for model in state.values():
        if isinstance(model, dict) and isinstance(model.get("state"), dict):
            model["state"] = clean_widget_state(model.get("model_name"), model["state"])


def clean_dashboard_output(output: dict, *, keep_styles: bool = False) -> dict | None:
    """:func:`clean_output` for a live dashboard, whose browser renders markdown unsanitized.

    Args:
        output: The output (or an iopub message's content).
        keep_styles: Keep ``<style>`` rules (pandas Styler), scoped to a ``div.l2l-scoped``
            container wrapped around the output's HTML (the page must load lab2land.css,
            whose ``contain: paint`` keeps positioned content inside it).
    """
    scope = scope_id(json.dumps(output.get("data") or {}, sort_keys=True, default=str)) if keep_styles else None
    return clean_output(output, markdown_as_html=True, scope=scope, wrap=keep_styles)
