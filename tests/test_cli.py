"""The command line as a user meets it: options before or after the command, ``python -m
lab2land``, ``lab2land new``, and one line (never a traceback) for every kind of error."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from filelock import FileLock

from conftest import code_notebook, free_port, run_cli, write_project
from lab2land import cli, vendor
from lab2land.errors import EXIT_ENVIRONMENT, EXIT_USAGE
from lab2land.store import LOCK


def project(root: Path, report: dict | None = None, site: str = "") -> Path:
    """A one-report project whose notebook prints its parameter; ``report`` adds keys to its
    table, ``site`` TOML after the ``[site]`` title."""
    return write_project(root, {"hello.ipynb": code_notebook("greeting = 'hi'", "print(greeting)")},
                         {"hello": {"notebook": "hello.ipynb", "title": "Hello", **(report or {})}},
                         extra_toml=site, site={"title": "CLI test"})


def one_error_line(proc: subprocess.CompletedProcess | tuple[int, str], code: int, *named: str) -> str:
    """Assert exit ``code``, no traceback, and exactly one ``error:`` line naming each of ``named``."""
    rc, err = (proc.returncode, proc.stdout + proc.stderr) if isinstance(proc, subprocess.CompletedProcess) else proc
    assert rc == code, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    for text in named:
        assert text in errors[0], errors[0]
    return errors[0]


# -- option positions and entry points --------------------------------------------------------

def test_options_work_before_and_after_the_command(tmp_path):
    proj = project(tmp_path)
    before = run_cli("--project", str(proj), "list")
    after = run_cli("list", "--project", str(proj))
    assert before.returncode == after.returncode == 0, before.stderr + after.stderr
    assert "hello" in before.stdout and before.stdout == after.stdout


def test_build_takes_project_after_the_command_and_python_m_is_the_same_command(tmp_path):
    proj = project(tmp_path)
    built = run_cli("build", "--project", str(proj))
    assert built.returncode == 0, built.stderr
    assert (proj / "reports" / "index.html").is_file()
    again = subprocess.run([sys.executable, "-m", "lab2land", "build", "--project", str(proj)],
                           capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "unchanged" in again.stderr


def test_debug_shows_the_traceback(tmp_path):
    proc = run_cli("list", "--debug", project=tmp_path)
    assert proc.returncode == EXIT_USAGE
    assert "Traceback" in proc.stderr and "error: " in proc.stderr


# -- lab2land new -----------------------------------------------------------------------------

def test_new_writes_a_project_that_builds_and_refuses_to_overwrite(tmp_path):
    folder = tmp_path / "my reports"
    made = run_cli("new", str(folder), "--title", 'Team "A" reports')
    assert made.returncode == 0, made.stderr
    for name in ("publish.toml", "notebooks/example.ipynb", ".gitignore", "requirements.txt",
                 ".github/workflows/publish.yml"):
        assert (folder / name).is_file(), name
    assert "lab2land==" in (folder / "requirements.txt").read_text()
    assert "/reports/" in (folder / ".gitignore").read_text()
    built = run_cli("build", cwd=folder)
    assert built.returncode == 0, built.stderr
    index = (folder / "reports" / "index.html").read_text(encoding="utf-8")
    assert "Team &#34;A&#34; reports" in index or "Team &quot;A&quot; reports" in index
    toml_before = (folder / "publish.toml").read_bytes()
    again = run_cli("new", str(folder))
    one_error_line(again, EXIT_USAGE, str(folder), "already holds a lab2land project", "nothing was written")
    assert (folder / "publish.toml").read_bytes() == toml_before


def test_new_refuses_a_folder_holding_any_file_it_would_write(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "example.ipynb").write_text("mine")
    proc = run_cli("new", str(tmp_path))
    one_error_line(proc, EXIT_USAGE, "notebooks/example.ipynb")
    assert not (tmp_path / "publish.toml").exists()
    assert (tmp_path / "notebooks" / "example.ipynb").read_text() == "mine"


# -- every kind of error: one line, named, non-zero -------------------------------------------

def test_missing_config(tmp_path):
    one_error_line(run_cli("build", project=tmp_path), EXIT_USAGE, str(tmp_path / "publish.toml"))


def test_invalid_toml(tmp_path):
    (tmp_path / "publish.toml").write_text("[site\n")
    one_error_line(run_cli("build", project=tmp_path), EXIT_USAGE, "publish.toml: not valid TOML")


def test_unknown_option_and_command():
    one_error_line(run_cli("build", "--bogus"), EXIT_USAGE, "unrecognized arguments: --bogus")
    one_error_line(run_cli("bogus"), EXIT_USAGE, "invalid choice: 'bogus'")


def test_unknown_parameter(tmp_path):
    proc = run_cli("build", "-p", "greting=x", project=project(tmp_path))
    one_error_line(proc, EXIT_USAGE, "greting", "'hello'", "greeting")


def test_missing_kernel(tmp_path):
    proc = run_cli("build", project=project(tmp_path, report={"kernel": "no-such-kernel"}))
    one_error_line(proc, EXIT_USAGE, "reports.hello", "no-such-kernel")


def test_bad_database_url_is_a_config_error(tmp_path):
    proc = run_cli("build", project=project(tmp_path, site='[sources.db]\nurl = "shop.sqlite"\nsql = "select 1"'))
    one_error_line(proc, EXIT_USAGE, "sources.db.url", "not a database URL: 'shop.sqlite'")


def test_site_folder_that_cannot_be_written(tmp_path):
    # The site path is taken by a file (root ignores permission bits, so no chmod test).
    proj = project(tmp_path, site='output = "taken"')
    (proj / "taken").write_text("not a folder")
    one_error_line(run_cli("build", project=proj), EXIT_ENVIRONMENT, str(proj / "taken"), "[site] output")


def test_locked_site(tmp_path):
    proj = project(tmp_path)
    (proj / "reports").mkdir()
    with FileLock(str(proj / "reports" / LOCK)):
        proc = run_cli("build", "--wait", "0.5", project=proj)
    one_error_line(proc, EXIT_ENVIRONMENT, str(proj / "reports"), LOCK, "--wait")


def test_port_in_use(tmp_path):
    proj = project(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_cli("serve", "--port", str(port), project=proj, timeout=120)
    one_error_line(proc, EXIT_ENVIRONMENT, f"127.0.0.1:{port}", "--port")


def test_missing_offline_assets(tmp_path, monkeypatch, capsys):
    # An install without its vendored JavaScript (a checkout never built): found before any run.
    monkeypatch.setattr(vendor, "VENDOR_DIR", tmp_path / "no-vendor")
    rc = cli.main(["build", "--project", str(project(tmp_path))])
    captured = capsys.readouterr()
    one_error_line((rc, captured.out + captured.err), EXIT_ENVIRONMENT, str(tmp_path / "no-vendor"),
                   "@jupyter-widgets/html-manager")
    assert not list((tmp_path / "reports").glob("hello/2*"))


def test_restore_from_an_unreachable_host(tmp_path):
    port = free_port()
    proc = run_cli("restore", f"http://127.0.0.1:{port}/", project=project(tmp_path))
    one_error_line(proc, EXIT_ENVIRONMENT, f"http://127.0.0.1:{port}/")


def test_demo_data_advance_without_data(tmp_path):
    proc = run_cli("demo-data", "--advance", "1d", project=tmp_path)
    one_error_line(proc, EXIT_USAGE, str(tmp_path / "data" / "shop.sqlite"), "demo-data --reset")


@pytest.mark.parametrize("args, named", [
    (["demo-data", "--advance", "xd"], "--advance 'xd'"),
    (["build", "--jobs", "many"], "--jobs: invalid int value: 'many'"),
])
def test_bad_option_values(tmp_path, args, named):
    one_error_line(run_cli(*args, project=tmp_path), EXIT_USAGE, named)
