"""What changed between two versions of a report: parameters, data snapshots, metrics, outputs.

``lab2land diff REPORT [OLD [NEW]]`` prints it, ``--format json`` gives it as data, and every
published version carries the same diff against the version before it on its page.

Outputs are compared as a reader sees them, cell by cell (cells matched by id, else by source):
text as a unified diff; tables (pandas HTML) as tables — rows added, removed or changed, keyed
by their first column; figures and images by a hash of their data. What differs from run to run
without meaning anything — execution counts, timestamps, UUIDs, memory addresses, plotly's
``uid``s, widget model ids — is normalised away first, so a re-run on the same inputs shows no
change.
"""

from __future__ import annotations

import difflib
import hashlib
import html
import json
import re
from dataclasses import asdict, dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from .errors import UsageError
from .metrics import MIMETYPE as METRIC_MIMETYPE
from .metrics import SCRAPBOOK_MIMETYPES, Metric
from .version import SnapshotRecord, Version

_NOISE = [
    (re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)?"), "<time>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<id>"),
    (re.compile(r"\b[0-9a-f]{32}\b", re.I), "<id>"),
    (re.compile(r"\bat 0x[0-9a-f]+", re.I), "at 0x…"),
    (re.compile(r"\b\d{8}T\d{6}Z\b"), "<version>"),  # the run's own version id (``run_id``)
]
FIGURES = ("application/vnd.plotly.v1+json", "image/png", "image/jpeg", "image/svg+xml", "image/gif",
           "application/vnd.vegalite.v5+json", "application/vnd.vega.v5+json")
PARAMETER_TAGS = {"parameters", "injected-parameters"}


@dataclass
class Change:
    """A value before and after (a parameter, a metric); ``delta`` for numbers."""

    name: str
    before: Any
    after: Any
    delta: float | None = None


@dataclass
class SnapshotChange:
    name: str
    rows_before: int | None
    rows_after: int | None
    hash_before: str | None
    hash_after: str | None


@dataclass
class CellChange:
    """One code cell whose outputs differ: ``lines`` say how, as a reader would put it."""

    cell: int  # 1-based number in the newer notebook (in the older one for a removed cell)
    source: str  # the cell's first line, to recognise it
    status: str  # "changed", "added" or "removed"
    lines: list[str] = field(default_factory=list)


@dataclass
class VersionDiff:
    report: str
    old: str
    new: str
    parameters: list[Change] = field(default_factory=list)
    snapshots: list[SnapshotChange] = field(default_factory=list)
    metrics: list[Change] = field(default_factory=list)
    cells: list[CellChange] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.parameters or self.snapshots or self.metrics or self.cells)

    def to_json(self) -> dict:
        return asdict(self)


def diff_versions(report: str, old: Version, new: Version, old_nb: dict, new_nb: dict) -> VersionDiff:
    """The diff of two versions given the versions and their executed notebooks (as JSON dicts)."""
    return VersionDiff(report, old.version_id, new.version_id,
                       parameters=_changes(old.parameters, new.parameters),
                       snapshots=_snapshots(old.sources, new.sources),
                       metrics=_metrics(old.metrics, new.metrics),
                       cells=_cells(old_nb.get("cells", []), new_nb.get("cells", [])))


# --- parameters, snapshots, metrics ---------------------------------------------------------------

def _delta(before: Any, after: Any) -> float | None:
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (before, after))
    return round(after - before, 12) if numbers else None


def _changes(old: dict, new: dict) -> list[Change]:
    return [Change(k, old.get(k), new.get(k), _delta(old.get(k), new.get(k)))
            for k in dict.fromkeys([*old, *new]) if old.get(k) != new.get(k)]


def _snapshots(old: list[SnapshotRecord], new: list[SnapshotRecord]) -> list[SnapshotChange]:
    before, after = {s.name: s for s in old}, {s.name: s for s in new}
    changed = []
    for name in dict.fromkeys([*before, *after]):
        a, b = before.get(name), after.get(name)
        hashes = (a.hash if a else None, b.hash if b else None)
        if hashes[0] != hashes[1]:
            changed.append(SnapshotChange(name, a.rows if a else None, b.rows if b else None, *hashes))
    return changed


def _metrics(old: dict, new: dict) -> list[Change]:
    def value(data: dict | None) -> Any:
        return Metric.from_json(data).value if data else None
    return _changes({k: value(v) for k, v in old.items()}, {k: value(v) for k, v in new.items()})


# --- outputs, cell by cell --------------------------------------------------------------------------

