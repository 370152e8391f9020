"""Nothing is lost: a failing notebook becomes a failed version and never replaces the latest good
one; a killed publish leaves no partial version; Ctrl-C / SIGTERM take kernels down."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import psutil
from bs4 import BeautifulSoup

from conftest import code_notebook, start_cli, write_project
from lab2land.build import build
from lab2land.config import load_config


def make_project(tmp: Path, body: str, *, timeout: int = 600) -> Path:
    """Report ``r``: a parameters cell, ``body``, then a cell printing ``finished``."""
    return write_project(tmp, {"report.ipynb": code_notebook("n = 1", body, "print('finished', n)")},
                         {"r": {"notebook": "report.ipynb", "title": "R", "timeout": timeout}},
                         site={"title": "Failures"})


def version_dirs(project: Path) -> list[str]:
    folder = project / "reports" / "r"
    return sorted(p.name for p in folder.iterdir() if p.name[:1].isdigit()) if folder.is_dir() else []


def test_failing_notebook_keeps_the_last_good_version_latest(tmp_path):
    project = make_project(tmp_path, "x = 2")
    [good] = [o.version_id for o in build(load_config(project)).outcomes]
    make_project(tmp_path, "raise ValueError('region not found: mars')")
    proc = start_cli("build", project=project)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err
    assert "ValueError: region not found: mars" in err
    failed = [v for v in version_dirs(project) if v != good]
    assert len(failed) == 1
    manifest = json.loads((project / "reports" / "r" / failed[0] / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["error"]["kind"] == "cell_error"
    assert manifest["error"]["ename"] == "ValueError" and manifest["error"]["cell_index"] == 1
    # The failed version has a readable page that marks the failing cell.
    page = BeautifulSoup((project / "reports" / "r" / failed[0] / "index.html").read_text(), "html.parser")
    assert "region not found: mars" in page.get_text()
    # "latest" and the catalog still name the good version; the index shows the failure too.
    latest = (project / "reports" / "r" / "latest" / "default.html").read_text()
    assert f"../{good}/index.html" in latest
    catalog = json.loads((project / "reports" / "catalog.json").read_text())
    assert catalog["reports"]["r"]["variants"]["default"]["latest"] == good
    index = BeautifulSoup((project / "reports" / "index.html").read_text(), "html.parser")
    assert index.find("a", href=f"r/{failed[0]}/index.html"), "index does not show the newer failure"


def test_killed_publish_leaves_no_partial_version(tmp_path):
    project = make_project(tmp_path, "import time\nopen('started', 'w').close()\ntime.sleep(60)")
    proc = start_cli("build", project=project)
    deadline = time.monotonic() + 120
    while not (tmp_path / "started").exists():
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() else "timeout"
        time.sleep(0.2)
    proc.kill()  # SIGKILL: no chance to clean up
    proc.wait()
    time.sleep(1)
    assert version_dirs(project) == []
    index = project / "reports" / "index.html"
    assert not index.exists() or "r/2" not in index.read_text()
    # The next build clears the leftovers and publishes normally.
    make_project(tmp_path, "x = 2")
    assert [o.status for o in build(load_config(project)).outcomes] == ["ok"]
    assert len(version_dirs(project)) == 1
    assert not any((project / "reports" / ".staging").glob("*"))


def test_sigterm_stops_runs_and_kernels(tmp_path):
    project = make_project(tmp_path, "import os, time\nopen('kernel.pid', 'w').write(str(os.getpid()))\ntime.sleep(60)")
    proc = start_cli("build", project=project)
    pid_file = tmp_path / "kernel.pid"
    deadline = time.monotonic() + 120
    while not (pid_file.exists() and pid_file.read_text()):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.2)
    kernel = int(pid_file.read_text())
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err
    gone = time.monotonic() + 10
    while psutil.pid_exists(kernel) and psutil.Process(kernel).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < gone, f"kernel {kernel} survived the publisher"
        time.sleep(0.2)
    assert version_dirs(project) == []


def test_cell_timeout_is_a_failed_version_naming_the_cell(tmp_path):
    project = make_project(tmp_path, "import time\ntime.sleep(30)", timeout=2)
    [outcome] = build(load_config(project)).outcomes
    assert outcome.status == "failed"
    assert "cell 2 ('import time') ran longer than 2 s" in outcome.summary
    assert os.listdir(project / "reports" / "r" / outcome.version_id)
