"""``publish.py serve`` lifecycle: preheated pools, culling of closed tabs, clean Ctrl-C."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import psutil
import pytest
import requests

from conftest import write_project
from serve_util import SITE, Server, widgets_notebook


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lifecycle")
    return write_project(folder, {"a.ipynb": widgets_notebook(), "b.ipynb": widgets_notebook()}, {
        "a": {"notebook": "a.ipynb", "title": "A", "dashboard": True, "pool_size": 1},
        "b": {"notebook": "b.ipynb", "title": "B", "dashboard": True, "pool_size": 1, "parameters": {"n": 7}},
        "static_only": {"notebook": "a.ipynb", "title": "Static only"},
    }, site=SITE)


@pytest.fixture(scope="module")
def server(project):
    srv = Server(project)
    yield srv
    srv.stop()


def test_pools_are_preheated_per_report(server):
    assert server.wait_kernels(2) == 2  # a: 1, b: 1, static_only: no dashboard


def test_preheated_dashboard_answers_fast_with_report_parameters(server):
    assert server.wait_pool_filled("b")
    response = requests.get(server.url + "/dashboards/b/", timeout=60)
    assert response.status_code == 200 and "square=49" in response.text  # parameters = { n = 7 }
    assert re.search(r"Using pre-heated kernel: \S+ for b/index.ipynb", server.log_path.read_text())


def test_only_reports_with_dashboard_true_are_served(server):
    assert requests.get(server.url + "/dashboards/static_only/", timeout=30).status_code == 404


def test_trailing_slash_redirect_keeps_the_query(server):
    response = requests.get(server.url + "/dashboards/a?n=2", allow_redirects=False, timeout=30)
    assert response.status_code in (301, 302) and response.headers["Location"] == "/dashboards/a/?n=2"


def test_missing_site_explains_how_to_build_it(server):
    response = requests.get(server.url + "/", timeout=30)
    assert response.status_code == 404 and "publish.py build" in response.text
    assert '/dashboards/a/' in response.text


def test_kernels_return_to_pool_size_after_viewers_leave(project, browser):
    # A server of its own: the module's keeps the kernels of earlier tests' pages that never
    # connected for PAGE_GRACE_S (120 s), which would be counted here.
    server = Server(project)
    try:
        assert server.wait_kernels(2) == 2
        context = browser.new_context()
        for path in ("a/", "b/", "a/?n=1"):
            page = context.new_page()
            page.goto(f"{server.url}/dashboards/{path}")
            page.wait_for_selector(".widget-slider", timeout=60_000)
        assert server.wait_kernels(2 + 3) == 2 + 3  # the viewers' kernels on top of the refilled pools
        time.sleep(12)  # longer than the idle timeout: open tabs keep their kernels (connected)
        assert len(server.kernels()) == 2 + 3
        context.close()
        assert server.wait_kernels(2, timeout=60) == 2
    finally:
        server.stop()


def test_a_page_that_has_not_connected_yet_keeps_its_kernel(server):
    """A slow page (its websocket not open yet) outlives the idle timeout (10 s here): the culler
    only takes kernels no page is about to use. Reproduces a viewer's "This dashboard failed"."""
    server.wait_kernels(2)
    before = {k.pid for k in server.kernels()}
    requests.get(f"{server.url}/dashboards/a/?n=7", timeout=60)  # a page whose browser never connects (yet)
    # The new kernel, whatever else is there (under load a previous viewer's may still be shutting down).
    deadline, handed = time.monotonic() + 60, set()
    while not handed and time.monotonic() < deadline:
        handed = {k.pid for k in server.kernels()} - before
        time.sleep(0.2)
    assert len(handed) == 1, handed
    time.sleep(16)  # idle timeout 10 s + cull interval 2 s, with margin
    assert handed <= {k.pid for k in server.kernels()}


def test_ctrl_c_stops_everything(project):
    srv = Server(project)
    assert srv.wait_kernels(2) == 2
    requests.get(srv.url + "/dashboards/a/?n=4", timeout=60)  # one more kernel, not pooled
    kernels = srv.kernels()
    assert len(kernels) >= 3
    assert srv.stop(signal.SIGINT) == 0
    time.sleep(0.5)
    assert [k.pid for k in kernels if k.is_running() and k.status() != psutil.STATUS_ZOMBIE] == []


def test_hashed_extension_chunks_are_cacheable_and_the_rest_is_not(server):
    """A returning viewer's browser keeps content-hashed chunks; other files are revalidated."""
    import voila.utils

    [plotly] = [p for p in voila.utils.get_voila_labextensions_path()
                if (Path(p) / "jupyterlab-plotly" / "static").is_dir()]
    static = Path(plotly) / "jupyterlab-plotly" / "static"
    chunk = next(f.name for f in static.iterdir() if re.fullmatch(r"[\w-]+\.[0-9a-f]{16,}\.js", f.name))
    base = f"{server.url}/voila/labextensions/jupyterlab-plotly/static/"
    hashed = requests.get(base + chunk, timeout=30)
    assert hashed.status_code == 200 and "immutable" in hashed.headers["Cache-Control"]
    missing = requests.get(base + "0.0123456789abcdef0123.js", timeout=30)
    assert missing.status_code == 404 and "immutable" not in missing.headers.get("Cache-Control", "")
