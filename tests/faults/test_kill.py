"""SIGKILL the publisher at random points of a real publish (``python publish.py build``, real
kernels), then check what a reader and the next build see.

After each kill: no half-published version (every version folder holds a manifest, a page and
the executed notebook) and nothing left but staging and the invisible temporaries of atomic
writes; every process the killed publisher started (forkserver, runs, kernels) is gone after a
short bounded wait. After the next, un-killed build: every version folder on disk is in
catalog.json, the history page and versions.js, ``latest`` names the newest good version of each
variant, the pages parse and no leftover remains.

Kill points are random delays across a normal build's duration (measured first) plus targeted
moments found by polling: a kernel of the publisher running, the first version folder in place,
every version folder in place (the window between the commits and the site write), the catalog
listing them (between the site write and the end). The trial
count is ``LAB2LAND_KILL_TRIALS`` (default 20, seeded by ``LAB2LAND_KILL_SEED``), and each trial
changes the notebooks, so every killed build has versions to publish.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import nbformat
import psutil
import pytest
from bs4 import BeautifulSoup

from conftest import ROOT, code_notebook, run_cli, write_project

TRIALS = int(os.environ.get("LAB2LAND_KILL_TRIALS", "20"))
SEED = int(os.environ.get("LAB2LAND_KILL_SEED", "20261202"))
MARK = "LAB2LAND_KILL_MARK"  # inherited by every process the publisher starts: finds orphans by pid
ORPHAN_WAIT_S = 15  # bound for the publisher's children to notice it died and exit
BUILD_TIMEOUT_S = 180
VERSION_RE = re.compile(r"^\d{8}T\d{6}Z(-[a-z0-9-]+)?$")
TEMPORARY_RE = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$")  # store.write_atomic's, replaced or left by a kill
REPORTS = {"a": {"notebook": "notebooks/a.ipynb", "title": "A", "parameters": [{"n": 1}, {"n": 2}]},
           "b": {"notebook": "notebooks/b.ipynb", "title": "B"}}
VARIANTS = {"a": ["1", "2"], "b": ["default"]}
TARGETS = ("kernel_running", "first_commit", "all_committed", "site_written")
RUNS = sum(len(v) for v in VARIANTS.values())  # versions a build of changed notebooks commits


def write_trial(project: Path, trial: int) -> Path:
    """The project with notebooks whose code depends on ``trial`` (so a build has work to do)."""
    notebooks = {f"notebooks/{name}.ipynb": code_notebook("n = 1", f"x = {trial}", "print(n * x)") for name in REPORTS}
    return write_project(project, notebooks, REPORTS, site={"title": "Kill trials", "keep": 3})


# --- processes -----------------------------------------------------------------------------------

def start_publisher(project: Path, mark: str) -> subprocess.Popen:
    """``publish.py build`` with its output in a file: a pipe would stay open as long as any
    process that inherited it lives, so reading it to the end would wait for the orphans."""
    with open(project / "publisher.log", "ab") as log:
        return subprocess.Popen([sys.executable, str(ROOT / "publish.py"), "--project", str(project), "build",
                                 "--jobs", "2"], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                env={**os.environ, MARK: mark})


def marked(mark: str) -> list[psutil.Process]:
    """Live (non-zombie) processes that inherited ``MARK=mark``."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and proc.environ().get(MARK) == mark:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def cmdline(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:  # gone meanwhile
        return ""


def describe(procs: list[psutil.Process]) -> str:
    return "; ".join(f"{proc.pid} {cmdline(proc)[:120] or '(gone)'}" for proc in procs)


def assert_no_orphans(mark: str) -> None:
    deadline = time.monotonic() + ORPHAN_WAIT_S
    while (left := marked(mark)) and time.monotonic() < deadline:
        time.sleep(0.2)
    if left:
        names = describe(left)
        for proc in left:  # leave the machine clean for the next trial and other tests
            proc.kill()
        pytest.fail(f"processes of the killed publisher still alive after {ORPHAN_WAIT_S} s: {names}")


def kill(proc) -> None:
    proc.kill()  # SIGKILL: no handler, no clean-up
    proc.wait(timeout=30)


# --- the site on disk ----------------------------------------------------------------------------

