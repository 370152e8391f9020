"""The site's search index: ``reports/search-index.js``, read by the search box of every page.

The index is a script that sets ``window.lab2landSearch`` (pages opened from ``file://`` may load
scripts but not fetch files); ``templates/site/static/search.js`` loads it and the vendored
MiniSearch only when a reader starts typing, and indexes it in the browser. It holds, per
report, its title, description and tags, and per version one compact row: folder, variant,
status, time, and the numbers of its variant label, parameter values and metric names in the
report's table of distinct strings and of its text (headings and the words of its markdown
cells) in its table of distinct texts, so versions of one notebook share one copy of each.

Versions never change, so each one's text is extracted once: at publish time into
``search.json`` in the version folder (:func:`version_text_json`), or, for versions published
before search existed, from its executed notebook. The previous index is the cache: a version
already in it is not read again, so a rewrite reads only the versions that are new.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .cell_tags import visibility
from .config import Config, ReportConfig
from .store import write_atomic
from .version import Version

__all__ = ["INDEX", "VERSION_TEXT", "notebook_text", "read_index", "version_text_json", "write_search_index"]

INDEX = "search-index.js"  # at the site root, beside catalog.json
VERSION_TEXT = "search.json"  # in each version folder, written at publish time
SCHEMA = 1  # of both files; another schema is not reused (its versions are read again)
GLOBAL = "lab2landSearch"
PREFIX = f"window.{GLOBAL} = "
MAX_HEADINGS = 40
MAX_HEADING_CHARS = 160
MAX_WORDS = 2000  # distinct words of a notebook's markdown kept: a long notebook stays searchable, not huge
MAX_WORD_CHARS = 40
# MiniSearch splits on spaces and punctuation; \w+ words are what it would find in them.
# papermill's error banner: a markdown cell the page leaves out too (render.py).
BANNER_TAG = "papermill-error-cell-tag"
_WORD = re.compile(r"\w+")
_TAG = re.compile(r"<[^>]*>")


def notebook_text(nb: Any) -> dict:
    """The searchable text of a notebook (a dict or NotebookNode): its markdown headings, and the
    distinct lower-cased words of the rest of its markdown cells (link targets and HTML tags
    left out). A cell the page does not show (tagged ``remove-cell``) is not searchable either."""
    headings: list[str] = []
    words: dict[str, None] = {}  # ordered set
    for cell in nb.get("cells", []) if isinstance(nb, dict) else []:
        if not isinstance(cell, dict) or cell.get("cell_type") != "markdown" or not visibility(cell).cell:
            continue
        tags = (cell.get("metadata") or {}).get("tags")
        if isinstance(tags, list) and BANNER_TAG in tags:
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        for is_heading, text in _markdown_text(source):
            text = " ".join(text.split())
            if is_heading and len(headings) < MAX_HEADINGS:
                headings.append(text[:MAX_HEADING_CHARS])
            else:
                for word in _WORD.findall(text.lower()):
                    if len(words) >= MAX_WORDS:
                        break
                    words.setdefault(word[:MAX_WORD_CHARS])
    seen = {w for h in headings for w in _WORD.findall(h.lower())}
    return {"schema": SCHEMA, "headings": [h for h in headings if h],
            "words": " ".join(w for w in words if w not in seen)}


def version_text_json(nb: Any) -> str:
    """``search.json`` of a version whose executed notebook is ``nb``."""
    return json.dumps(notebook_text(nb), ensure_ascii=False, separators=(",", ":"))


def read_index(path: Path) -> dict:
    """The data of a written ``search-index.js`` ({} if missing, unreadable or another schema)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        data = json.loads(text[len(PREFIX):].rstrip().rstrip(";")) if text.startswith(PREFIX) else {}
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("schema") == SCHEMA else {}


def write_search_index(config: Config, site_dir: Path, versions: dict[str, list[Version]]) -> Path:
    """Write ``site_dir/search-index.js`` for the reports of ``config``; return its path.

    Only versions that the index on disk does not hold yet are read (their ``search.json`` or
    executed notebook); everything else comes from ``versions`` and ``config``. The file is not
    rewritten when nothing changed.

    Args:
        config: The site's config (report titles, descriptions, tags).
        site_dir: The site's root folder.
        versions: Each report's published versions, newest first.
    """
    site_dir = Path(site_dir)
    path = site_dir / INDEX
    known = _known_texts(read_index(path))
    reports = [_report_entry(site_dir, name, report, versions.get(name, []), known)
               for name, report in config.reports.items()]
    data = json.dumps({"schema": SCHEMA, "reports": reports}, ensure_ascii=False, separators=(",", ":"))
    # Valid JSON, but before ES2019 these two ended a JavaScript string: escape them.
    script = PREFIX + data.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029") + ";\n"
    try:
        unchanged = path.read_text(encoding="utf-8") == script
    except OSError:
        unchanged = False
    if not unchanged:
        write_atomic(path, script)
    return path


