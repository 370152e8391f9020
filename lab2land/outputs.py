"""Outputs as a page shows them: a huge output is cut short with a note (``[site] max_output_mb``).

A notebook that prints 50 MB would otherwise become a 50 MB page that takes half a minute to
open. The executed notebook beside the page keeps every output whole; only the page is capped.
"""

from __future__ import annotations

import copy

import nbformat

from .metrics import SCRAPBOOK_MIMETYPES

NOTE = ("… output truncated: {shown} of {size} shown (the page shows at most {cap} per output; "
        "the executed notebook beside this page has all of it)")


def _size(output: dict) -> int:
    if output.get("output_type") == "stream":
        return len(output.get("text", ""))
    return sum(len(v) if isinstance(v, str) else len(str(v)) for v in output.get("data", {}).values())


def _mb(chars: int) -> str:
    return f"{chars / 1e6:.1f} MB" if chars >= 100_000 else f"{chars / 1e3:.0f} KB"


def without_scraps(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``nb`` without scrapbook's data-only outputs (``sb.glue`` without ``display=True``): they
    carry metrics for the manifest, and nothing a page could show."""
    def scrap(output: dict) -> bool:
        data = output.get("data") or {}
        return bool(data) and all(k in SCRAPBOOK_MIMETYPES for k in data)
    if not any(scrap(o) for c in nb.cells for o in c.get("outputs", [])):
        return nb
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if "outputs" in cell:
            cell["outputs"] = [o for o in cell["outputs"] if not scrap(o)]
    return nb


def cap_outputs(nb: nbformat.NotebookNode, max_mb: float) -> nbformat.NotebookNode:
    """``nb`` with every output larger than ``max_mb`` cut short (a copy; ``nb`` is unchanged
    when nothing is over the cap, and then returned as it is).

    A stream keeps its first ``max_mb`` and ends with a note; any other output (a table, an
    image, HTML) cannot be cut meaningfully and is replaced by the note alone.
    """
    cap = int(max_mb * 1_000_000)
    if not any(_size(o) > cap for c in nb.cells for o in c.get("outputs", [])):
        return nb
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        for i, output in enumerate(cell.get("outputs", [])):
            size = _size(output)
            if size <= cap:
                continue
            if output.get("output_type") == "stream":
                output["text"] = output["text"][:cap] + "\n" + NOTE.format(shown=_mb(cap), size=_mb(size), cap=_mb(cap))
            else:
                cell["outputs"][i] = nbformat.v4.new_output(
                    "stream", name="stdout", text=NOTE.format(shown="none", size=_mb(size), cap=_mb(cap)))
    return nb
