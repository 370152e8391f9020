"""Dashboard kernels follow their viewers: never culled while a page loads or a viewer is
connected, shut down soon after the last viewer's tab closes, capped by ``[serve] max_kernels``,
bound by the report's cell ``timeout``."""

from __future__ import annotations

import time

import pytest
import requests
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from conftest import kernelspec, write_project
from serve_util import SITE, Server

# Short idle timeouts: a page that loads for longer than them proves the culler leaves it alone.
CULL = {"LAB2LAND_CULL_IDLE_SECONDS": "5", "LAB2LAND_CULL_INTERVAL_SECONDS": "1",
        "LAB2LAND_PAGE_GRACE_SECONDS": "20"}
SLOW_S = 30
SCRIPTS_DELAY_S = 12  # a slow browser: more than the idle timeout, less than the page grace


def _notebook(*cells) -> object:
    nb = new_notebook(cells=[new_code_cell("n = 3", metadata={"tags": ["parameters"]}), *cells])
    nb.metadata["kernelspec"] = kernelspec()
    return nb


def slow_notebook(seconds: int) -> object:
    """A slider, then a cell that computes silently for ``seconds``, then a label."""
    return _notebook(
        new_code_cell("import ipywidgets as w\nslider = w.IntSlider(value=n, description='n')\n"
                      "square = w.Label(value=f'square={n * n}')\n"
                      "slider.observe(lambda ch: setattr(square, 'value', f'square={ch.new ** 2}'), 'value')\n"
                      "slider"),
        new_code_cell(f"import time\ntime.sleep({seconds})  # no output while it runs"),
        new_code_cell("square"),
    )


def widget_notebook() -> object:
    return _notebook(new_markdown_cell("# Quick"), new_code_cell(
        "import ipywidgets as w\nw.IntSlider(value=n, description='n')"))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lifecycle")
    return write_project(folder, {"slow.ipynb": slow_notebook(SLOW_S), "quick.ipynb": widget_notebook(),
                                  "hang.ipynb": _notebook(new_code_cell("import time\ntime.sleep(600)"),
                                                          new_code_cell("print('never')"))}, {
        "slow": {"notebook": "slow.ipynb", "title": "Slow", "dashboard": True, "pool_size": 0},
        "slowpool": {"notebook": "slow.ipynb", "title": "Slow, preheated", "dashboard": True, "pool_size": 1},
        "quick": {"notebook": "quick.ipynb", "title": "Quick", "dashboard": True, "pool_size": 0},
        "hang": {"notebook": "hang.ipynb", "title": "Hang", "dashboard": True, "pool_size": 0, "timeout": 3},
    }, site=SITE)


@pytest.fixture(scope="module")
def fast_cull(project):
    """A server whose culler takes a kernel after 5 s idle."""
    srv = Server(project, env=CULL)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def server(project):
    """A server whose culler waits 10 minutes: what frees kernels here is not the culler."""
    srv = Server(project, env={"LAB2LAND_CULL_IDLE_SECONDS": "600"})
    # slowpool's preheated kernel: up before any test counts kernels (a forked pool kernel
    # waits for its fork server to be warm, so it may come after the server answers).
    assert srv.wait_kernels(1) == 1
    yield srv
    srv.stop()


def _pids(server) -> set[int]:
    return {k.pid for k in server.kernels()}


def _wait_gone(server, pids: set[int], timeout: float) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pids & _pids(server):
        time.sleep(0.25)
    return pids & _pids(server)


@pytest.mark.parametrize("report", ["slow", "slowpool"])
def test_a_slow_cell_outlives_the_idle_timeout(fast_cull, browser, report):
    """A kernel computing a silent 30 s cell (idle timeout 5 s), its page streaming meanwhile,
    is not culled; nor is it once the viewer is connected and idle."""
    logged = len(fast_cull.log_path.read_text())
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(f"{fast_cull.url}/dashboards/{report}/", wait_until="commit", timeout=60_000)
        page.wait_for_function("document.body && document.body.innerText.includes('square=9')",
                               timeout=(SLOW_S + 90) * 1000)
        page.wait_for_selector(".widget-slider", timeout=60_000)
        assert page.query_selector(".l2l-failed") is None
        time.sleep(8)  # longer than the idle timeout again, now with the viewer connected
        page.focus(".widget-slider .noUi-handle")
        page.keyboard.press("ArrowRight")
        page.wait_for_function("document.body.innerText.includes('square=16')", timeout=20_000)
        # While this viewer was loading and connected, its kernel was not culled (a previous
        # test's closed tab's kernel may be: that is the culler's job).
        kernel_id = page.evaluate("JSON.parse(document.getElementById('jupyter-config-data').textContent).kernelId")
        assert kernel_id and f"({kernel_id})" not in fast_cull.log_path.read_text()[logged:]
    finally:
        context.close()


