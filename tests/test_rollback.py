"""Rollback and pins on a real built site: ``lab2land rollback`` / ``unpin`` move a variant's latest
with no kernel and no new version; builds keep publishing but leave a pinned latest where it is;
retention keeps pinned versions and the versions kept pages compare with."""

from __future__ import annotations

import getpass
import json
import time
from pathlib import Path

import feedparser
import psutil
import pytest
from bs4 import BeautifulSoup

from conftest import code_notebook, run_cli, start_cli, write_project
from lab2land.store import VERSION_RE, Store


def make(folder: Path, value: int = 1, **report) -> Path:
    nb = code_notebook("n = 1\nfail = False", f"x = {value}", "if fail:\n    raise ValueError('boom')", "print(n, x)")
    return write_project(folder, {"r.ipynb": nb}, {"r": {
        "notebook": "r.ipynb", "title": "R", "parameters": [{"n": 1}, {"n": 2, "fail": True}], **report}},
        site={"title": "Pins"})


def build(project: Path, *args: str, code: int = 1) -> str:
    done = run_cli("build", "--jobs", "2", "--force", *args, project=project)
    assert done.returncode == code, done.stderr  # variant 2-true fails on purpose: exit 1
    return " ".join(done.stderr.split())


def catalog(project: Path) -> dict:
    return json.loads((project / "reports" / "catalog.json").read_text())["reports"]["r"]


def good_ids(project: Path, variant: str = "1") -> list[str]:
    """The variant's ok versions, newest first."""
    return [v.version_id for v in Store(project / "reports").versions("r") if v.variant == variant and v.complete]


def version_folders(project: Path) -> list[str]:
    return sorted(p.name for p in (project / "reports" / "r").iterdir() if VERSION_RE.match(p.name))


def latest_target(project: Path, variant: str = "1") -> str:
    page = BeautifulSoup((project / "reports" / "r" / "latest" / f"{variant}.html").read_text(), "html.parser")
    return page.find("meta", attrs={"http-equiv": "refresh"})["content"].split("url=")[1].split("/")[1]


def run_without_children(project: Path, *args: str) -> tuple[int, str, int]:
    """Run the CLI, polling its process tree: (exit status, stderr, most child processes seen)."""
    proc = start_cli(*args, project=project)
    seen = 0
    with pytest.raises(psutil.NoSuchProcess):  # polled until the command is gone
        parent = psutil.Process(proc.pid)
        while True:
            seen = max(seen, len(parent.children(recursive=True)))
            if proc.poll() is not None:
                raise psutil.NoSuchProcess(proc.pid)
            time.sleep(0.01)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, " ".join(err.split()), seen


@pytest.fixture(scope="module")
def three_builds(tmp_path_factory) -> Path:
    project = make(tmp_path_factory.mktemp("pins") / "p")
    for value in (1, 2, 3):
        make(project, value)
        build(project)
    return project


