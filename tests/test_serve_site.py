"""What the built site links to works under ``publish.py serve`` too; ``publish_notebook = false``
keeps a report's executed notebook (and so its code) off the site."""

from __future__ import annotations

import re
import time

import pytest
import requests

from conftest import code_notebook, run_cli, write_project
from serve_util import SITE, Server


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    folder = write_project(tmp_path_factory.mktemp("site"), {
        "open.ipynb": code_notebook("n = 1", "print('open', n)"),
        "closed.ipynb": code_notebook("n = 1", "secret_code = 'hunter2'\nprint('closed', n)"),
    }, {
        "open": {"notebook": "open.ipynb", "title": "Open"},
        "closed": {"notebook": "closed.ipynb", "title": "Closed", "publish_notebook": False},
    }, site=SITE)
    proc = run_cli("build", project=folder, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return folder


@pytest.fixture(scope="module")
def server(project):
    srv = Server(project)
    yield srv
    srv.stop()


def _notebook_links(html: str) -> list[str]:
    return re.findall(r'href="([^"]*\.ipynb)"', html)


def _version_folder(project, report):
    [folder] = [p for p in (project / "reports" / report).iterdir() if (p / "manifest.json").is_file()]
    return folder


def test_the_executed_notebook_link_works_under_serve(project, server):
    version = _version_folder(project, "open")
    page = requests.get(f"{server.url}/open/{version.name}/index.html", timeout=30)
    assert page.status_code == 200
    [link] = re.findall(r'href="([^"]+\.ipynb)"', page.text)
    notebook = requests.get(f"{server.url}/open/{version.name}/{link}", timeout=30)
    assert notebook.status_code == 200 and "print('open', n)" in notebook.text
    assert notebook.headers["Content-Disposition"].startswith("attachment")
    assert "html" not in notebook.headers["Content-Type"]
    history = requests.get(f"{server.url}/open/index.html", timeout=30).text
    for href in re.findall(r'href="([^"]+\.ipynb)"', history):
        assert requests.get(f"{server.url}/open/{href}", timeout=30).status_code == 200


def test_publish_notebook_false_keeps_the_code_off_the_site(project, server):
    version = _version_folder(project, "closed")
    assert not list(version.glob("*.ipynb"))
    for path in (project / "reports").rglob("*"):
        if path.is_file() and "closed" in path.parts:
            assert "hunter2" not in path.read_text(encoding="utf-8", errors="replace"), path
    page = requests.get(f"{server.url}/closed/{version.name}/index.html", timeout=30)
    assert page.status_code == 200 and "closed 1" in page.text and not _notebook_links(page.text)
    assert not _notebook_links(requests.get(f"{server.url}/closed/index.html", timeout=30).text)
    assert requests.get(f"{server.url}/closed/{version.name}/closed.ipynb", timeout=30).status_code == 404


def test_a_build_while_serving_reaches_new_viewers(tmp_path, browser):
    """The next visit after ``build`` shows the new numbers; a viewer already there keeps theirs."""
    from nbformat.v4 import new_code_cell

    from serve_util import grid_notebook

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "numbers.csv").write_text("n\n40\n2\n")
    nb = grid_notebook([
        new_code_cell('numbers = "none.csv"', metadata={"tags": ["parameters"]}),
        new_code_cell("import ipywidgets as w\n"
                      "total = sum(int(v) for v in open(numbers).read().split()[1:])\n"
                      "w.Label(value=f'total is {total}')"),
    ])
    write_project(tmp_path, {"sum.ipynb": nb}, {
        "sum": {"notebook": "sum.ipynb", "title": "Sum", "dashboard": True, "pool_size": 1, "sources": ["numbers"]}},
        site=SITE, sources={"numbers": {"path": "data/numbers.csv"}})
    assert run_cli("build", project=tmp_path, timeout=300).returncode == 0
    srv = Server(tmp_path, env={"LAB2LAND_REFRESH_SECONDS": "1", "LAB2LAND_CULL_IDLE_SECONDS": "600"})
    try:
        context = browser.new_context()
        before = context.new_page()
        before.goto(srv.url + "/dashboards/sum/")
        before.wait_for_function("document.body.innerText.includes('total is 42')", timeout=90_000)
        (tmp_path / "data" / "numbers.csv").write_text("n\n40\n2\n58\n")
        proc = run_cli("build", project=tmp_path, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        after = context.new_page()
        for _ in range(60):  # the server looks every second; give it a bounded while
            after.goto(srv.url + "/dashboards/sum/")
            after.wait_for_function("/total is \\d+/.test(document.body.innerText)", timeout=90_000)
            if "total is 100" in after.inner_text("body"):
                break
            time.sleep(1)
        assert "total is 100" in after.inner_text("body")
        assert "total is 42" in before.inner_text("body")  # the viewer already connected keeps theirs
        context.close()
    finally:
        srv.stop()