def test_a_page_slow_to_connect_after_a_long_stream_keeps_its_kernel(fast_cull, browser):
    """The page grace (20 s) counts from the end of the page's stream, not from when the kernel
    was handed out: after 30 s of streaming, a browser whose scripts take 12 s more to load
    (idle timeout 5 s) still finds its kernel. Reproduces widgets shown as text after a slow
    notebook on a loaded machine (the kernel was culled before the websocket opened)."""
    context = browser.new_context()
    page = context.new_page()

    def slow_scripts(route):
        time.sleep(SCRIPTS_DELAY_S)
        route.continue_()

    page.route("**/voila/static/voila.js", slow_scripts)
    try:
        page.goto(f"{fast_cull.url}/dashboards/slow/?n=4", wait_until="commit", timeout=60_000)
        page.wait_for_selector(".widget-slider", timeout=(SLOW_S + SCRIPTS_DELAY_S + 90) * 1000)
        page.focus(".widget-slider .noUi-handle")
        page.keyboard.press("ArrowRight")
        page.wait_for_function("document.body.innerText.includes('square=25')", timeout=20_000)
    finally:
        context.close()


@pytest.mark.parametrize("unload", [True, False], ids=["page-unloads", "browser-gone"])
def test_closing_the_tab_shuts_its_kernel_down(server, browser, unload):
    """Its kernel goes within seconds of the tab closing: by the page's shutdown request on
    unload (Voila's, refused before for want of the xsrf cookie) or, when the browser is gone
    without unloading, once its websocket has been closed for a few seconds."""
    before = _pids(server)
    context = browser.new_context()
    page = context.new_page()
    page.goto(server.url + "/dashboards/quick/")
    page.wait_for_selector(".widget-slider", timeout=90_000)
    mine = _pids(server) - before
    assert len(mine) == 1
    if unload:
        page.close(run_before_unload=True)
    context.close()
    assert _wait_gone(server, mine, timeout=15) == set()


def test_the_reports_cell_timeout_applies_to_its_dashboard(server, browser):
    """``timeout = 3``: a 600 s cell is stopped and the viewer told the dashboard failed."""
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(server.url + "/dashboards/hang/", wait_until="commit")
        page.wait_for_selector(".l2l-failed", state="attached", timeout=60_000)
        assert "never" not in page.content()
    finally:
        context.close()


def test_max_kernels_turns_a_viewer_away_with_a_busy_page(tmp_path, browser):
    """``[serve] max_kernels = 2``, one preheated: a second viewer's own kernel would be the third."""
    project = write_project(tmp_path, {"quick.ipynb": widget_notebook()}, {
        "quick": {"notebook": "quick.ipynb", "title": "Quick", "dashboard": True, "pool_size": 1}},
        "[serve]\nmax_kernels = 2\n", site=SITE)
    srv = Server(project, env={"LAB2LAND_CULL_IDLE_SECONDS": "600"})
    try:
        assert srv.wait_kernels(1) == 1 and srv.wait_pool_filled("quick")
        context = browser.new_context()
        page = context.new_page()
        page.goto(srv.url + "/dashboards/quick/?n=2")  # parameters of its own: a kernel of its own
        page.wait_for_selector(".widget-slider", timeout=90_000)
        busy = requests.get(srv.url + "/dashboards/quick/?n=3", timeout=60)
        assert busy.status_code == 503 and int(busy.headers["Retry-After"]) > 0
        assert "busy" in busy.text and "Try again in a moment" in busy.text
        # The preheated kernel is still there for the default view; its refill waits for room.
        pooled = requests.get(srv.url + "/dashboards/quick/", timeout=60)
        assert pooled.status_code == 200 and "This dashboard failed" not in pooled.text and "widget-view" in pooled.text
        time.sleep(3)  # the pool refills 1 s after a kernel is taken: it must not start one now
        assert len(srv.kernels()) == 2
        assert requests.get(srv.url + "/dashboards/quick/", timeout=60).status_code == 503
        mine = _pids(srv)
        context.close()  # the browser's viewer leaves: room for the refill
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (_pids(srv) == mine or len(srv.kernels()) != 2):
            time.sleep(0.25)
        assert len(_pids(srv) - mine) == 1 and len(srv.kernels()) == 2  # its kernel gone, the refill in
    finally:
        srv.stop()
