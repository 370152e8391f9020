"""Runs that go wrong after a good version was published: each gives one line naming what
failed (the cell, the source), a named exit status, and a live site that is unchanged and
consistent — the good version stays latest, the catalog and pages agree with the folders."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import textwrap
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from conftest import run_cli, write_notebook
from lab2land.errors import EXIT_ENVIRONMENT, EXIT_FAILED, EXIT_USAGE

GOOD = ("print('good', n)",)


def build_good(root: Path, site: str = "", source: str = "", timeouts: str = "") -> Path:
    write_notebook(root / "r.ipynb", "n = 1\ndata = ''", *GOOD)
    (root / "data.csv").write_text("a,b\n1,2\n")
    (root / "publish.toml").write_text(textwrap.dedent("""
        [site]
        title = "Faults"
        {site}
        [sources.data]
        {source}
        [reports.r]
        notebook = "r.ipynb"
        title = "R"
        sources = ["data"]
        {timeouts}
    """).format(site=site, source=source or 'path = "data.csv"', timeouts=timeouts), encoding="utf-8")
    proc = run_cli("build", project=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root


def site_state(site: Path) -> dict:
    """What readers see: catalog versions and latest, the latest page's target, the index text."""
    catalog = json.loads((site / "catalog.json").read_text())
    entry = catalog["reports"]["r"]
    latest_page = (site / "r" / "latest" / "default.html").read_text()
    BeautifulSoup((site / "index.html").read_text(), "html.parser").find("main")  # parses
    return {"latest": entry["variants"]["default"]["latest"], "latest_page": latest_page,
            "versions": {v["id"]: v["status"] for v in entry["versions"]}}


def assert_consistent(site: Path) -> None:
    """Every version folder is listed, every listed version has its folder, no staging is left."""
    state = site_state(site)
    on_disk = {p.name for p in (site / "r").iterdir() if p.name[:1].isdigit()}
    assert on_disk == set(state["versions"])
    assert not (site / ".staging").exists() or not any((site / ".staging").iterdir())
    assert f"{state['latest']}/index.html" in state["latest_page"]


def break_notebook(root: Path, *cells: str) -> None:
    write_notebook(root / "r.ipynb", "n = 1\ndata = ''", *cells)


# Cells are numbered as in the executed notebook, whose cell 2 holds the injected parameters.
CASES = {
    "cell raises": (["1/0"], "cell 3 ('1/0') raised ZeroDivisionError"),
    "sys.exit(1)": (["import sys\nsys.exit(1)"], "SystemExit"),
    "sys.exit(0) mid-notebook": (["import sys\nsys.exit(0)", "print('never')"],
                                 "cell 3 ('import sys') called sys.exit(0)"),
    "kernel dies": (["import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"], "kernel died"),
}


@pytest.mark.parametrize("case", CASES)
def test_a_failing_run_keeps_the_good_version_latest(tmp_path, case):
    cells, named = CASES[case]
    root = build_good(tmp_path)
    before = site_state(root / "reports")
    break_notebook(root, *cells)
    proc = run_cli("build", project=root)
    assert proc.returncode == EXIT_FAILED, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    (line,) = [line for line in proc.stderr.splitlines() if "✗" in line]
    assert named in line, line
    after = site_state(root / "reports")
    assert after["latest"] == before["latest"] and after["latest_page"] == before["latest_page"]
    assert list(after["versions"].values()).count("failed") == 1
    assert_consistent(root / "reports")


def test_cell_timeout_and_run_timeout_name_the_cell(tmp_path):
    root = build_good(tmp_path, timeouts="timeout = 3\nrun_timeout = 60")
    break_notebook(root, "import time\ntime.sleep(30)")
    proc = run_cli("build", project=root)
    assert proc.returncode == EXIT_FAILED
    (line,) = [line for line in proc.stderr.splitlines() if "✗" in line]
    assert "cell 3 ('import time')" in line and "3 s" in line, line
    assert_consistent(root / "reports")

    toml = (root / "publish.toml").read_text().replace("timeout = 3\nrun_timeout = 60", "run_timeout = 8")
    (root / "publish.toml").write_text(toml)
    proc = run_cli("build", project=root)
    assert proc.returncode == EXIT_FAILED
    (line,) = [line for line in proc.stderr.splitlines() if "✗" in line]
    assert "run_timeout" in line and "cell 3" in line, line
    assert_consistent(root / "reports")


def test_missing_source_file_fails_the_run_naming_the_source(tmp_path):
    root = build_good(tmp_path)
    before = site_state(root / "reports")
    (root / "data.csv").unlink()
    proc = run_cli("build", project=root)
    assert proc.returncode == EXIT_FAILED
    (line,) = [line for line in proc.stderr.splitlines() if "✗" in line]
    assert "source 'data'" in line and "data.csv" in line, line
    assert site_state(root / "reports")["latest"] == before["latest"]
    assert_consistent(root / "reports")


def test_unreachable_database_fails_the_run_naming_the_source(tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    root = build_good(tmp_path)
    toml = (root / "publish.toml").read_text().replace(
        'path = "data.csv"', f'url = "postgresql://nobody@127.0.0.1:{port}/none"\nsql = "select 1 as a"')
    (root / "publish.toml").write_text(toml)
    proc = run_cli("build", project=root, timeout=120)
    assert proc.returncode == EXIT_FAILED, proc.stdout + proc.stderr
    (line,) = [line for line in proc.stderr.splitlines() if "✗" in line]
    assert "source 'data'" in line and f"127.0.0.1:{port}" in line, line
    assert "nobody@" in line and "Traceback" not in proc.stderr
    assert_consistent(root / "reports")


@pytest.mark.parametrize("change, named", [
    ('kernel = "no-such-kernel"', "no-such-kernel"),
    ('notebook = "nope.ipynb"', "nope.ipynb"),
])
def test_config_errors_change_nothing(tmp_path, change, named):
    root = build_good(tmp_path)
    before = {p: p.read_bytes() for p in (root / "reports").rglob("*") if p.is_file()}
    toml = (root / "publish.toml").read_text()
    key = change.split(" = ")[0]
    toml = toml.replace('notebook = "r.ipynb"', change if key == "notebook" else f'notebook = "r.ipynb"\n{change}')
    (root / "publish.toml").write_text(toml)
    proc = run_cli("build", "--force", project=root)
    assert proc.returncode == EXIT_USAGE
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and named in errors[0], proc.stderr
    assert {p: p.read_bytes() for p in (root / "reports").rglob("*") if p.is_file()} == before


@pytest.fixture
def small_disk(tmp_path):
    """A 32 MB tmpfs for the site (its shared assets take ~16 MB; root only); skipped, with the
    reason, where it cannot be made."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if not shutil.which("mount"):
        pytest.skip("no mount command: cannot make a small filesystem here")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({made.stderr.strip()}): the disk-full case needs one")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full_during_publish_keeps_the_site(tmp_path, small_disk):
    root = build_good(tmp_path / "p", site=f'output = "{small_disk / "site"}"')
    site = small_disk / "site"
    before = site_state(site)
    free = shutil.disk_usage(small_disk).free
    (small_disk / "filler").write_bytes(b"\0" * max(0, free - 200_000))  # leave ~200 KB
    break_notebook(root, "print('x' * 2_000_000)")
    proc = run_cli("build", project=root)
    assert proc.returncode == EXIT_ENVIRONMENT, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0], proc.stderr
    (small_disk / "filler").unlink()
    assert site_state(site) == before
    assert_consistent(site)
