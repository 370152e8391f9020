"""Which parts of a cell a reader sees, from its tags: one rule for static pages and dashboards.

The tags are the ones nbconvert's ``TagRemovePreprocessor`` is usually configured with (and
JupyterBook, Quarto and papermill's report mode use), in both spellings:

* ``remove-cell``: the cell is not shown at all (it still runs);
* ``remove-input`` / ``hide-input``: its source is not shown, its outputs are;
* ``remove-output`` / ``hide-output``: its outputs are not shown, its source may be.

``hide-*`` means "collapsed" in JupyterBook; a lab2land page has no collapsed state, so they
hide like ``remove-*``: what an author hides from readers is never on the page.
"""

from __future__ import annotations

from dataclasses import dataclass

REMOVE_CELL = frozenset({"remove-cell", "remove_cell"})
HIDE_INPUT = frozenset({"remove-input", "remove_input", "hide-input", "hide_input"})
HIDE_OUTPUT = frozenset({"remove-output", "remove_output", "hide-output", "hide_output"})


@dataclass(frozen=True)
class Visibility:
    """What of one cell is shown."""

    cell: bool = True
    input: bool = True
    output: bool = True


def visibility(cell: dict) -> Visibility:
    """The parts of ``cell`` its tags let a reader see (malformed tags are ignored)."""
    tags = (cell.get("metadata") or {}).get("tags") or []
    tags = {t for t in tags if isinstance(t, str)} if isinstance(tags, list) else set()
    if tags & REMOVE_CELL:
        return Visibility(cell=False, input=False, output=False)
    return Visibility(input=not tags & HIDE_INPUT, output=not tags & HIDE_OUTPUT)
