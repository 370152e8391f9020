"""The site around the versions: index, per-report history, ``latest`` pages, ``versions.js`` and
``catalog.json``.

Everything here is derived from the manifests on disk, so it can always be rebuilt and can never
disagree with what is published. Every file is replaced atomically; the catalog and the index are
written last, so they only ever name versions that are already in place. :func:`site_key` tells
whether the pages on disk are still current: a build records it after writing them, and any
version folder that appears or goes (a publish killed between its commits and the site write, a
prune, a restore) changes it.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from . import __version__
from .config import Config
from .feed import FeedEntry, entry_id, write_feeds
from .page_needs import site_plotly_js
from .pins import PINS, Pin, latest_with_pins, read_pins
from .plan import report_variants
from .search import write_search_index
from .store import MANIFEST, VERSION_RE, Store, write_atomic
from .templating import template_fingerprint
from .trends import headline, trend_figures
from .version import Status, Version

CATALOG_SCHEMA = 2  # 2: versions carry metrics and breaches; status may be "degraded"
INDEX_PAGE_SIZE = 100  # reports per index page: 1,000 reports make 10 pages, not one of several MB
INDEX_PAGE_RE = re.compile(r"^index-(\d+)\.html$")
# store.write_atomic's temporary files (".<name>.<8 hex>.tmp"), left behind when a publish is
# killed in the middle of writing a page, an asset or the state.
TEMPORARY_RE = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$")


def version_listing(store: Store, reports: Iterable[str]) -> dict[str, list[str]]:
    """Each report's published version folders, by name: what the pages have to list.

    Version folders are immutable, so their names are enough to tell whether the pages are
    current (one ``scandir`` per report and a ``stat`` per version, no manifest read). A folder
    counts once its manifest is in: ``restore`` writes it last, so a half-restored folder turns
    into a version later.
    """
    listing = {}
    for report in sorted(reports):
        try:
            with os.scandir(store.report_dir(report)) as entries:
                names = [e.name for e in entries if VERSION_RE.match(e.name) and os.path.isfile(
                    os.path.join(e.path, MANIFEST))]
        except OSError:  # never published
            names = []
        listing[report] = sorted(names)
    return listing


def report_keys(config: Config, store: Store, template_dirs: list[Path] | None = None) -> dict[str, str]:
    """For each report, sha256 of what its own pages (history, ``latest``, ``versions.js``) are
    made of: the site settings, its config, the templates, its version folders and its pins. A
    build rewrites only the pages of reports whose key changed."""
    common = [config.site.model_dump_json(), template_fingerprint(template_dirs)]
    listing = version_listing(store, config.reports)
    keys = {}
    for name, report in config.reports.items():
        try:
            pins = (store.report_dir(name) / PINS).read_text(encoding="utf-8")
        except OSError:
            pins = ""
        payload = json.dumps([*common, report.model_dump_json(), listing[name], pins])
        keys[name] = hashlib.sha256(payload.encode()).hexdigest()
    return keys


def site_key(config: Config, store: Store, template_dirs: list[Path] | None = None,
             keys: dict[str, str] | None = None) -> str:
    """sha256 of what the site pages are made of: the config, the templates, the versions on disk
    and the pins (``keys``: the :func:`report_keys` already computed for this state of the site)."""
    keys = report_keys(config, store, template_dirs) if keys is None else keys
    payload = json.dumps({"config": config.model_dump_json(), "reports": keys}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def remove_temporaries(site_dir: Path, reports: Iterable[str], *more: Path) -> list[Path]:
    """Delete the temporaries of atomic writes that a killed publish left in the site's folders
    (and in ``more``); call it only while holding the publish lock, when no write is in flight."""
    folders = [site_dir, *more, *(Path(top) for top, _, _ in os.walk(site_dir / "assets"))]
    folders += [folder for r in reports for folder in (site_dir / r, site_dir / r / "latest")]
    removed = []
    for folder in folders:
        try:
            with os.scandir(folder) as entries:
                stale = [Path(e.path) for e in entries if TEMPORARY_RE.match(e.name) and e.is_file()]
        except OSError:
            continue
        for path in stale:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def dashboard_path(report: str) -> str:
    """Where ``publish.py serve`` mounts a report's live dashboard, relative to the site root."""
    return f"dashboards/{report}/"


def _pin_entry(pin: Pin | None) -> dict | None:
    return pin.model_dump() if pin else None


