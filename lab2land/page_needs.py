"""What a version page must load beyond the basics, read from the notebook: MathJax for TeX in
widget labels (``Label("$E=mc^2$")``, ``HTMLMath``) and MathJax's SVG output for plotly figures
whose titles, axes or legends hold TeX. Each build is only loaded where it is needed: the SVG
build alone is ~2 MB.
"""

from __future__ import annotations

import re
from typing import Any

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
    return any(_has_tex(out["data"][PLOTLY_MIME])
               for cell in nb.cells if cell.cell_type == "code"
               for out in cell.get("outputs", []) if PLOTLY_MIME in out.get("data", {}))


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
