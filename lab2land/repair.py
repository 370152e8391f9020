"""``lab2land repair``: rewrite the whole site from the versions on disk, and say what was wrong.

The pages, ``latest`` redirects, ``versions.js`` files and the catalog are derived from the version
folders, so they can always be rebuilt. A build already rewrites them whenever the version folders
differ from what they were written from; ``repair`` does it on demand (a hand-edited or deleted
page, a site copied together from several places) and compares the old catalog with the new one.
It never runs a notebook and never deletes a version (no pruning).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .assets import install_assets
from .build import clean_leftovers, write_site
from .cache import State
from .config import Config
from .store import LOCK_WAIT_S, Store


@dataclass
class Repaired:
    """What a repair changed; each entry names ``report/version`` (or ``report/variant``)."""

    had_catalog: bool = True
    unlisted: list[str] = field(default_factory=list)  # on disk, missing from the old catalog
    gone: list[str] = field(default_factory=list)  # in the old catalog, folder gone
    unconfigured: list[str] = field(default_factory=list)  # in the old catalog, report not in publish.toml
    latest: list[str] = field(default_factory=list)  # "report/variant: old -> new"

    @property
    def problems(self) -> int:
        return len(self.unlisted) + len(self.gone) + len(self.unconfigured) + len(self.latest)


def repair(config: Config, *, wait_s: float = LOCK_WAIT_S) -> Repaired:
    """Under the publish lock: clear staging, install the assets, rewrite every page and the catalog.

    Raises:
        PublishLocked: another publish held the site for ``wait_s`` seconds.
        AssetError: this install lacks its offline assets.
    """
    store = Store(config.output_dir)
    with store.lock(wait_s):
        old = _read_catalog(config.output_dir / "catalog.json")
        clean_leftovers(config, store)
        install_assets(config.output_dir)
        state = State(config.project_dir)
        new = write_site(config, store, state, prune=False, everything=True)
        state.save()  # the next build finds the pages current and leaves them alone
    return compare(old, new, config.output_dir)


def _read_catalog(path: Path) -> dict | None:
    try:
        catalog = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # missing, or cut short by a disk full: repair is what fixes it
        return None
    return catalog if isinstance(catalog, dict) and isinstance(catalog.get("reports"), dict) else None


def _ids(catalog: dict) -> set[tuple[str, str]]:
    return {(name, v["id"]) for name, report in catalog["reports"].items() for v in report.get("versions", [])
            if isinstance(v, dict) and "id" in v}


def compare(old: dict | None, new: dict, site_dir: Path) -> Repaired:
    """What differs between the catalog before a repair and the one written from disk."""
    if old is None:
        return Repaired(had_catalog=False)
    found = Repaired()
    before, after = _ids(old), _ids(new)
    found.unlisted = sorted(f"{r}/{v}" for r, v in after - before)
    for report, version in sorted(before - after):
        bucket = found.unconfigured if report not in new["reports"] and (site_dir / report / version).is_dir() \
            else found.gone
        bucket.append(f"{report}/{version}")
    for name, report in new["reports"].items():
        was = old["reports"].get(name, {}).get("variants", {})
        for key, variant in report["variants"].items():
            previous = (was.get(key) or {}).get("latest")
            if previous != variant["latest"]:
                found.latest.append(f"{name}/{key}: {previous or 'none'} -> {variant['latest'] or 'none'}")
    return found