def _quiet(text: str) -> str:
    for pattern, replacement in _NOISE:
        text = pattern.sub(replacement, text)
    return text


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _without(value: Any, keys: frozenset) -> Any:
    if isinstance(value, dict):
        return {k: _without(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [_without(v, keys) for v in value]
    return value


def _digest(value: Any) -> str:
    data = value if isinstance(value, str) else json.dumps(_without(value, frozenset({"uid"})), sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()[:12]


class _Table(HTMLParser):
    """The rows of the first ``<table>`` in a pandas HTML output, as lists of cell texts."""

    def __init__(self):
        super().__init__()
        self.rows: list[list[str]] = []
        self.head_rows = 0
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._depth = self._done = 0
        self._in_head = False

    def handle_starttag(self, tag, attrs):
        if self._done:
            return
        self._depth += tag == "table"
        self._in_head = self._in_head or tag == "thead"
        if tag == "tr" and self._depth:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self.head_rows += self._in_head
            self._row = None
        elif tag == "thead":
            self._in_head = False
        elif tag == "table":
            self._depth -= 1
            self._done = not self._depth

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _table(html: str) -> tuple[list[list[str]], list[list[str]]] | None:
    if "<table" not in html:
        return None
    parser = _Table()
    parser.feed(html)
    if not parser.rows:
        return None
    return parser.rows[:parser.head_rows], parser.rows[parser.head_rows:]


def _view(output: dict) -> tuple[str, Any] | None:
    """What a reader sees of one output, normalised: ("text", str) | ("table", (head, rows)) |
    ("figure", (mimetype, digest)); None for what the page does not show as content."""
    kind = output.get("output_type")
    if kind == "stream":
        return "text", _quiet(_text(output.get("text", "")))
    if kind == "error":
        return "text", f"{output.get('ename')}: {_quiet(str(output.get('evalue')))}"
    data = output.get("data") or {}
    if METRIC_MIMETYPE in data or any(m in data for m in SCRAPBOOK_MIMETYPES):
        return None  # compared in the metrics section
    if "application/vnd.jupyter.widget-view+json" in data:
        return None  # a widget's state is its model, not its (random) view id
    for mimetype in FIGURES:
        if mimetype in data:
            return "figure", (mimetype, _digest(data[mimetype]))
    if "text/html" in data and (table := _table(_text(data["text/html"]))):
        return "table", table
    if "text/html" in data:  # compared as the text a reader reads, not as markup
        return "text", _quiet(html.unescape(re.sub(r"<[^>]*>", "", _text(data["text/html"]))))
    for mimetype in ("text/markdown", "text/latex", "text/plain"):
        if mimetype in data:
            return "text", _quiet(_text(data[mimetype]))
    return None


def _views(cell: dict) -> list[tuple[str, Any]]:
    return [v for v in (_view(o) for o in cell.get("outputs", [])) if v is not None]


def _table_lines(old: tuple, new: tuple) -> list[str]:
    (old_head, old_rows), (new_head, new_rows) = old, new
    columns = [" | ".join(head[-1]) if head else "" for head in (old_head, new_head)]
    lines = [] if old_head == new_head else [f"columns: {columns[0]} → {columns[1]}"]
    before = {row[0] if row else "": row for row in old_rows}
    after = {row[0] if row else "": row for row in new_rows}
    for key in dict.fromkeys([*before, *after]):
        a, b = before.get(key), after.get(key)
        if a == b:
            continue
        if a is None:
            lines.append(f"row added {key!r}: {' | '.join(b[1:])}")
        elif b is None:
            lines.append(f"row removed {key!r}: {' | '.join(a[1:])}")
        else:
            lines.append(f"row changed {key!r}: {' | '.join(a[1:])} → {' | '.join(b[1:])}")
    return lines


def _output_lines(old: list, new: list) -> list[str]:
    lines = []
    for i in range(max(len(old), len(new))):
        a, b = (old[i] if i < len(old) else None), (new[i] if i < len(new) else None)
        if a == b:
            continue
        if a is not None and b is not None and a[0] == b[0] == "table":
            lines += _table_lines(a[1], b[1])
        elif a is not None and b is not None and a[0] == b[0] == "figure":
            lines.append(f"figure changed ({b[1][0]}, {a[1][1]} → {b[1][1]})")
        elif a is not None and b is not None and a[0] == b[0] == "text":
            lines += list(difflib.unified_diff(a[1].splitlines(), b[1].splitlines(), n=1, lineterm=""))[2:]
        else:
            lines.append(f"output {i + 1}: {a[0] if a else 'none'} → {b[0] if b else 'none'}")
    return lines


def _content_cells(cells: list[dict]) -> list[tuple[int, dict]]:
    return [(i + 1, c) for i, c in enumerate(cells) if c.get("cell_type") == "code"
            and not PARAMETER_TAGS & set(c.get("metadata", {}).get("tags", []))]


def _first_line(cell: dict) -> str:
    return next((line for line in _text(cell.get("source", "")).splitlines() if line.strip()), "")[:80]


def _pairs(old: list[tuple[int, dict]], new: list[tuple[int, dict]]):
    """Match cells: by id where both notebooks have it, the rest in order of their sources."""
    ids_old = {c.get("id"): (n, c) for n, c in old if c.get("id")}
    matcher = difflib.SequenceMatcher(a=[_text(c.get("source", "")) for _, c in old],
                                      b=[_text(c.get("source", "")) for _, c in new], autojunk=False)
    by_source = {}
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            by_source[block.b + k] = old[block.a + k]
    used = set()
    for j, (n, cell) in enumerate(new):
        match = ids_old.get(cell.get("id")) if cell.get("id") else None
        match = match or by_source.get(j)
        if match and match[0] not in used:
            used.add(match[0])
            yield match, (n, cell)
        else:
            yield None, (n, cell)
    for n, cell in old:
        if n not in used:
            yield (n, cell), None


def _cells(old_cells: list[dict], new_cells: list[dict]) -> list[CellChange]:
    changes = []
    for old, new in _pairs(_content_cells(old_cells), _content_cells(new_cells)):
        if old is None:
            if _views(new[1]):
                changes.append(CellChange(new[0], _first_line(new[1]), "added", _output_lines([], _views(new[1]))))
        elif new is None:
            if _views(old[1]):
                changes.append(CellChange(old[0], _first_line(old[1]), "removed"))
        else:
            lines = _output_lines(_views(old[1]), _views(new[1]))
            if lines:
                changes.append(CellChange(new[0], _first_line(new[1]), "changed", lines))
    return changes


# --- reading versions, and the text the CLI prints ----------------------------------------------------

def choose_pairs(versions: list[Version], old: str | None, new: str | None,
                 variant: str | None) -> list[tuple[Version, Version]]:
    """Which versions ``lab2land diff`` compares: OLD and NEW; OLD and the newest complete
    version of its variant; or, by default, each variant's two newest complete versions.

    Raises:
        UsageError: OLD or NEW is not a version of the report.
    """
    by_id = {v.version_id: v for v in versions}
    for given in (old, new):
        if given and given not in by_id:
            raise UsageError(f"unknown version {given!r} (the newest are: {', '.join(list(by_id)[:5]) or 'none'})")
    if old and new:
        return [(by_id[old], by_id[new])]
    good = [v for v in versions if v.complete]  # newest first
    if old:
        newer = next((v for v in good if v.variant == by_id[old].variant), None)
        return [(by_id[old], newer)] if newer and newer is not by_id[old] else []
    pairs = []
    for key in dict.fromkeys(v.variant for v in good):
        line = [v for v in good if v.variant == key]
        if len(line) >= 2 and variant in (None, key):
            pairs.append((line[1], line[0]))
    return pairs


def published_notebook(site_dir: Path, report: str, version: Version) -> dict:
    """The executed notebook of a published version as JSON (no cells if it cannot be read)."""
    path = site_dir / report / version.folder / version.executed_notebook
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"cells": []}


def load(site_dir: Path, report: str, old: Version, new: Version) -> VersionDiff:
    """The diff of two published versions (as the store lists them)."""
    return diff_versions(report, old, new, published_notebook(site_dir, report, old),
                         published_notebook(site_dir, report, new))


def _shown(value: Any) -> str:
    if value is None:
        return "—"
    text = str(value)
    return f"{value:.6g}" if isinstance(value, float) and len(text) > 12 else text


def format_text(diff: VersionDiff) -> str:
    """The diff as a person reads it: parameters, data, metrics (like ``dvc metrics diff``),
    then the outputs, cell by cell."""
    out = [f"{diff.report}: {diff.old} → {diff.new}"]
    if diff.empty:
        return out[0] + "\n  no changes"
    if diff.parameters:
        out.append("parameters:")
        out += [f"  {c.name}: {_shown(c.before)} → {_shown(c.after)}" for c in diff.parameters]
    if diff.snapshots:
        out.append("data:")
        out += [f"  {s.name}: {_shown(s.rows_before)} → {_shown(s.rows_after)} rows "
                f"(sha256 {(s.hash_before or '—')[:12]} → {(s.hash_after or '—')[:12]})" for s in diff.snapshots]
    if diff.metrics:
        width = max(len(c.name) for c in diff.metrics)
        out.append(f"metrics:\n  {'name':<{width}}  {'before':>12}  {'after':>12}  {'change':>12}")
        out += [f"  {c.name:<{width}}  {_shown(c.before):>12}  {_shown(c.after):>12}  "
                f"{'—' if c.delta is None else f'{c.delta:+.6g}':>12}" for c in diff.metrics]
    if diff.cells:
        out.append("outputs:")
        for cell in diff.cells:
            out.append(f"  cell {cell.cell} ({cell.status}): {cell.source}")
            out += [f"    {line}" for line in cell.lines]
    return "\n".join(out)
