"""Two publishes of one site at the same time: the one that waits for the lock reads the build state
and takes its time stamp only once it holds the lock, so neither the other's ``--due`` mark nor
the order of version ids is lost."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

import psutil

from conftest import code_notebook, start_cli, write_project
from lab2land.store import version_stamp

HOLD = """import os, time
open('a_started', 'w').close()
deadline = time.monotonic() + 120  # bounded: a broken test must not hang the suite
while not os.path.exists('release') and time.monotonic() < deadline:
    time.sleep(0.1)"""


def wait_for(condition, what: str, proc, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"{what}: the build exited early: {proc.communicate()[1]}"
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(0.1)


def wait_until_idle(proc, quiet_windows: int = 3, window_s: float = 0.5, timeout: float = 60) -> None:
    """Wait until ``proc`` uses (almost) no CPU for a while: a build blocked on the publish lock
    only wakes to retry it, after it has started up and done all it does before the lock."""
    process, quiet = psutil.Process(proc.pid), 0
    deadline = time.monotonic() + timeout
    while quiet < quiet_windows:
        assert proc.poll() is None and time.monotonic() < deadline, "the second build never settled to wait"
        before = sum(process.cpu_times()[:2])
        time.sleep(window_s)
        quiet = quiet + 1 if sum(process.cpu_times()[:2]) - before < 0.02 else 0


def manifest(project: Path, report: str) -> dict:
    [folder] = [p for p in (project / "reports" / report).iterdir() if p.name[:1].isdigit()]
    return json.loads((folder / "manifest.json").read_text())


def test_a_build_that_waited_for_the_lock_keeps_the_others_state_and_newer_ids(tmp_path):
    project = write_project(tmp_path, {
        "notebooks/a.ipynb": code_notebook("n = 1", HOLD),
        "notebooks/b.ipynb": code_notebook("n = 1", "print(n)"),
    }, {"a": {"notebook": "notebooks/a.ipynb", "title": "A", "schedule": "daily"},
        "b": {"notebook": "notebooks/b.ipynb", "title": "B", "schedule": "daily"}}, site={"title": "Two"})
    first = start_cli("build", "a", "--due", "--jobs", "1", project=project)
    second = None
    try:
        wait_for((project / "notebooks" / "a_started").exists, "report a's kernel", first)
        second = start_cli("build", "b", "--due", "--jobs", "1", project=project)
        wait_until_idle(second)  # second is now blocked on the lock that first holds
        (project / "notebooks" / "release").touch()
        for proc in (first, second):
            _, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.communicate()
    checked = json.loads((project / ".lab2land" / "state.json").read_text())["checked"]
    assert set(checked) == {"a/default", "b/default"}, "one build's --due mark was lost"
    a, b = manifest(project, "a"), manifest(project, "b")
    # b was stamped after it got the lock, i.e. after a's run had finished.
    assert b["version_id"] >= version_stamp(datetime.fromisoformat(a["finished"])), (a["finished"], b["version_id"])
    assert b["version_id"] > a["version_id"]
