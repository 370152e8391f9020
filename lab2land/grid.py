"""Grid layout of a notebook's cells, from the ``jupyter_dashboards`` metadata voila-gridstack reads.

The same pure functions place cells for the live dashboards (``templates/grid``) and for static
reports with ``layout = "grid"``. A notebook laid out with voila-gridstack works unchanged:

* notebook: ``metadata.extensions.jupyter_dashboards.views.grid_default`` holds ``maxColumns``,
  ``cellMargin`` and ``defaultCellHeight`` (older notebooks spell them ``numColumns`` and
  ``cellHeight``);
* cell: ``metadata.extensions.jupyter_dashboards.views.grid_default`` holds ``col``, ``row``,
  ``width``, ``height`` (grid units, 0-based) and ``hidden``.

Data scientists can instead tag a cell ``grid:col=1;row=1;w=6;h=4`` (1-based, like a spreadsheet)
or ``grid:hidden`` (semicolons: nbformat forbids commas in tags); tags win over metadata, and
``publish.py layout`` writes them into the metadata. Cells without a position flow, full width
and in order, below the laid-out ones.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from lab2land import cell_tags
from lab2land.store import write_atomic
from lab2land.templating import TEMPLATES_DIR

VIEW = "grid_default"
TAG_PREFIX = "grid:"
# Papermill's tags: the parameters a dashboard was given are not content.
PARAMETER_TAGS = {"parameters", "injected-parameters"}
CSS_PATH = TEMPLATES_DIR / "grid" / "lab2land-grid.css"
_TAG_KEYS = {"col": "col", "row": "row", "w": "width", "width": "width", "h": "height", "height": "height"}


class GridError(ValueError):
    """A grid tag or metadata value that cannot be understood."""


@dataclass(frozen=True)
class GridSettings:
    """Notebook-level grid settings (voila-gridstack's defaults)."""

    columns: int = 12
    cell_height: int = 60  # px, the minimum height of one grid row
    margin: int = 10  # px between cells


@dataclass(frozen=True)
class Placement:
    """Where one cell goes. ``col``/``row`` are 0-based grid units; flow cells span every column."""

    index: int
    shown: bool
    col: int = 0
    row: int = 0
    width: int = 0
    height: int = 0
    flow: bool = False
    order: int = 0  # reading order when the grid collapses to one column
    reason: str = ""  # why a cell is not shown


def _dashboards(metadata: Any) -> dict:
    extensions = metadata.get("extensions") if isinstance(metadata, dict) else None
    found = extensions.get("jupyter_dashboards") if isinstance(extensions, dict) else None
    return found if isinstance(found, dict) else {}


def _view(metadata: Any) -> dict | None:
    dashboards = _dashboards(metadata)
    views = dashboards.get("views")
    if not isinstance(views, dict):
        return None
    # The active view, else the conventional one; other views (e.g. "report_default") are ignored.
    for name in (dashboards.get("activeView"), VIEW):
        view = views.get(name) if isinstance(name, str) else None
        if isinstance(view, dict) and view.get("type", "grid") == "grid":
            return view
    return None


def _positive_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = int(round(value))
    return number if number > 0 else None


def notebook_settings(nb: dict) -> GridSettings:
    """The notebook's grid settings, accepting the old ``numColumns``/``cellHeight`` spellings."""
    view = _view(nb.get("metadata", {})) or {}
    default = GridSettings()
    columns = _positive_int(view.get("maxColumns", view.get("numColumns")))
    height = _positive_int(view.get("defaultCellHeight", view.get("cellHeight")))
    margin = view.get("cellMargin")
    margin = int(margin) if isinstance(margin, (int, float)) and not isinstance(margin, bool) and margin >= 0 else None
    return GridSettings(columns=columns or default.columns, cell_height=height or default.cell_height,
                        margin=default.margin if margin is None else margin)


def parse_tag(tag: str) -> dict:
    """Parse ``grid:col=1;row=1;w=6;h=4`` (1-based) or ``grid:hidden`` into 0-based view metadata.

    Commas are accepted too, although nbformat does not allow them in tags.

    Raises:
        GridError: naming the tag, the bad part and the expected form.
    """
    body = tag[len(TAG_PREFIX):].strip()
    if body == "hidden":
        return {"hidden": True}
    view: dict = {"hidden": False}
    for part in filter(None, (p.strip() for p in re.split(r"[;,]", body))):
        key, sep, text = part.partition("=")
        name = _TAG_KEYS.get(key.strip().lower())
        if not sep or name is None:
            raise GridError(f"tag {tag!r}: cannot read {part!r}; expected e.g. 'grid:col=1;row=1;w=6;h=4' "
                            f"or 'grid:hidden'")
        try:
            number = int(text.strip())
        except ValueError:
            raise GridError(f"tag {tag!r}: {key.strip()} must be a whole number, got {text.strip()!r}") from None
        if number < 1:
            raise GridError(f"tag {tag!r}: {key.strip()} must be 1 or more, got {number}")
        view[name] = number - 1 if name in ("col", "row") else number
    missing = [k for k in ("col", "row") if k not in view]
    if missing:
        raise GridError(f"tag {tag!r}: missing {' and '.join(missing)}; expected e.g. 'grid:col=1;row=1;w=6;h=4'")
    view.setdefault("width", 12)
    view.setdefault("height", 2)
    return view


def grid_tags(cell: dict) -> list[str]:
    """The cell's ``grid:`` tags."""
    tags = cell.get("metadata", {}).get("tags", [])
    return [t for t in tags if isinstance(t, str) and t.startswith(TAG_PREFIX)] if isinstance(tags, list) else []


def cell_view(cell: dict) -> dict | None:
    """The cell's grid view: from its ``grid:`` tag if it has one, else from its metadata.

    Raises:
        GridError: if a ``grid:`` tag is malformed.
    """
    tags = grid_tags(cell)
    if tags:
        return parse_tag(tags[-1])
    return _view(cell.get("metadata", {}))


def _is_empty(cell: dict) -> bool:
    if cell.get("cell_type") == "code":
        return not cell.get("outputs")
    return not "".join(cell.get("source", "")).strip()


def _hidden_reason(cell: dict, view: dict | None, drop_empty: bool, outputs_only: bool) -> str:
    tags = set(cell.get("metadata", {}).get("tags", []) or [])
    if tags & PARAMETER_TAGS:
        return "parameters"
    shows = cell_tags.visibility(cell)
    if not shows.cell:
        return "remove-cell tag"
    if outputs_only and cell.get("cell_type") == "code" and not shows.output:
        return "remove-output tag"  # a dashboard shows no source: nothing is left
    if cell.get("cell_type") == "raw":
        return "raw cell"
    if view and view.get("hidden") is True:
        return "hidden in the grid"
    if drop_empty and _is_empty(cell):
        return "no output"
    return ""


def _clamp(view: dict, settings: GridSettings) -> tuple[int, int, int, int] | None:
    col, row = view.get("col"), view.get("row")
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in (col, row)):
        return None  # voila-gridstack writes null col/row for cells it has not placed
    col = min(max(int(col), 0), settings.columns - 1)
    row = max(int(row), 0)
    width = min(_positive_int(view.get("width")) or settings.columns, settings.columns - col)
    height = _positive_int(view.get("height")) or 1
    return col, row, width, height


