"""The site is rebuilt from what is on disk: a publish killed after committing versions but before
rewriting the pages hides nothing for good, and ``lab2land repair`` rewrites every page on demand.

The state such a kill leaves is set up exactly: build, keep the pages and ``.lab2land/state.json``,
publish one more version, then put the kept pages and state back. What is left is a committed
version folder that no page lists, as SIGKILL between the commit and the site write leaves it
(``tests/faults/test_kill.py`` lands real kills in that window).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bs4 import BeautifulSoup

from conftest import code_notebook, run_cli, write_project

SITE_FILES = ("catalog.json", "index.html", "r/index.html", "r/versions.js", "r/latest")


def make_project(folder: Path, value: int, **site) -> Path:
    return write_project(folder, {"r.ipynb": code_notebook("n = 1", f"x = {value}", "print(n, x)")},
                         {"r": {"notebook": "r.ipynb", "title": "R"}}, site={"title": "Recovery", **site})


def build_ok(project: Path, *args: str) -> str:
    done = run_cli("build", "--jobs", "1", *args, project=project)
    assert done.returncode == 0, done.stderr
    return done.stderr


def version_ids(project: Path) -> list[str]:
    return sorted(p.name for p in (project / "reports" / "r").iterdir() if p.name[:1].isdigit())


def keep_pages(project: Path, into: Path) -> None:
    """Copy the site pages and the build state (not the version folders) to ``into``."""
    for name in SITE_FILES:
        source = project / "reports" / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, into / name)
    shutil.copy(project / ".lab2land" / "state.json", into / "state.json")


def put_back_pages(project: Path, kept: Path) -> None:
    for name in SITE_FILES:
        target = project / "reports" / name
        if target.is_dir():
            shutil.rmtree(target)
            shutil.copytree(kept / name, target)
        else:
            shutil.copy(kept / name, target)
    shutil.copy(kept / "state.json", project / ".lab2land" / "state.json")


def killed_after_commit(tmp_path: Path) -> tuple[Path, str, str]:
    """A project whose newest version is committed but listed by no page; returns (project, old, new)."""
    project = make_project(tmp_path / "p", 1)
    build_ok(project)
    [old] = version_ids(project)
    kept = tmp_path / "kept"
    (kept / "r").mkdir(parents=True)
    keep_pages(project, kept)
    make_project(project, 2)
    build_ok(project)
    [new] = [v for v in version_ids(project) if v != old]
    put_back_pages(project, kept)
    assert new not in (project / "reports" / "catalog.json").read_text()
    return project, old, new


def assert_site_lists(project: Path, versions: list[str], latest: str) -> None:
    """Catalog, history, index, versions.js and ``latest`` agree with ``versions`` on disk."""
    site = project / "reports"
    catalog = json.loads((site / "catalog.json").read_text())["reports"]["r"]
    assert sorted(v["id"] for v in catalog["versions"]) == sorted(versions)
    assert catalog["variants"]["default"]["latest"] == latest
    history = BeautifulSoup((site / "r" / "index.html").read_text(), "html.parser")
    for version in versions:
        assert history.find("a", href=f"{version}/index.html"), f"history does not list {version}"
        assert version in (site / "r" / "versions.js").read_text()
    assert f"../{latest}/index.html" in (site / "r" / "latest" / "default.html").read_text()
    index = BeautifulSoup((site / "index.html").read_text(), "html.parser")
    assert index.find("a", href=f"r/{latest}/index.html"), "the index does not link the latest version"


def test_build_after_a_kill_lists_the_versions_committed_before_it(tmp_path):
    project, old, new = killed_after_commit(tmp_path)
    err = build_ok(project)
    assert "unchanged" in err  # nothing re-runs: the committed version is the newest of its key
    assert_site_lists(project, [old, new], latest=new)


def test_an_unchanged_build_leaves_the_pages_alone(tmp_path):
    # keep = 1: the build prunes; the listing it records must be the one after pruning.
    # keep = 1 keeps the newest version and the one its "what changed" page compares with.
    project = make_project(tmp_path / "p", 1, keep=1)
    build_ok(project)
    [first] = version_ids(project)
    for value in (2, 3):
        make_project(project, value, keep=1)
        build_ok(project)
    kept = version_ids(project)
    assert len(kept) == 2 and first not in kept
    catalog = (project / "reports" / "catalog.json").read_bytes()
    build_ok(project)
    assert (project / "reports" / "catalog.json").read_bytes() == catalog, "a no-op build rewrote the site"
    assert_site_lists(project, kept, latest=kept[-1])


def test_repair_rewrites_the_site_from_the_versions_on_disk(tmp_path):
    project, old, new = killed_after_commit(tmp_path)
    shutil.rmtree(project / "reports" / "r" / old)  # a catalog entry whose folder is gone
    (project / "reports" / ".staging" / "leftover").mkdir(parents=True)
    done = run_cli("repair", project=project)
    assert done.returncode == 0, done.stderr
    assert f"r/{new}: on disk but not in the catalog" in done.stderr
    assert f"r/{old}: in the catalog but its folder is gone" in done.stderr
    assert_site_lists(project, [new], latest=new)
    assert not (project / "reports" / ".staging").exists()
    again = run_cli("repair", project=project)
    assert again.returncode == 0 and "nothing to fix" in again.stderr, again.stderr
    # The build after a repair has nothing left to rewrite.
    catalog = (project / "reports" / "catalog.json").read_bytes()
    build_ok(project)
    assert (project / "reports" / "catalog.json").read_bytes() == catalog


def test_repair_of_a_project_never_built_says_so(tmp_path):
    project = make_project(tmp_path / "p", 1)
    done = run_cli("repair", project=project)
    assert done.returncode == 0, done.stderr
    assert "no catalog.json" in done.stderr
    assert json.loads((project / "reports" / "catalog.json").read_text())["reports"]["r"]["versions"] == []
