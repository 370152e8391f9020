"""Shared fixtures and helpers: the project root, the command-line runner, notebook and project
writers, a real headless Chromium driven by Playwright and a real PostgreSQL server (``pg.py``).

Tests that ask for the ``browser`` (or ``page``) or ``postgres`` fixture are marked ``browser`` or
``postgres`` here, so ``-m "not browser"`` deselects them without a marker in every module."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import nbformat
import psutil
import pytest
from nbformat import NotebookNode, v4

from lab2land import demo
from lab2land.build import Reporter

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    """A real headless Debian Chromium (never a Playwright-downloaded browser)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make setup` (installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def is_local(url: str) -> bool:
    """True for file:, data:, blob:, about: URLs and http(s) to the loopback interface."""
    parsed = urlparse(url)
    if parsed.scheme in ("file", "data", "blob", "about"):
        return True
    return parsed.scheme in ("http", "https", "ws", "wss") and parsed.hostname in ("127.0.0.1", "localhost", "::1")


@pytest.fixture
def page(browser):
    """A fresh page that records every request, console error and uncaught page error.

    ``page.external_requests`` lists requests to non-local URLs; ``page.page_errors`` the
    uncaught exceptions.
    """
    context = browser.new_context()
    pg = context.new_page()
    pg.external_requests = []
    pg.page_errors = []
    pg.console_errors = []
    pg.on("request", lambda r: None if is_local(r.url) else pg.external_requests.append(r.url))
    pg.on("pageerror", lambda e: pg.page_errors.append(str(e)))
    pg.on("console", lambda m: pg.console_errors.append(m.text) if m.type == "error" else None)
    yield pg
    context.close()


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server on a free loopback port, shared by the session (see ``pg.py``)."""
    from pg import postgres_server  # imports conftest (free_port): not at module level

    yield from postgres_server()


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The third-party notebook corpus beside the project (read-only)."""
    if not CORPUS.is_dir():
        # CI always has shared/ beside the clone: there a missing corpus is a failure, not a skip.
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"corpus not found at {CORPUS}")
    return CORPUS


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, dirs_exist_ok=True)
    return dst


def process_gone(pid: int, wait_s: float = 10) -> bool:
    """True once ``pid`` has exited (or is a zombie nobody reaped yet) within ``wait_s`` seconds."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def run_in_own_loop(coroutine, timeout: float | None = None):
    """Run ``coroutine`` to its end in a thread and event loop of its own (the session's
    Playwright browser may own this thread's loop); return its result."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result(timeout=timeout)


def free_port() -> int:
    """A loopback TCP port nothing listens on (at the moment of asking)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the command line --------------------------------------------------------------------------

def _cli_args(args: tuple[str, ...], project: Path | None) -> list[str]:
    prefix = ["--project", str(project)] if project is not None else []
    return [sys.executable, str(ROOT / "publish.py"), *prefix, *args]


def run_cli(*args: str, project: Path | None = None, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """Run ``python publish.py [--project DIR] ARGS`` as a user would, capturing its text output."""
    return subprocess.run(_cli_args(args, project), capture_output=True, text=True, timeout=timeout, **kwargs)


def start_cli(*args: str, project: Path | None = None, **kwargs) -> subprocess.Popen:
    """Start ``python publish.py [--project DIR] ARGS`` without waiting (to signal or kill it);
    its stdout and stderr are text pipes unless ``kwargs`` say otherwise."""
    return subprocess.Popen(_cli_args(args, project), **{"stdout": subprocess.PIPE, "stderr": subprocess.PIPE,
                                                          "text": True, **kwargs})


# --- notebooks ---------------------------------------------------------------------------------

def kernelspec(name: str = "python3") -> dict:
    """A notebook's ``kernelspec`` metadata for the installed kernel ``name``."""
    return {"name": name, "display_name": "Python 3" if name == "python3" else name, "language": "python"}


def code_notebook(parameters: str | None = "n = 1", *cells: str, kernel: str | None = "python3") -> NotebookNode:
    """A notebook of code cells; the first, ``parameters`` (None: no parameters cell), is tagged.

    ``kernel=None`` leaves out the kernelspec, as a notebook written by hand may."""
    body = [v4.new_code_cell(parameters, metadata={"tags": ["parameters"]})] if parameters is not None else []
    nb = v4.new_notebook(cells=body + [v4.new_code_cell(c) for c in cells])
    if kernel is not None:
        nb.metadata["kernelspec"] = kernelspec(kernel)
    return nb


def save_notebook(nb: NotebookNode, path: Path) -> Path:
    """Write ``nb`` to ``path``, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


def write_notebook(path: Path, parameters: str | None = "n = 1", *cells: str, kernel: str | None = "python3") -> Path:
    """:func:`code_notebook` written to ``path``."""
    return save_notebook(code_notebook(parameters, *cells, kernel=kernel), path)


def logs_run(name: str, body: str = "") -> str:
    """A cell's source that appends ``name`` to ``runs.log`` in the working directory, then runs
    ``body``: what the cache and schedule tests count kernel runs by (see :func:`runs_logged`)."""
    return f"with open('runs.log', 'a') as fh:\n    fh.write({name!r} + '\\n')\n{body}"


def runs_logged(folder: Path) -> list[str]:
    """The names :func:`logs_run` cells wrote to ``folder``/runs.log, in order."""
    log = folder / "runs.log"
    return log.read_text().split() if log.exists() else []


class StartedRuns(Reporter):
    """A build reporter that remembers, in order, the report of every run that started a kernel."""

    def __init__(self):
        self.started_runs: list[str] = []

    def started(self, run) -> None:
        self.started_runs.append(run.report)


# --- projects ----------------------------------------------------------------------------------

def toml_value(value) -> str:
    """``value`` as a TOML literal: tables inline, JSON's spelling for strings, numbers and booleans."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)


def toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def toml_table(header: str, table: dict) -> str:
    return "\n".join([f"[{header}]", *(f"{toml_key(k)} = {toml_value(v)}" for k, v in table.items())])


def write_project(folder: Path, notebooks: dict[str, NotebookNode] | None = None,
                  reports: dict[str, dict] | None = None, extra_toml: str = "", *, site: dict | None = None,
                  sources: dict[str, dict] | None = None) -> Path:
    """A project in ``folder``: ``notebooks`` (path in the project -> notebook) and a publish.toml.

    The config is a ``[site]`` table of ``site`` (left out when None), then ``extra_toml`` as
    written (more ``[site]`` keys, or whole tables), then one ``[sources.<name>]`` table per
    source and one ``[reports.<name>]`` table per report; values are written as TOML literals.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for name, nb in (notebooks or {}).items():
        save_notebook(nb, folder / name)
    parts = [toml_table("site", site)] if site is not None else []
    parts.append(extra_toml)
    parts += [toml_table(f"sources.{name}", table) for name, table in (sources or {}).items()]
    parts += [toml_table(f"reports.{name}", table) for name, table in (reports or {}).items()]
    (folder / "publish.toml").write_text("\n".join(parts) + "\n", encoding="utf-8")
    return folder


def demo_project(folder: Path, **data) -> Path:
    """The demo project (publish.toml and notebooks/) copied into ``folder``, with demo data made by
    ``lab2land.demo.generate(folder, **data)``."""
    shutil.copytree(ROOT / "notebooks", folder / "notebooks")
    shutil.copy(ROOT / "publish.toml", folder / "publish.toml")
    demo.generate(folder, **data)
    return folder


# --- markers -----------------------------------------------------------------------------------

# A test gets the marker of an environment it needs when it asks for that environment's fixture.
FIXTURE_MARKERS = {"browser": "browser", "postgres": "postgres"}


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        for fixture, marker in FIXTURE_MARKERS.items():
            if fixture in item.fixturenames:
                item.add_marker(marker)
