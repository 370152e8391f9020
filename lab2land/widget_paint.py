"""Widgets painted on the server: an HTML picture of each widget view in its initial state.

A dashboard's first paint (:mod:`lab2land.dashboard_paint`) used to draw the widgets with the
html-manager's ``embed.js`` (1.9 MB of JavaScript to evaluate, then a Lumino render and a copy of
every computed style), which held the figures back by ~1.5 s. For the controls dashboards are
made of (boxes, sliders, number and text fields, dropdowns, checkboxes, buttons, HTML and
labels) the picture is written here instead, from the kernel's widget state, as plain HTML that
``lab2land-grid.css`` styles to ipywidgets 8's sizes; Voila's live view replaces it once the
kernel connected, as before. A view whose tree holds any other model (an Output, a plot widget,
a third-party library) is not painted here: :func:`pictures` returns None and the page falls
back to ``embed.js``.

The pictures never use ipywidgets' class names (``.widget-slider`` ...): whatever looks for a
live widget does not find a picture. Text is escaped; HTML values were cleaned with the page's
sanitizer (:func:`lab2land.sanitize.clean_widget_state`); layout values become inline style only
when they are plain CSS lengths or keywords.
"""

from __future__ import annotations

import math
import re
from typing import Any

from markupsafe import Markup, escape

REF = "IPY_MODEL_"
# The state is saved with drop_defaults=True: what a model leaves out is ipywidgets 8's default.
DEFAULTS = {
    "IntSliderModel": {"value": 0, "min": 0, "max": 100, "readout": True, "readout_format": "d"},
    "FloatSliderModel": {"value": 0.0, "min": 0.0, "max": 10.0, "readout": True, "readout_format": ".2f"},
}
# Layout traits written as inline style (ipywidgets' names, CSS property = name with dashes).
LAYOUT_TRAITS = ("width", "height", "min_width", "max_width", "min_height", "max_height", "margin", "padding",
                 "flex", "flex_flow", "align_items", "align_content", "align_self", "justify_content", "order",
                 "display", "visibility", "overflow", "border_top", "border_right", "border_bottom", "border_left")
# A CSS value made of lengths, percentages, numbers, keywords and colors: no url(), no ';'.
SAFE_CSS = re.compile(r"[-\w.%# ,]{1,80}")
BUTTON_STYLES = {"primary", "success", "info", "warning", "danger"}


class Unpainted(Exception):
    """A model this module has no picture for."""


def pictures(state: dict | None, view_ids: list[str]) -> dict[str, Markup] | None:
    """Model id -> picture (HTML) for every view in ``view_ids``; None if any view cannot be
    painted here (then the page draws them all with embed.js, as before)."""
    models = (state or {}).get("state") or {}
    if not view_ids or not isinstance(models, dict):
        return None
    try:
        return {model_id: Markup(_Painter(models).paint(model_id)) for model_id in dict.fromkeys(view_ids)}
    except Unpainted:
        return None


MAX_DEPTH = 50  # boxes in boxes; deeper (or a box that contains itself) is not painted
MAX_NODES = 2_000  # widgets in one picture (a state listing one child many times stays cheap)