def version_folders(site: Path) -> dict[str, set[str]]:
    return {name: {p.name for p in (site / name).iterdir() if VERSION_RE.match(p.name)}
            if (site / name).is_dir() else set() for name in REPORTS}


def catalog_ids(site: Path) -> dict[str, set[str]]:
    try:
        reports = json.loads((site / "catalog.json").read_text())["reports"]
    except FileNotFoundError:
        return {name: set() for name in REPORTS}
    return {name: {v["id"] for v in reports.get(name, {}).get("versions", [])} for name in REPORTS}


def assert_complete(folder: Path) -> dict:
    """A version folder holds its manifest, its page and its executed notebook."""
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["version_id"] == folder.name and manifest["status"] in ("ok", "failed"), folder
    assert (folder / "index.html").read_text().rstrip().endswith("</html>"), f"{folder}: truncated page"
    nbformat.read(str(folder / manifest["executed_notebook"]), as_version=4)
    return manifest


def leftovers(site: Path, allow_temporaries: bool) -> list[str]:
    """What is in the site but belongs to no published version or page."""
    expected_root = {"index.html", "catalog.json", "feed.xml", "search-index.js", "assets", ".publish.lock",
                     ".staging", *REPORTS}
    expected_report = {"index.html", "versions.js", "feed.xml", "latest"}
    found = []
    places = [(site, expected_root)] + [(site / name, expected_report) for name in REPORTS]
    places += [(site / name / "latest", {f"{v}.html" for v in VARIANTS[name]} | {"index.html"}) for name in REPORTS]
    for folder, expected in places:
        for child in folder.iterdir() if folder.is_dir() else []:
            if child.name in expected or VERSION_RE.match(child.name):
                continue
            if allow_temporaries and TEMPORARY_RE.match(child.name):
                continue
            found.append(str(child.relative_to(site)))
    staging = site / ".staging"
    if not allow_temporaries and staging.is_dir() and any(staging.iterdir()):
        found.append(".staging/*")
    return found


def assert_no_half_version(site: Path) -> None:
    for name, versions in version_folders(site).items():
        for version in versions:
            assert_complete(site / name / version)
    assert leftovers(site, allow_temporaries=True) == []


def newest_good(site: Path, report: str) -> dict[str, str]:
    manifests = [assert_complete(site / report / v) for v in version_folders(site)[report]]
    manifests.sort(key=lambda m: (m["created"], m["version_id"]), reverse=True)
    latest: dict[str, str] = {}
    for m in manifests:
        if m["status"] == "ok":
            latest.setdefault(m["variant"], m["version_id"])
    return latest


def page(path: Path) -> BeautifulSoup:
    text = path.read_text(encoding="utf-8")
    assert text.rstrip().endswith("</html>"), f"{path}: truncated"
    soup = BeautifulSoup(text, "html.parser")
    assert soup.title and soup.title.get_text(strip=True), f"{path}: no title"
    return soup


def assert_site_consistent(site: Path) -> None:
    """Every version on disk is listed everywhere and ``latest`` is the newest good one."""
    on_disk, listed = version_folders(site), catalog_ids(site)
    assert on_disk == listed, f"unlisted: { {r: on_disk[r] - listed[r] for r in REPORTS} }, " \
                              f"gone: { {r: listed[r] - on_disk[r] for r in REPORTS} }"
    catalog = json.loads((site / "catalog.json").read_text())["reports"]
    index = page(site / "index.html")
    for name in REPORTS:
        history = page(site / name / "index.html")
        nav = json.loads((site / name / "versions.js").read_text().split("=", 1)[1].rstrip().rstrip(";"))
        assert {v["id"] for v in nav["versions"]} == on_disk[name]
        for version in on_disk[name]:
            assert history.find("a", href=f"{version}/index.html"), f"{name} history misses {version}"
        latest = newest_good(site, name)
        assert set(latest) == set(VARIANTS[name]), f"{name}: a variant has no good version"
        for variant, version in latest.items():
            assert catalog[name]["variants"][variant]["latest"] == version
            assert nav["latest"][variant] == version
            assert f"../{version}/index.html" in (site / name / "latest" / f"{variant}.html").read_text()
            assert index.find("a", href=f"{name}/{version}/index.html"), f"index misses {name} {version}"
    assert leftovers(site, allow_temporaries=False) == []


# --- kill points -------------------------------------------------------------------------------

