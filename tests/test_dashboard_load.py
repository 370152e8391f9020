"""A bounded load test of ``publish.py serve`` on 127.0.0.1: 20 viewers at once, a few of them
headless Chromium pages and the others websocket clients speaking the kernel protocol, each
changing a widget and waiting for the kernel's answer. Every page loads and every change gets
its answer; once they left, the kernels are back to the pool and the server's memory near idle.
The round-trip times are printed (speed is measured in bench/bench_dashboards.py, not asserted)."""

from __future__ import annotations

import json
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
import requests
import websocket

from conftest import write_project
from serve_util import SITE, Server, config_data, kernel_message, kernel_widgets, widget_models, widgets_notebook

VIEWERS = 20
PAGES = 4  # Chromium pages; the other viewers are websocket clients
POOL = 2
CHANGES = 5  # widget changes per websocket viewer


def _socket_viewer(url: str, port: int, gate: threading.Barrier) -> list[float]:
    """Load the dashboard, set the slider CHANGES times, wait each time for the label the kernel
    updates; stay until every viewer is in (``gate``); return the round-trip times (ms)."""
    response = requests.get(url, timeout=300)
    assert response.status_code == 200 and "This dashboard failed" not in response.text, response.status_code
    ws = websocket.create_connection(
        f"ws://127.0.0.1:{port}/api/kernels/{config_data(response.text)['kernelId']}/channels", timeout=60)
    session, times = uuid.uuid4().hex, []
    try:
        models = widget_models(kernel_widgets(ws, session))
        slider, label = models["IntSliderModel"], models["LabelModel"]
        for i in range(CHANGES):
            value = 4 + i
            start = time.perf_counter()
            ws.send(kernel_message("comm_msg", {"comm_id": slider, "data": {
                "method": "update", "state": {"value": value}, "buffer_paths": []}}, session))
            while True:
                msg = json.loads(ws.recv())
                content = msg.get("content") or {}
                state = (content.get("data") or {}).get("state") or {}
                if content.get("comm_id") == label and state.get("value") == f"square={value * value}":
                    break
            times.append((time.perf_counter() - start) * 1000)
        gate.wait(timeout=600)
    finally:
        ws.close()
    return times


def _server_rss(server: Server) -> float:
    return psutil.Process(server.proc.pid).memory_info().rss / 2**20


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_twenty_concurrent_viewers(tmp_path, browser):
    project = write_project(tmp_path, {"widgets.ipynb": widgets_notebook()}, {
        "widgets": {"notebook": "widgets.ipynb", "title": "Widgets", "dashboard": True, "pool_size": POOL}},
        "[serve]\nmax_kernels = 30\n", site=SITE)
    server = Server(project, env={"LAB2LAND_CLOSE_GRACE_SECONDS": "2"})
    url = server.url + "/dashboards/widgets/"
    try:
        assert server.wait_kernels(POOL, timeout=120) == POOL
        # Idle after a first viewer came and left (templates compiled, assets read once).
        assert len(_socket_viewer(url, server.port, threading.Barrier(1))) == CHANGES
        assert server.wait_kernels(POOL, timeout=120) == POOL
        time.sleep(3)
        idle_rss = _server_rss(server)

        gate = threading.Barrier(VIEWERS - PAGES + 1)
        with ThreadPoolExecutor(VIEWERS - PAGES) as pool:
            sockets = [pool.submit(_socket_viewer, url, server.port, gate) for _ in range(VIEWERS - PAGES)]
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            pages = [context.new_page() for _ in range(PAGES)]
            for page in pages:
                page.goto(url, wait_until="commit")
            for page in pages:
                page.wait_for_selector(".js-plotly-plot .main-svg", timeout=300_000)
                page.wait_for_selector("body.l2l-live", state="attached", timeout=300_000)
                page.focus(".widget-slider .noUi-handle")
                page.keyboard.press("ArrowRight")
                page.wait_for_function("document.body.innerText.includes('square=16')", timeout=120_000)
            peak = len(server.kernels())
            peak_rss = _server_rss(server)
            gate.wait(timeout=600)  # every viewer is in: now they all leave
            context.close()
            times = [t for future in sockets for t in future.result()]

        assert peak >= VIEWERS  # each viewer had a kernel of its own at the same time
        assert len(times) == (VIEWERS - PAGES) * CHANGES
        assert server.wait_kernels(POOL, timeout=120) == POOL
        time.sleep(3)
        after_rss = _server_rss(server)
        ordered = sorted(times)
        print(f"\nload: {VIEWERS} viewers ({PAGES} Chromium, {VIEWERS - PAGES} websocket), {peak} kernels at peak; "
              f"widget round-trip median {statistics.median(times):.0f} ms, "
              f"p95 {ordered[int(len(ordered) * 0.95) - 1]:.0f} ms, max {ordered[-1]:.0f} ms; "
              f"server RSS idle {idle_rss:.0f} MB, peak {peak_rss:.0f} MB, after {after_rss:.0f} MB")
        # Near idle: what the server keeps per viewer (sessions, sockets) must not pile up.
        assert after_rss <= idle_rss * 1.5 + 60, (idle_rss, after_rss)
    finally:
        server.stop()