class _Painter:
    def __init__(self, models: dict):
        self.models = models
        self.depth = 0
        self.nodes = 0

    def model(self, ref: Any) -> tuple[str, dict]:
        model_id = ref[len(REF):] if isinstance(ref, str) and ref.startswith(REF) else ref
        model = self.models.get(model_id) if isinstance(model_id, str) else None
        if not isinstance(model, dict) or not isinstance(model.get("state"), dict):
            raise Unpainted(model_id)
        name = model.get("model_name")
        if model.get("model_module") not in ("@jupyter-widgets/controls", "@jupyter-widgets/base"):
            raise Unpainted(name)
        return name, {**DEFAULTS.get(name, {}), **model["state"]}

    def paint(self, ref: Any) -> str:
        self.depth += 1
        self.nodes += 1
        if self.depth > MAX_DEPTH or self.nodes > MAX_NODES:
            raise Unpainted("too deep or too many widgets")
        try:
            name, state = self.model(ref)
            paint = PAINTERS.get(name)
            if paint is None:
                raise Unpainted(name)
            return paint(self, state)
        finally:
            self.depth -= 1

    # -- pieces --------------------------------------------------------------------------

    def style_attr(self, state: dict, extra: str = "") -> str:
        """The widget's layout as an inline style attribute (plain values only)."""
        rules = [extra] if extra else []
        layout = state.get("layout")
        if layout is not None:
            name, values = self.model(layout)
            if name != "LayoutModel":
                raise Unpainted(name)
            for trait in LAYOUT_TRAITS:
                value = _css_value(values.get(trait))
                if value:
                    rules.append(f"{trait.replace('_', '-')}: {value}")
        return f' style="{escape("; ".join(rules))}"' if rules else ""

    def style_values(self, state: dict) -> dict:
        style = state.get("style")
        if style is None:
            return {}
        name, values = self.model(style)
        if not isinstance(name, str) or not name.endswith("StyleModel"):
            raise Unpainted(name)
        return values

    def label(self, state: dict, *, spacer: bool = False) -> str:
        """The description label at the widget's left (hidden when empty, as ipywidgets does;
        a Checkbox keeps it as an indent)."""
        width = _css_value(self.style_values(state).get("description_width"))
        style = f"width: {width}" if width else ""
        if spacer:
            text = ""
            if not state.get("indent", True):
                style = "display: none"
        elif not state.get("description"):
            return '<span class="l2l-w-label" style="display: none"></span>'
        else:
            text = _description(state)
        attr = f' style="{escape(style)}"' if style else ""
        return f'<span class="l2l-w-label"{attr}>{text}</span>'

    def inline(self, state: dict, kind: str, body: str, *, label: str | None = None) -> str:
        return (f'<div class="l2l-w l2l-w-inline l2l-w-{kind}"{self.style_attr(state)}>'
                f'{self.label(state) if label is None else label}{body}</div>')

    # -- models (PAINTERS says which paints which) ----------------------------------------

    def _box(self, state: dict, direction: str) -> str:
        children = state.get("children") or []
        if not isinstance(children, (list, tuple)):
            raise Unpainted("children")
        inner = "".join(self.paint(child) for child in children)
        return f'<div class="l2l-w-box"{self.style_attr(state, f"flex-direction: {direction}")}>{inner}</div>'

    def _v_box(self, state: dict) -> str:
        return self._box(state, "column")

    def _h_box(self, state: dict) -> str:
        return self._box(state, "row")

    def _plain_box(self, state: dict) -> str:
        return self._box(state, "row")  # a Box is a flex row, like an HBox

    def _html(self, state: dict) -> str:
        value = state.get("value") or ""
        return self.inline(state, "html", f'<div class="l2l-w-html-content">{value}</div>')  # cleaned

    def _label(self, state: dict) -> str:
        return self.inline(state, "html", f'<div class="l2l-w-html-content">{escape(state.get("value") or "")}</div>')

    def _slider(self, state: dict) -> str:
        if state.get("orientation", "horizontal") != "horizontal":
            raise Unpainted("vertical slider")
        value, low, high = state.get("value"), state.get("min"), state.get("max")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                   for v in (value, low, high)):
            raise Unpainted("slider values")
        share = 0.0 if high <= low else min(max((value - low) / (high - low), 0.0), 1.0)
        at = f"{share * 100:.3f}%"
        readout = ""
        if state.get("readout", True):
            readout = f'<div class="l2l-w-readout">{escape(_format(value, state.get("readout_format")))}</div>'
        track = (f'<div class="l2l-w-track-box"><div class="l2l-w-track"><div class="l2l-w-handle" '
                 f'style="left: {at}"></div></div></div>')
        return self.inline(state, "slider", track + readout)

    def _number(self, state: dict) -> str:
        value = state.get("value", 0)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise Unpainted("number value")
        shown = escape(_js_number(value))
        return self.inline(state, "text", f'<input class="l2l-w-input" type="number" value="{shown}" '
                                           'tabindex="-1" readonly>')

    def _text(self, state: dict) -> str:
        value, placeholder = state.get("value") or "", state.get("placeholder", "\u200b")
        return self.inline(state, "text", f'<input class="l2l-w-input" type="text" value="{escape(value)}" '
                                           f'placeholder="{escape(placeholder)}" tabindex="-1" readonly>')

    def _dropdown(self, state: dict) -> str:
        labels, index = state.get("_options_labels") or [], state.get("index")
        ok = isinstance(index, int) and isinstance(labels, (list, tuple)) and 0 <= index < len(labels)
        shown = labels[index] if ok else ""
        return self.inline(state, "dropdown", f'<select class="l2l-w-select" tabindex="-1">'
                                               f'<option selected>{escape(shown)}</option></select>')

    def _checkbox(self, state: dict) -> str:
        checked = " checked" if state.get("value") is True else ""
        body = (f'<label class="l2l-w-check"><input type="checkbox" tabindex="-1"{checked}>'
                f'<span>{_description(state)}</span></label>')
        return self.inline(state, "checkbox", body, label=self.label(state, spacer=True))

    def _button(self, state: dict) -> str:
        kind = state.get("button_style") or ""
        extra = f" l2l-w-button-{kind}" if kind in BUTTON_STYLES else ""
        color = _css_value(self.style_values(state).get("button_color"))
        css = f"background-color: {color}" if color else ""
        return (f'<div class="l2l-w-button{extra}"{self.style_attr(state, css)}>'
                f'{escape(state.get("description") or "")}</div>')


PAINTERS = {
    "BoxModel": _Painter._plain_box, "VBoxModel": _Painter._v_box, "HBoxModel": _Painter._h_box,
    "HTMLModel": _Painter._html, "LabelModel": _Painter._label,
    "IntSliderModel": _Painter._slider, "FloatSliderModel": _Painter._slider,
    "IntTextModel": _Painter._number, "FloatTextModel": _Painter._number,
    "BoundedIntTextModel": _Painter._number, "BoundedFloatTextModel": _Painter._number,
    "TextModel": _Painter._text, "DropdownModel": _Painter._dropdown, "CheckboxModel": _Painter._checkbox,
    "ButtonModel": _Painter._button,
}


def _css_value(value: Any) -> str | None:
    """``value`` if it is a plain CSS value (:data:`SAFE_CSS`), else None."""
    return value if isinstance(value, str) and SAFE_CSS.fullmatch(value) else None


def _description(state: dict) -> str:
    """A widget's description as HTML: escaped text, or (``description_allow_html``) the HTML
    that :func:`lab2land.sanitize.clean_widget_state` cleaned."""
    description = state.get("description") or ""
    return str(description) if state.get("description_allow_html") else str(escape(description))


def _js_number(value: int | float) -> str:
    """A number as the browser shows it (``420.0`` is ``420``)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return repr(value)


def _format(value: int | float, spec: Any) -> str:
    """A slider's readout: its d3-format spec, which for the common ones (``d``, ``.2f``, ``.1%``)
    reads as Python's format spec; anything else as the browser shows the number."""
    try:
        return format(value, spec) if isinstance(spec, str) and spec else _js_number(value)
    except (ValueError, TypeError):
        return _js_number(value)
