"""``lab2land restore URL``: bring a deployed site's versions back into the site folder.

A static host that replaces the whole site on every deployment (GitHub Pages) keeps history
only if each publish uploads every version. When the CI cache that carries the site between
runs is gone, this downloads each version folder listed in the deployed ``catalog.json`` (page,
executed notebook, manifest) so that the next build rewrites the index, history and catalog
from them. Versions are immutable, so the copy and the deployed site agree.
"""

from __future__ import annotations

import json
import posixpath
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .errors import EnvironmentProblem
from .store import MANIFEST, SAFE_NAME_RE, VERSION_RE, write_atomic

TIMEOUT_S = 60


@dataclass
class Restored:
    """What ``restore`` did: versions written, already present, or not downloadable."""

    written: int = 0
    present: int = 0
    missed: list[str] = None

    def __post_init__(self):
        self.missed = self.missed or []


def restore(base_url: str, site_dir: Path) -> Restored | None:
    """Download the versions listed by ``base_url/catalog.json`` that ``site_dir`` lacks.

    Args:
        base_url: Where the site is deployed (``https://org.github.io/project/``).
        site_dir: The local site folder (``[site] output``).

    Returns:
        What was restored, or None when nothing is deployed there yet (no catalog).

    Raises:
        EnvironmentProblem: the host cannot be reached, or its catalog is not lab2land's.
    """
    base = base_url.rstrip("/") + "/"
    try:
        catalog = json.loads(_get(base + "catalog.json"))
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise EnvironmentProblem(f"restore: {base}catalog.json answered {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise EnvironmentProblem(f"restore: cannot reach {base}: {exc.reason}") from None
    except ValueError:
        raise EnvironmentProblem(f"restore: {base}catalog.json is not JSON: is a lab2land site deployed "
                                 "there?") from None
    result = Restored()
    for folder, notebook in _version_folders(catalog):
        target = site_dir / folder
        if (target / MANIFEST).is_file():
            result.present += 1
            continue
        try:
            files = {name: _get(f"{base}{folder}/{name}") for name in (MANIFEST, "index.html", notebook)}
        except urllib.error.URLError:
            result.missed.append(folder)
            continue
        # The manifest last: a folder without one is not a version, so a kill here leaves none.
        for name in sorted(files, key=lambda n: n == MANIFEST):
            write_atomic(target / name, files[name])
        result.written += 1
    return result


def _version_folders(catalog: dict) -> list[tuple[str, str]]:
    """``(report/version, notebook file name)`` of each listed version whose names are safe:
    a catalog from the network never names a path outside the site."""
    found = []
    reports = catalog.get("reports") if isinstance(catalog, dict) else None
    if not isinstance(reports, dict):
        raise EnvironmentProblem("restore: the deployed catalog.json lists no reports: is it a lab2land site?")
    for report in reports.values():
        for version in report.get("versions", []) if isinstance(report, dict) else []:
            folder = posixpath.dirname(str(version.get("path", "")))
            notebook = posixpath.basename(str(version.get("notebook", "")))
            report_name, _, version_id = folder.partition("/")
            if (SAFE_NAME_RE.match(report_name) and VERSION_RE.match(version_id)
                    and SAFE_NAME_RE.match(notebook.removesuffix(".ipynb")) and notebook.endswith(".ipynb")):
                found.append((folder, notebook))
    return found


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:  # noqa: S310 - an operator's URL
        return response.read()