def _variant_entries(versions: list[Version], latest: dict[str, Version], variants: list[tuple[str, str, dict]],
                     prefix: str, pins: dict[str, Pin]) -> list[dict]:
    entries = []
    for key, label, parameters in variants:
        good = latest.get(key)
        line = [v for v in versions if v.variant == key]
        newest = line[0] if line else None
        # The newest run, when it is not what readers see: failed, or degraded and not promoted.
        failure = newest if newest and newest is not good and newest.status is not Status.OK else None
        entries.append({
            "key": key, "label": label, "parameters": parameters,
            "latest_url": f"{prefix}latest/{key}.html" if good else None,
            "latest": _version_entry(good, prefix) if good else None,
            "last_failure": _version_entry(failure, prefix) if failure else None,
            "metrics": headline(line, good),
            "pinned": _pin_entry(pins.get(key)) if good and key in pins and pins[key].version == good.version_id
            else None,
        })
    return entries


def _version_entry(version: Version, prefix: str, latest_ids: frozenset = frozenset()) -> dict:
    return {
        "id": version.version_id, "variant": version.variant, "label": version.variant_label,
        "status": version.status.value, "parameters": version.parameters, "created": version.created,
        "duration_s": version.duration_s, "url": f"{prefix}{version.folder}/index.html",
        "notebook_url": f"{prefix}{version.folder}/{version.executed_notebook}" if version.executed_notebook else None,
        "summary": version.summary, "is_latest": version.version_id in latest_ids,
        "changes_url": f"{prefix}{version.folder}/changes.html" if version.previous else None,
    }


def _pin_feed_entries(report: str, title: str, versions: list[Version], pins: dict[str, Pin]) -> list[FeedEntry]:
    """A feed entry per pin: readers following the feed learn that latest was rolled back."""
    by_id = {v.version_id: v for v in versions}
    entries = []
    for key, pin in pins.items():
        version = by_id.get(pin.version)
        if version is None:
            continue
        label = f" ({version.variant_label})" if version.variant_label else ""
        who = f" by {pin.by}" if pin.by else ""
        entries.append(FeedEntry(
            report=report, id=entry_id(report, key, pin.version, "pinned", pin.at),
            title=f"{title}{label}: latest pinned to {pin.version}", updated=pin.at,
            link=f"{report}/{version.folder}/index.html", status="pinned",
            summary=f"Rolled back{who}." + (f" Reason: {pin.reason}" if pin.reason else "")))
    return entries


def _redirect_page(target: str, title: str) -> str:
    # A meta refresh works on every static host and on file://, where symlinks may not.
    t, u = html.escape(title), html.escape(target, quote=True)
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{t}</title>'
            f'<meta http-equiv="refresh" content="0; url={u}"><link rel="canonical" href="{u}"></head>'
            f'<body><p><a href="{u}">{t}: open the latest version</a></p></body></html>')