def placements(nb: dict, *, drop_empty: bool = True, outputs_only: bool = False) -> list[Placement]:
    """Place every cell of ``nb``: laid out, flowing below the grid, or not shown (with why).

    A malformed ``grid:`` tag is treated as no position here (``grid_problems`` reports it), so one
    typo never breaks a page.

    Args:
        nb: The notebook (executed, for ``drop_empty`` to see outputs).
        drop_empty: Hide code cells without outputs and empty markdown cells.
        outputs_only: Code cells show only their outputs (dashboards): hide those whose
            outputs their tags hide.
    """
    settings = notebook_settings(nb)
    shown: list[tuple[int, tuple[int, int, int, int] | None]] = []
    result: dict[int, Placement] = {}
    for index, cell in enumerate(nb.get("cells", [])):
        try:
            view = cell_view(cell)
        except GridError:
            view = None
        reason = _hidden_reason(cell, view, drop_empty, outputs_only)
        if reason:
            result[index] = Placement(index=index, shown=False, reason=reason)
        else:
            shown.append((index, _clamp(view, settings) if view else None))
    placed = sorted(((area[1], area[0], index, area) for index, area in shown if area))
    flow_row = max((row + h for row, _c, _i, (_c2, _r, _w, h) in placed), default=0)
    order = 0
    for row, col, index, (_col, _row, width, height) in placed:
        result[index] = Placement(index, True, col, row, width, height, order=order)
        order += 1
    for index, area in shown:
        if area is None:
            result[index] = Placement(index, True, 0, flow_row, settings.columns, 0, flow=True, order=order)
            flow_row += 1
            order += 1
    return [result[i] for i in sorted(result)]


