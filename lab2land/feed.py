"""Atom feeds of the site: ``reports/feed.xml`` (every report) and ``reports/<report>/feed.xml``.

One entry per version (ok, degraded or failed) with its status, headline metrics, error or
breached checks and a link to its page; callers add other events (a pin, a rollback) as
:class:`FeedEntry` objects through ``extra``. Feeds hold the newest :data:`MAX_ENTRIES` entries.

Entry and feed ids are ``urn:uuid`` values derived from the report and version names, so they
stay the same however often the site is rewritten, wherever it is served and whatever its title.
Links are absolute when ``[site] url`` is set; otherwise they are relative references, which
RFC 4287 allows (readers resolve them against the feed's own address), and no ``xml:base`` is
written. The XML is written by :mod:`xml.etree.ElementTree`, which escapes every text and
attribute; characters XML 1.0 cannot hold at all (terminal colour codes in an error) are removed.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urljoin
from xml.etree import ElementTree as ET

from . import __version__
from .config import Config
from .store import write_atomic
from .version import Version

__all__ = ["FEED", "MAX_ENTRIES", "FeedEntry", "entry_id", "feed_xml", "version_entry", "write_feeds"]

FEED = "feed.xml"
MAX_ENTRIES = 50  # per feed: readers only need what is new, and the file stays small
HEADLINE_METRICS = 5  # metrics named in an entry's summary
ATOM = "http://www.w3.org/2005/Atom"
# Fixed, so that ids derived from it never change (uuid5 of "lab2land").
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "lab2land")
# ANSI colour codes (tracebacks), then every character XML 1.0 forbids.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class FeedEntry:
    """One entry of a feed.

    Attributes:
        report: The report the entry belongs to (it appears in that report's feed and the site's).
        id: A stable, absolute id (see :func:`entry_id`).
        title: One line a reader sees in the list of entries.
        updated: When it happened (ISO 8601; a time without zone is taken as UTC).
        link: The page to open, relative to the site root (``sales/<version>/index.html``).
        status: A category term: ``ok``, ``degraded``, ``failed`` or another event's name (``pinned``).
        summary: Plain text: metrics, error or reason.
    """

    report: str
    id: str
    title: str
    updated: str
    link: str
    status: str
    summary: str = ""


def entry_id(*parts: str) -> str:
    """A stable ``urn:uuid`` for ``parts`` (``entry_id(report, version_id)``; add a word of your
    own for other events, e.g. ``entry_id(report, version_id, "pinned", when)``)."""
    return uuid.uuid5(NAMESPACE, "/".join(parts)).urn


def version_entry(version: Version, report_title: str) -> FeedEntry:
    """The entry announcing one published version."""
    label = f" ({version.variant_label})" if version.variant_label else ""
    parts = [f"Status: {version.status.value}."]
    metrics = [f"{m.label or m.name} = {m.shown()}" for m in list(version.metric_values().values())[:HEADLINE_METRICS]]
    if metrics:
        parts.append("Metrics: " + "; ".join(metrics) + ".")
    if version.summary:
        parts.append(("Error: " if version.error else "Breached: ") + version.summary)
    return FeedEntry(
        report=version.report, id=entry_id(version.report, version.version_id),
        title=f"{report_title}{label}: {version.status.value}",
        updated=version.finished or version.created or "", link=f"{version.report}/{version.folder}/index.html",
        status=version.status.value, summary=" ".join(parts))


def feed_xml(entries: list[FeedEntry], *, title: str, feed_id: str, author: str, here: str,
             site_url: str | None = None, subtitle: str = "", limit: int = MAX_ENTRIES) -> bytes:
    """An Atom document of the newest ``limit`` of ``entries``.

    Args:
        entries: In any order; they are sorted newest first.
        title: The feed's title. feed_id: Its stable id. author: Who publishes it (the site title).
        here: The folder of the feed relative to the site root (``""`` for the site feed,
            ``"sales/"`` for a report's), to write relative links when there is no ``site_url``.
        site_url: The site's public address (``[site] url``): links become absolute.
        subtitle: A line about the feed.
        limit: How many entries to keep.
    """
    entries = sorted(entries, key=lambda e: (_rfc3339(e.updated), e.id), reverse=True)[:limit]

    def href(path: str) -> str:
        if site_url:
            return urljoin(site_url.rstrip("/") + "/", path)
        return path[len(here):] if here and path.startswith(here) else ("../" * here.count("/")) + path

    # The namespace as a plain attribute: registering a default prefix would change ElementTree
    # for the whole process.
    feed = ET.Element("feed", xmlns=ATOM)
    _text(feed, "id", feed_id)
    _text(feed, "title", title)
    if subtitle:
        _text(feed, "subtitle", subtitle)
    _text(feed, "updated", _rfc3339(entries[0].updated) if entries else _rfc3339(None))
    _text(_sub(feed, "author"), "name", author or "lab2land")
    _sub(feed, "link", rel="self", type="application/atom+xml", href=href(f"{here}{FEED}"))
    _sub(feed, "link", rel="alternate", type="text/html", href=href(f"{here}index.html"))
    _text(feed, "generator", "lab2land", version=__version__)
    for e in entries:
        entry = _sub(feed, "entry")
        _text(entry, "id", e.id)
        _text(entry, "title", e.title)
        _text(entry, "updated", _rfc3339(e.updated))
        _sub(entry, "link", rel="alternate", type="text/html", href=href(e.link))
        _sub(entry, "category", term=_clean(e.status) or "unknown")
        if e.summary:
            _text(entry, "summary", e.summary)
    ET.indent(feed)
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True) + b"\n"


def write_feeds(config: Config, site_dir: Path, versions: dict[str, list[Version]],
                changed: Iterable[str] | None = None, extra: dict[str, list[FeedEntry]] | None = None,
                limit: int = MAX_ENTRIES) -> list[Path]:
    """Write the site's feed and each report's feed; return the files that changed.

    Args:
        config: The site's config (titles, ``[site] url``).
        site_dir: The site's root folder.
        versions: Each report's published versions (any order).
        changed: Reports whose own feed must be rewritten (None: all of them). The site feed is
            always recomputed; a file whose content is unchanged is not rewritten.
        extra: More entries per report (pins, rollbacks), in both feeds.
        limit: Entries per feed.
    """
    site_dir, extra = Path(site_dir), extra or {}
    site_url = getattr(config.site, "url", None)
    author = config.site.title
    per_report: dict[str, list[FeedEntry]] = {}
    for name, report in config.reports.items():
        per_report[name] = [version_entry(v, report.title) for v in versions.get(name, [])] + extra.get(name, [])
    written = []
    todo = config.reports if changed is None else [n for n in changed if n in config.reports]
    for name in todo:
        data = feed_xml(per_report[name], title=f"{config.reports[name].title} · {config.site.title}",
                        feed_id=entry_id("report", name), author=author, here=f"{name}/", site_url=site_url,
                        subtitle=config.reports[name].description, limit=limit)
        if _write_if_changed(site_dir / name / FEED, data):
            written.append(site_dir / name / FEED)
    newest = sorted((e for es in per_report.values() for e in es), key=lambda e: (_rfc3339(e.updated), e.id),
                    reverse=True)[:limit]
    data = feed_xml(newest, title=config.site.title, feed_id=entry_id("site", site_url or config.site.title),
                    author=author, here="", site_url=site_url, subtitle=config.site.description, limit=limit)
    if _write_if_changed(site_dir / FEED, data):
        written.append(site_dir / FEED)
    return written


# --- internals ---------------------------------------------------------------------------

def _clean(text: str) -> str:
    return _NOT_XML.sub("", _ANSI.sub("", str(text)))


def _sub(parent: ET.Element, tag: str, **attrs: str) -> ET.Element:
    return ET.SubElement(parent, tag, {k: _clean(v) for k, v in attrs.items()})


def _text(parent: ET.Element, tag: str, text: str, **attrs: str) -> ET.Element:
    element = _sub(parent, tag, **attrs)
    element.text = _clean(text)
    return element


def _rfc3339(value: str | None) -> str:
    """``value`` as an RFC 3339 UTC time (Atom refuses a time without zone); the epoch if unknown."""
    try:
        when = datetime.fromisoformat(value) if value else datetime(1970, 1, 1, tzinfo=UTC)
    except ValueError:
        when = datetime(1970, 1, 1, tzinfo=UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write_if_changed(path: Path, data: bytes) -> bool:
    try:
        if path.read_bytes() == data:
            return False
    except OSError:
        pass
    write_atomic(path, data)
    return True