# --- internals ---------------------------------------------------------------------------

def _report_entry(site_dir: Path, name: str, report: ReportConfig, versions: list[Version],
                  known: dict[tuple[str, str], list]) -> dict:
    """One report's part of the index: its texts and strings once each, a row per version."""
    texts: list[list] = []
    numbers: dict[str, int] = {}
    strings: dict[str, int] = {}  # variant labels, parameters and metric names
    rows = []
    for v in versions:
        text = known.get((name, v.folder))
        if text is None:
            text = _read_text(site_dir / name / v.folder, v)
        key = json.dumps(text, sort_keys=True)
        if text and key not in numbers:
            numbers[key] = len(texts)
            texts.append(text)
        label, params, metrics = (strings.setdefault(t, len(strings)) for t in (
            v.variant_label, _parameters_text(v.parameters), _metrics_text(v)))
        rows.append([v.folder, label, v.status.value, (v.created or "")[:16], params, metrics,
                     numbers.get(key, -1)])
    return {"n": name, "t": report.title, "d": report.description, "g": list(report.tags),
            "s": list(strings), "x": texts, "v": rows}


def _markdown_text(source: str) -> list[tuple[bool, str]]:
    """(is heading, text) of each block of a markdown cell, parsed with mistune (nbconvert's
    markdown parser); on a parser failure the source counts as plain text."""
    import mistune

    try:
        tokens = mistune.create_markdown(renderer="ast", plugins=["table", "strikethrough"])(source)
    except Exception:  # a parser bug must not cost the version its search text
        return [(False, _TAG.sub(" ", source))]
    blocks: list[tuple[bool, str]] = []
    for token in tokens if isinstance(tokens, list) else []:
        parts: list[str] = []
        _inline(token, parts)
        blocks.append((token.get("type") == "heading", " ".join(parts)))
    return blocks


def _inline(token: dict, parts: list[str]) -> None:
    kind = token.get("type")
    raw = token.get("raw", token.get("text"))  # mistune 3 says "raw", mistune 2 "text"
    if kind == "block_html" and isinstance(raw, str):
        parts.append(_TAG.sub(" ", raw))  # the text between the tags, never the markup
    elif kind != "inline_html" and isinstance(raw, str):
        parts.append(raw)
    for child in token.get("children") or []:
        if isinstance(child, dict):
            _inline(child, parts)


def _read_text(folder: Path, version: Version) -> list:
    """[headings, words] of one version: its search.json, else its executed notebook, else []."""
    try:
        data = json.loads((folder / VERSION_TEXT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = None
        if version.executed_notebook:
            try:
                data = notebook_text(json.loads((folder / version.executed_notebook).read_text(encoding="utf-8")))
            except (OSError, ValueError):
                data = None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        return []
    headings = [str(h) for h in data.get("headings") or []][:MAX_HEADINGS]
    words = str(data.get("words") or "")
    return [headings, words] if headings or words else []


def _known_texts(index: dict) -> dict[tuple[str, str], list]:
    """(report, folder) -> text of every version the previous index held."""
    known = {}
    for report in index.get("reports") or []:
        try:
            texts = report["x"]
            for row in report["v"]:
                known[(report["n"], row[0])] = texts[row[6]] if row[6] >= 0 else []
        except (KeyError, IndexError, TypeError):
            continue
    return known


def _parameters_text(parameters: dict) -> str:
    return ", ".join(f"{k}: {v if isinstance(v, str) else json.dumps(v, default=str)}"
                     for k, v in parameters.items())


def _metrics_text(version: Version) -> str:
    names: dict[str, None] = {}
    for name, data in version.metrics.items():
        names.setdefault(name)
        if isinstance(data, dict) and data.get("label"):
            names.setdefault(str(data["label"]))
    return " ".join(names)