def annotate(nb: nbformat.NotebookNode, *, drop_empty: bool = True,
             outputs_only: bool = False) -> nbformat.NotebookNode:
    """Return a copy of ``nb`` whose metadata carries the computed layout for the templates.

    ``nb.metadata.lab2land.grid`` gets ``columns``, ``cell_height``, ``margin`` and ``rows`` (rows
    of the laid-out part); each cell's ``metadata.lab2land.grid`` gets CSS grid lines (1-based)
    ``col``, ``row``, ``width``, ``height`` (0 = sized by content), ``flow`` and ``order``, or
    ``hidden: true``.
    """
    nb = copy.deepcopy(nb)
    settings = notebook_settings(nb)
    places = placements(nb, drop_empty=drop_empty, outputs_only=outputs_only)
    rows = max((p.row + p.height for p in places if p.shown and not p.flow), default=0)
    nb.metadata.setdefault("lab2land", nbformat.NotebookNode())["grid"] = nbformat.from_dict({
        "columns": settings.columns, "cell_height": settings.cell_height, "margin": settings.margin, "rows": rows})
    for cell, place in zip(nb.cells, places, strict=False):
        grid = ({"hidden": True, "reason": place.reason} if not place.shown else
                {"hidden": False, "col": place.col + 1, "row": place.row + 1, "width": place.width,
                 "height": place.height, "flow": place.flow, "order": place.order})
        cell.metadata.setdefault("lab2land", nbformat.NotebookNode())["grid"] = nbformat.from_dict(grid)
    return nb


def grid_css() -> str:
    """The grid stylesheet shared by dashboards and static reports."""
    return CSS_PATH.read_text(encoding="utf-8")



def _set_view(metadata: dict, view: dict) -> None:
    dashboards = metadata.setdefault("extensions", {}).setdefault("jupyter_dashboards", {})
    dashboards.setdefault("version", 1)
    dashboards.setdefault("views", {})[VIEW] = view


def sync_tags(nb: nbformat.NotebookNode) -> list[str]:
    """Write every cell's ``grid:`` tag into its ``jupyter_dashboards`` metadata, in place.

    Also gives the notebook voila-gridstack's notebook-level grid view if it has none, so other
    tools see the layout. Returns one line per cell changed.

    Raises:
        GridError: for the first malformed tag (``grid_problems`` lists them all).
    """
    changes = []
    for index, cell in enumerate(nb.cells):
        if not grid_tags(cell):
            continue
        view = cell_view(cell)
        current = _view(cell.metadata) or {}
        wanted = {"col": None, "row": None, "width": 2, "height": 2, **view} if view.get("hidden") else view
        if {k: current.get(k) for k in wanted} != wanted:
            _set_view(cell.metadata, wanted)
            changes.append(f"cell {index + 1}: {describe(wanted)}")
    if changes and _view(nb.metadata) is None:
        default = GridSettings()
        _set_view(nb.metadata, {"name": "grid", "type": "grid", "maxColumns": default.columns,
                                "cellMargin": default.margin, "defaultCellHeight": default.cell_height})
        nb.metadata["extensions"]["jupyter_dashboards"]["activeView"] = VIEW
    return changes


def describe(view: dict) -> str:
    """A view in tag notation (1-based), e.g. ``grid:col=1;row=1;w=6;h=4``."""
    if view.get("hidden"):
        return "grid:hidden"
    return f"grid:col={view['col'] + 1};row={view['row'] + 1};w={view['width']};h={view['height']}"