def wait_then_kill(proc, site: Path, before: dict[str, set[str]], point, mark: str) -> None:
    """Kill ``proc`` after ``point`` seconds, or once the targeted moment ``point`` is seen."""
    deadline = time.monotonic() + (point if isinstance(point, float) else BUILD_TIMEOUT_S)
    while time.monotonic() < deadline and proc.poll() is None:
        if isinstance(point, str) and reached(point, site, before, mark):
            break
        time.sleep(0.01)
    kill(proc)


def reached(target: str, site: Path, before: dict[str, set[str]], mark: str) -> bool:
    if target == "kernel_running":
        return any("ipykernel" in cmdline(p) for p in marked(mark))
    new = {name: found - before[name] for name, found in version_folders(site).items()}
    if target == "first_commit":
        return any(new.values())
    if sum(map(len, new.values())) < RUNS:
        return False
    listed = catalog_ids(site)
    return target == "all_committed" or all(new[name] <= listed[name] for name in REPORTS)


def phase(site: Path, before: dict[str, set[str]], finished: bool) -> str:
    """Where the kill landed, read from the disk it left."""
    new = {name: found - before[name] for name, found in version_folders(site).items()}
    if finished:
        return "build had finished"
    if not any(new.values()):
        return "before any commit"
    listed = catalog_ids(site)
    return "after the site write" if all(new[n] <= listed[n] for n in REPORTS) else "between commits and site write"


def kill_points(rng: random.Random, duration: float) -> list[float | str]:
    # One trial in three is targeted; the rest are spread over a whole build's duration.
    return [TARGETS[(i // 3) % len(TARGETS)] if i % 3 == 2 else round(rng.uniform(0.0, duration), 2)
            for i in range(TRIALS)]


# --- the tests -------------------------------------------------------------------------------

def test_kernels_die_with_a_killed_publisher(tmp_path):
    """A run whose kernel is busy when its publisher is SIGKILLed stops, kernel included, within
    seconds (not when its notebook would have finished, 90 s later)."""
    hold = ("import os, time\nopen('kernel.pid', 'w').write(str(os.getpid()))\n"
            "time.sleep(90)")
    project = write_project(tmp_path, {"r.ipynb": code_notebook("n = 1", hold)},
                            {"r": {"notebook": "r.ipynb", "title": "R"}}, site={"title": "Orphans"})
    proc = start_publisher(project, mark := f"orphans-{os.getpid()}")
    deadline = time.monotonic() + BUILD_TIMEOUT_S
    while not (project / "kernel.pid").exists() or not (project / "kernel.pid").read_text():
        assert proc.poll() is None and time.monotonic() < deadline, "the kernel never started"
        time.sleep(0.1)
    assert any(p.pid == int((project / "kernel.pid").read_text()) for p in marked(mark))
    kill(proc)
    assert_no_orphans(mark)


@pytest.mark.slow
def test_random_kills_never_half_publish_or_hide_a_version(tmp_path):
    rng = random.Random(SEED)
    project, site = write_trial(tmp_path, 0), tmp_path / "reports"
    clock = time.monotonic()
    first = run_cli("build", "--jobs", "2", project=project, timeout=BUILD_TIMEOUT_S)
    assert first.returncode == 0, first.stderr
    duration = time.monotonic() - clock  # a normal build of every report, CLI start-up included
    phases: Counter[str] = Counter()
    landed = []
    for trial, point in enumerate(kill_points(rng, duration), start=1):
        write_trial(project, trial)
        before = version_folders(site)
        proc = start_publisher(project, mark := f"trial-{os.getpid()}-{trial}")
        wait_then_kill(proc, site, before, point, mark)
        landed.append((point, phase(site, before, finished=proc.returncode == 0)))
        phases[landed[-1][1]] += 1
        assert_no_orphans(mark)
        assert_no_half_version(site)
        done = run_cli("build", "--jobs", "2", project=project, timeout=BUILD_TIMEOUT_S)
        assert done.returncode == 0, f"trial {trial} (kill at {point}): {done.stderr}"
        assert_site_consistent(site)
    print(f"\nkill trials: {TRIALS} (seed {SEED}, normal build {duration:.1f} s): {dict(phases)}")
    print("kill points: " + ", ".join(f"{point} -> {where}" for point, where in landed))