class SiteWriter:
    """Writes the site pages of a config from the versions in its store."""

    def __init__(self, config: Config, template_dirs: list[Path] | None = None):
        self.config = config
        self.store = Store(config.output_dir)
        self.variants = {name: report_variants(report) for name, report in config.reports.items()}
        self.template_dirs = template_dirs
        self.generated = datetime.now(UTC).isoformat(timespec="seconds")

    def _site(self) -> dict:
        return {"title": self.config.site.title, "description": self.config.site.description}

    def write(self, changed: Iterable[str] | None = None) -> dict:
        """Write the catalog, the index pages and the pages of each report in ``changed`` (every
        report when None); return the catalog."""
        from .render import render_site_page  # nbconvert loads only when pages are written

        changed = set(self.config.reports if changed is None else changed)
        catalog = {"schema": CATALOG_SCHEMA, "generator": f"lab2land {__version__}", "generated": self.generated,
                   "site": self._site(), "reports": {}}
        index_reports, published, pin_entries = [], {}, {}
        for name, report in self.config.reports.items():
            versions, pins = self.store.versions(name), read_pins(self.store, name)
            published[name], pin_entries[name] = versions, _pin_feed_entries(name, report.title, versions, pins)
            latest = latest_with_pins(versions, report.promote_degraded, pins)
            if name in changed:
                self._write_report(name, versions, latest, pins)
            catalog["reports"][name] = self._catalog_entry(name, versions, latest, pins)
            index_reports.append({
                "name": name, "title": report.title, "description": report.description, "tags": report.tags,
                "url": f"{name}/index.html",
                "dashboard_url": dashboard_path(name) if report.dashboard else None,
                "variants": _variant_entries(versions, latest, self.variants[name], f"{name}/", pins),
            })
        out = self.config.output_dir
        write_atomic(out / "catalog.json", json.dumps(catalog, indent=2, sort_keys=True, default=str))
        write_feeds(self.config, out, published, changed, extra=pin_entries)
        write_search_index(self.config, out, published)  # reads only versions it has not indexed yet
        self._write_index(index_reports, render_site_page)
        return catalog

    def _write_index(self, reports: list[dict], render_site_page) -> None:
        """``index.html`` and, beyond INDEX_PAGE_SIZE reports, ``index-2.html`` and so on."""
        out = self.config.output_dir
        chunks = [reports[i:i + INDEX_PAGE_SIZE] for i in range(0, len(reports), INDEX_PAGE_SIZE)] or [[]]
        names = ["index.html", *(f"index-{n}.html" for n in range(2, len(chunks) + 1))]
        pages = [{"number": n, "url": name} for n, name in enumerate(names, 1)]
        for number, (name, chunk) in enumerate(zip(names, chunks, strict=True), 1):
            write_atomic(out / name, render_site_page("index.html.j2", {
                "site": self._site(), "generated": self.generated, "assets": "assets/", "reports": chunk,
                "pages": pages if len(pages) > 1 else [], "page_number": number, "report_count": len(reports),
            }, template_dirs=self.template_dirs))
        for path in out.glob("index-*.html"):  # pages of a longer list than today's
            match = INDEX_PAGE_RE.match(path.name)
            if match and int(match.group(1)) > len(chunks):
                path.unlink(missing_ok=True)

    def _write_report(self, name: str, versions: list[Version], latest: dict[str, Version],
                      pins: dict[str, Pin]) -> None:
        report, folder = self.config.reports[name], self.store.report_dir(name)
        latest_ids = frozenset(v.version_id for v in latest.values())
        for key, version in latest.items():
            write_atomic(folder / "latest" / f"{key}.html",
                         _redirect_page(f"../{version.folder}/index.html", report.title))
        first = next((latest[k] for k, _, _ in self.variants[name] if k in latest), None)
        if first:
            write_atomic(folder / "latest" / "index.html", _redirect_page(f"../{first.folder}/index.html",
                                                                           report.title))
        nav = {"report": name, "latest": {k: v.version_id for k, v in latest.items()},
               "versions": [{"id": v.version_id, "variant": v.variant, "status": v.status.value,
                             "created": v.created, "url": f"{v.folder}/index.html"} for v in versions],
               # Version pages link the live dashboard from here, so turning it on later reaches them.
               "dashboard": f"../{dashboard_path(name)}" if report.dashboard else None}
        # A script, not JSON: pages opened from file:// may load scripts but not fetch() files.
        write_atomic(folder / "versions.js", "window.lab2landVersions = " + json.dumps(nav, sort_keys=True) + ";\n")
        from .render import render_site_page

        trends = trend_figures(versions, self.variants[name])
        write_atomic(folder / "index.html", render_site_page("history.html.j2", {
            "site": self._site(), "generated": self.generated, "assets": "../assets/", "site_url": "../index.html",
            "report": {"name": name, "title": report.title, "description": report.description, "tags": report.tags,
                       "dashboard_url": f"../{dashboard_path(name)}" if report.dashboard else None},
            "variants": _variant_entries(versions, latest, self.variants[name], "", pins),
            "versions": [_version_entry(m, "", latest_ids) for m in versions],
            "trends": trends,
            "plotly_js": site_plotly_js(trends),
        }, template_dirs=self.template_dirs))

    def _catalog_entry(self, name: str, versions: list[Version], latest: dict[str, Version],
                       pins: dict[str, Pin]) -> dict:
        report = self.config.reports[name]
        return {
            "title": report.title, "description": report.description, "tags": report.tags,
            "notebook": report.notebook, "history": f"{name}/index.html",
            "dashboard": dashboard_path(name) if report.dashboard else None,
            "variants": {key: {"label": label, "parameters": params,
                               "latest": latest[key].version_id if key in latest else None,
                               "latest_url": f"{name}/latest/{key}.html" if key in latest else None,
                               "pinned": _pin_entry(pins.get(key))}
                         for key, label, params in self.variants[name]},
            "versions": [{
                "id": v.version_id, "variant": v.variant, "status": v.status.value,
                "parameters": v.parameters, "created": v.created, "finished": v.finished,
                "duration_s": v.duration_s, "path": f"{name}/{v.folder}/index.html",
                "notebook": f"{name}/{v.folder}/{v.executed_notebook}" if v.executed_notebook else None,
                "error": v.error.summary if v.error else None,
                "metrics": {k: m.get("value") for k, m in v.metrics.items()},
                "breaches": [b.message for b in v.breaches],
            } for v in versions],
        }