def grid_problems(nb: dict, name: str = "notebook") -> list[str]:
    """Problems in a notebook's grid: bad tags, cells outside the grid or overlapping, tags
    not yet written to the metadata. Each line names the notebook and cell (1-based)."""
    problems, settings = [], notebook_settings(nb)
    for index, cell in enumerate(nb.get("cells", [])):
        for tag in grid_tags(cell):
            try:
                view = parse_tag(tag)
            except GridError as exc:
                problems.append(f"{name}: cell {index + 1}: {exc}")
                continue
            current = _view(cell.get("metadata", {})) or {}
            if {k: current.get(k) for k in view if k != "hidden" or view[k]} != {
                    k: v for k, v in view.items() if k != "hidden" or v}:
                problems.append(f"{name}: cell {index + 1}: tag {tag!r} differs from the cell's grid metadata; "
                                f"run `publish.py layout {name}` to write it")
            if not view.get("hidden") and view["col"] + view["width"] > settings.columns:
                problems.append(f"{name}: cell {index + 1}: tag {tag!r} ends at column "
                                f"{view['col'] + view['width']}, past the grid's {settings.columns} columns")
    places = [p for p in placements(nb, drop_empty=False) if p.shown and not p.flow]
    for i, a in enumerate(places):
        for b in places[i + 1:]:
            overlap_x = a.col < b.col + b.width and b.col < a.col + a.width
            if overlap_x and a.row < b.row + b.height and b.row < a.row + a.height:
                problems.append(f"{name}: cells {a.index + 1} and {b.index + 1} overlap "
                                f"({describe(_area(a))} and {describe(_area(b))})")
    return problems


def _area(p: Placement) -> dict:
    return {"col": p.col, "row": p.row, "width": p.width, "height": p.height}


def text_map(nb: dict) -> str:
    """The laid-out cells as a character map (cell numbers, 1-based), then the flowing ones."""
    settings = notebook_settings(nb)
    places = placements(nb, drop_empty=False)
    placed = [p for p in places if p.shown and not p.flow]
    rows = max((p.row + p.height for p in placed), default=0)
    grid = [["." for _ in range(settings.columns)] for _ in range(rows)]
    for p in placed:
        mark = str(p.index + 1)[-1]
        for r in range(p.row, p.row + p.height):
            for c in range(p.col, p.col + p.width):
                grid[r][c] = mark
    lines = ["".join(row) for row in grid]
    flow = [str(p.index + 1) for p in places if p.flow]
    hidden = [f"{p.index + 1} ({p.reason})" for p in places if not p.shown]
    lines.append(f"below the grid, full width: {', '.join(flow) or 'none'}")
    lines.append(f"not shown: {', '.join(hidden) or 'none'}")
    return "\n".join(lines)


def layout_command(notebook: Path, *, check: bool = False) -> int:
    """``publish.py layout NOTEBOOK [--check]``: write ``grid:`` tags into the grid metadata.

    Prints the resulting layout as a character map. With ``check``, writes nothing and
    returns 1 if the grid has problems (also when tags are not yet written).

    Returns:
        The exit code: 0 on success, 1 on problems, 2 if the notebook cannot be read.
    """
    path = Path(notebook)
    try:
        nb = nbformat.read(path, as_version=4)
    except (OSError, ValueError) as exc:
        print(f"{path}: cannot read the notebook: {exc}")
        return 2
    problems = grid_problems(nb, path.name)
    if check:
        for problem in problems:
            print(problem)
        print(text_map(nb))
        return 1 if problems else 0
    tag_problems = [p for p in problems if "differs from" not in p and "overlap" not in p]
    if any("tag" in p for p in tag_problems):
        for problem in tag_problems:
            print(problem)
        print(f"{path}: not written; fix the tags above")
        return 1
    changes = sync_tags(nb)
    if changes:
        write_atomic(path, nbformat.writes(nb))
    for line in changes:
        print(f"{path.name}: {line}")
    print(text_map(nb))
    remaining = grid_problems(nb, path.name)
    for problem in remaining:
        print(problem)
    return 1 if remaining else 0