def test_rollback_pins_the_previous_good_version_without_running_anything(three_builds, tmp_path):
    project = tmp_path / "p"
    import shutil

    shutil.copytree(three_builds, project)
    v3, v2, v1 = good_ids(project)
    folders = version_folders(project)

    code, err, children = run_without_children(project, "rollback", "r")
    assert code == 2 and "several variants: name one with --variant (1, 2-true)" in err, err

    code, err, children = run_without_children(project, "rollback", "r", "--variant", "1", "--reason",
                                               "v3 read a half-loaded <b>table</b>")
    assert code == 0, err
    assert f"r/1: latest pinned to {v2} (was {v3})" in err and children == 0  # no kernel, no subprocess
    assert version_folders(project) == folders and (project / "reports" / "r" / "pins.json").is_file()

    # latest page, catalog, history and the index agree
    assert latest_target(project) == v2
    entry = catalog(project)
    assert entry["variants"]["1"]["latest"] == v2
    pinned = entry["variants"]["1"]["pinned"]
    assert pinned["version"] == v2 and pinned["by"] == getpass.getuser() and pinned["reason"].startswith("v3 read")
    history = BeautifulSoup((project / "reports" / "r" / "index.html").read_text(), "html.parser")
    line = history.find(attrs={"data-l2l-pinned": v2})
    assert line and "v3 read a half-loaded <b>table</b>" in line.get_text() and not line.find("b")
    assert history.find("tr", id=f"v-{v2}").find(class_="l2l-badge-latest")
    assert not history.find("tr", id=f"v-{v3}").find(class_="l2l-badge-latest")
    index = BeautifulSoup((project / "reports" / "index.html").read_text(), "html.parser")
    assert index.find(attrs={"data-l2l-pinned": v2})
    for feed in (project / "reports" / "r" / "feed.xml", project / "reports" / "feed.xml"):
        parsed = feedparser.parse(feed.read_bytes())
        assert not parsed.bozo, parsed.bozo_exception
        [pin_entry] = [e for e in parsed.entries if "latest pinned to" in e.title]
        assert pin_entry.title.endswith(f"latest pinned to {v2}") and "half-loaded" in pin_entry.summary
        assert [t.term for t in pin_entry.tags] == ["pinned"] and pin_entry.link.endswith(f"{v2}/index.html")
    versions_js = (project / "reports" / "r" / "versions.js").read_text()
    assert f'"1": "{v2}"' in versions_js

    # a later build publishes a new version but leaves latest where the pin holds it
    out = build(project)
    v4 = good_ids(project)[0]
    assert v4 not in (v3, v2) and latest_target(project) == v2 and catalog(project)["variants"]["1"]["latest"] == v2
    assert f"r[n=1]: published {v4}, but latest stays pinned to {v2}" in out or \
        f"published {v4}, but latest stays pinned to {v2}" in out, out
    listing = run_cli("list", project=project, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert f"{v2} (pinned)" in listing.stdout, listing.stdout

    # unpin: latest is the newest good version again
    code, err, _ = run_without_children(project, "unpin", "r", "--variant", "1")
    assert code == 0 and "r/1: unpinned" in err, err
    assert latest_target(project) == v4 and catalog(project)["variants"]["1"]["pinned"] is None
    assert not (project / "reports" / "r" / "pins.json").exists()


def test_rollback_refuses_failed_unknown_and_other_variants(three_builds):
    failed = next(v.version_id for v in Store(three_builds / "reports").versions("r") if not v.complete)
    before = (three_builds / "reports" / "catalog.json").read_bytes()
    for args, expected in [
        ((failed,), f"version {failed} failed (cell 4"),
        (("20990101T000000Z",), "unknown version '20990101T000000Z' (the newest are: "),
        ((failed, "--variant", "1"), f"version {failed} is of variant '2-true', not '1'"),
        (("--variant", "nope"), "unknown variant 'nope' (valid: 1, 2-true)"),
        (("--variant", "2-true"), "r/2-true: no good version before the current latest (none) to roll back to"),
    ]:
        done = run_cli("rollback", "r", *args, project=three_builds)
        assert done.returncode == 2 and expected in " ".join(done.stderr.split()), (args, done.stderr)
    assert run_cli("rollback", "nope", project=three_builds).returncode == 2
    assert (three_builds / "reports" / "catalog.json").read_bytes() == before
    done = run_cli("unpin", "r", "--variant", "1", project=three_builds)
    assert done.returncode == 2 and "r/1 is not pinned (pinned: none)" in done.stderr


def retained(three_builds: Path, tmp_path: Path) -> tuple[Path, list[str]]:
    """The three builds, v1 pinned, then a fourth build with keep = 1: (project, [v4, v3, v2, v1])."""
    import shutil

    project = tmp_path / "p"
    shutil.copytree(three_builds, project)
    v3, v2, v1 = good_ids(project)
    assert run_cli("rollback", "r", v1, project=project).returncode == 0  # the oldest, pinned
    make(project, 4, keep=1)
    build(project)
    return project, [good_ids(project)[0], v3, v2, v1]


def test_retention_keeps_pinned_versions_and_what_kept_pages_compare_with(three_builds, tmp_path):
    project, (v4, v3, v2, v1) = retained(three_builds, tmp_path)
    # keep = 1: v4 (newest) stays, v3 stays because v4's "what changed" page compares with it,
    # v1 stays pinned; v2 goes.
    assert set(good_ids(project)) == {v4, v3, v1}
    assert next(v for v in Store(project / "reports").versions("r") if v.version_id == v4).previous == v3
    entry = catalog(project)
    assert entry["variants"]["1"]["latest"] == v1
    assert {v["id"] for v in entry["versions"] if v["variant"] == "1"} == {v4, v3, v1}
    history = (project / "reports" / "r" / "index.html").read_text()
    assert v2 not in history and v1 in history


def test_a_changes_page_whose_previous_version_was_removed_links_nothing_dead(three_builds, tmp_path, page):
    project, (_, v3, removed, _) = retained(three_builds, tmp_path)
    changes = project / "reports" / "r" / v3 / "changes.html"
    assert f"../{removed}/index.html" in changes.read_text()  # the page itself is never rewritten
    page.goto(changes.as_uri())
    page.wait_for_selector(".l2l-removed")
    assert page.locator(f'a[href="../{removed}/index.html"]').count() == 0
    assert "(no longer kept)" in page.locator(".l2l-removed").inner_text()
    assert page.locator('a[href="index.html"]').count() >= 1 and not page.page_errors


def test_a_pins_file_lab2land_did_not_write_is_a_clear_error(three_builds, tmp_path):
    import shutil

    project = tmp_path / "p"
    shutil.copytree(three_builds, project)
    (project / "reports" / "r" / "pins.json").write_text('{"pins": {"1": {"version": 3}}}')
    done = run_cli("repair", project=project)
    assert done.returncode == 4, done.stderr
    assert "reports/r/pins.json: not a pins file lab2land wrote" in done.stderr and "lab2land unpin r" in done.stderr
