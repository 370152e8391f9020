"""Shared fixtures and helpers: the project root, the command-line runner, notebook and project
writers, and a real headless Chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import nbformat
import pytest
from nbformat import v4

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
def corpus() -> Path:
    """The third-party notebook corpus beside the project (read-only)."""
    if not CORPUS.is_dir():
        # CI always has shared/ beside the clone: there a missing corpus is a failure, not a skip.
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"corpus not found at {CORPUS}")
    return CORPUS


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, dirs_exist_ok=True)
    return dst


def run_cli(*args: str, project: Path | None = None, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """Run ``python publish.py [--project DIR] ARGS`` as a user would, capturing its text output."""
    prefix = ["--project", str(project)] if project is not None else []
    return subprocess.run([sys.executable, str(ROOT / "publish.py"), *prefix, *args], capture_output=True,
                          text=True, timeout=timeout, **kwargs)


def write_notebook(path: Path, parameters: str | None = "n = 1", *cells: str, kernel: str = "python3") -> Path:
    """A notebook of code cells; the first, ``parameters`` (None: no parameters cell), is tagged."""
    body = [v4.new_code_cell(parameters, metadata={"tags": ["parameters"]})] if parameters is not None else []
    nb = v4.new_notebook(cells=body + [v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path
