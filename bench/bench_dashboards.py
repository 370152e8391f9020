"""Dashboard benchmarks (figures printed, no timed asserts).

P4  navigation → first plotly figure and widget visible in Chromium: ``publish.py serve``
    (preheated; widgets painted in their initial state, lab2land.dashboard_paint) vs plain
    ``voila notebook.ipynb``, same notebook (fraud_detection), same run; and → widgets live.
    Timed from the client (Playwright: before goto → selectors found) and in the page
    (performance.now() of the frame after both are on screen, from the navigation's start).
P5  widget round-trip on the fraud dashboard: field change → new probability shown, of 50.
MEM RSS of the server and its kernels: idle, with 10 dashboards open, after they are closed.

Run: ``.venv/bin/python bench/bench_dashboards.py``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BIN, ROOT, demo_project, machine  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        # No network here: a non-local request (plain Voila links a CDN) fails at once. Not a
        # playwright route, which would turn the browser's HTTP cache off (no warm visit).
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
VISIBLE = ".js-plotly-plot .main-svg"
# A widget on screen: painted from the kernel's state (ours, before it is live) or live.
WIDGET = ".l2l-prepaint, .widget-text input[type=number], .widget-slider"
RUNS = 3
# In the page: when a figure and a widget are first on screen (non-empty boxes), as
# performance.now() of the next animation frame, i.e. from the navigation's start. The
# client-side figure adds Playwright's own round trips (new page, navigation, selector polling).
MARKS_JS = """(() => {
  const marks = window.__l2lMarks = {};
  const shown = sel => [...document.querySelectorAll(sel)].some(e => {
    const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0; });
  const look = () => {
    for (const [key, sel] of Object.entries(SELECTORS)) {
      if (!(key in marks) && shown(sel)) {
        marks[key] = null;
        requestAnimationFrame(() => marks[key] = performance.now());
      }
    }
  };
  new MutationObserver(look).observe(document, {subtree: true, childList: true, attributes: true});
})();""".replace("SELECTORS", json.dumps({"plot": VISIBLE, "widget": WIDGET}))
TOML = """[site]
title = "bench"
[reports.fraud]
notebook = "notebooks/fraud_detection.ipynb"
title = "Fraud"
parameters = { threshold = 0.5 }
dashboard = true
pool_size = %d
[reports.light]
notebook = "notebooks/light.ipynb"
title = "Light"
dashboard = true
pool_size = 1
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _light_notebook(path: Path) -> None:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook(cells=[
        new_code_cell("n = 3", metadata={"tags": ["parameters"]}),
        new_code_cell("import ipywidgets as w\nw.IntSlider(value=n)"),
        new_code_cell("import plotly.graph_objects as go\ngo.Figure(go.Bar(y=[1, n, 2]))")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def _start(cmd: list[str], url: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "LAB2LAND_CULL_IDLE_SECONDS": "10", "LAB2LAND_CULL_INTERVAL_SECONDS": "2"}
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
    for _ in range(300):
        try:
            requests.get(url, timeout=2)
            return proc
        except requests.ConnectionError:
            time.sleep(0.2)
    sys.exit(f"server did not start: {' '.join(cmd)}\n{log.read_text()[-2000:]}")


def _kernels(proc) -> list[psutil.Process]:
    """The server's kernels: cold ones (``ipykernel_launcher``) and those its fork servers forked
    (a fork shows its server's command line: ``-m lab2land.warm``, under another such process)."""
    def warm(p: psutil.Process) -> bool:
        return p.cmdline()[1:3] == ["-m", "lab2land.warm"]

    kernels = []
    for p in psutil.Process(proc.pid).children(recursive=True):
        try:
            if "ipykernel_launcher" in " ".join(p.cmdline()) or (warm(p) and warm(p.parent())):
                kernels.append(p)
        except psutil.Error:
            pass  # exiting (zombie) or gone: a culled kernel is no longer counted
    return kernels


def _wait_quiet(proc, count: int, timeout: float = 180) -> None:
    """Until ``count`` kernels exist and none uses CPU (preheated pools have run the notebook)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kernels = _kernels(proc)
        if len(kernels) >= count:
            try:
                for k in kernels:
                    k.cpu_percent(interval=None)
                time.sleep(1.0)
                if sum(k.cpu_percent(interval=None) for k in kernels) < 5:
                    return
            except psutil.NoSuchProcess:
                pass  # a kernel exited (culled or restarted): look again
        time.sleep(0.5)


def _rss(proc) -> tuple[float, int]:
    procs = [psutil.Process(proc.pid), *_kernels(proc)]
    return sum(p.memory_info().rss for p in procs) / 2**20, len(procs) - 1


def _stop(proc) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def _load(context, url: str) -> tuple[float, float, float]:
    """(visible, live, visible in the page) seconds from navigation."""
    page = context.new_page()
    page.add_init_script(MARKS_JS)
    start = time.perf_counter()
    page.goto(url, wait_until="commit")
    page.wait_for_selector(VISIBLE, timeout=180_000)
    page.wait_for_selector(WIDGET, timeout=180_000)
    visible = time.perf_counter() - start
    live = ".l2l-live" if "/dashboards/" in url else ".widget-slider"
    page.wait_for_selector(live, state="attached", timeout=180_000)
    elapsed = time.perf_counter() - start
    page.wait_for_function("window.__l2lMarks.plot && window.__l2lMarks.widget", timeout=10_000)
    marks = page.evaluate("window.__l2lMarks")
    page.close()
    return visible, elapsed, max(marks["plot"], marks["widget"]) / 1000


def _time_to_visible(browser, url: str, server) -> list[tuple[float, float]]:
    """(cold, warm): a first visit with an empty browser cache, then a second visit in the same
    browser context (cached assets). Before each, the server's kernels are quiet again: a
    preheated pool has refilled, so every visit measures a preheated kernel."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    times = []
    for _ in range(2):
        time.sleep(1.0)  # let the pool start its replacement kernel before looking
        _wait_quiet(server, RUNS + 1 if "publish.py" in " ".join(server.args) else 0)
        times.append(_load(context, url))
    context.close()
    return times


ROUND_TRIP_JS = """async (values) => {
  const input = document.querySelector('.widget-text input[type=number]');
  const verdict = [...document.querySelectorAll('.widget-html')].find(e => /Probability of fraud/.test(e.innerText));
  const times = [];
  for (const v of values) {
    const before = verdict.innerText;
    const changed = new Promise(resolve => {
      const obs = new MutationObserver(() => { if (verdict.innerText !== before) { obs.disconnect(); resolve(); } });
      obs.observe(verdict, {subtree: true, childList: true, characterData: true});
    });
    const t0 = performance.now();
    input.value = String(v);
    input.dispatchEvent(new Event('input', {bubbles: true}));
    input.dispatchEvent(new Event('change', {bubbles: true}));
    await Promise.race([changed, new Promise((_, no) => setTimeout(() => no(new Error('no update for ' + v)), 10000))]);
    times.push(performance.now() - t0);
  }
  return times;
}"""


def main() -> None:
    from playwright.sync_api import sync_playwright

    print(f"bench_dashboards: {machine()}")
    with tempfile.TemporaryDirectory(prefix="lab2land-bench-dash-") as tmp:
        project = demo_project(Path(tmp), ["fraud_detection.ipynb"], TOML % RUNS)
        _light_notebook(project / "notebooks" / "light.ipynb")
        port, voila_port = _free_port(), _free_port()
        base = f"http://127.0.0.1:{port}"
        server = _start([sys.executable, str(ROOT / "publish.py"), "--project", str(project), "serve",
                         "--port", str(port)], base + "/voila/static/voila.js", project / "serve.log")
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                _wait_quiet(server, RUNS + 1)
                mem_idle = _rss(server)
                ours = [_time_to_visible(browser, base + "/dashboards/fraud/", server) for _ in range(RUNS)]

                _wait_quiet(server, RUNS + 1)
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(base + "/dashboards/fraud/")
                page.wait_for_selector(".widget-text input[type=number]", timeout=180_000)
                page.wait_for_selector(".l2l-live", state="attached", timeout=180_000)
                page.wait_for_function("/Probability of fraud/.test(document.body.innerText)", timeout=60_000)
                times = page.evaluate(ROUND_TRIP_JS, [25000 if i % 2 == 0 else 420 for i in range(50)])
                page.close()

                context = browser.new_context()
                for _ in range(10):
                    tab = context.new_page()
                    tab.goto(base + "/dashboards/light/")
                    tab.wait_for_selector(".widget-slider", timeout=180_000)
                mem_open = _rss(server)
                context.close()
                deadline = time.monotonic() + 90
                while time.monotonic() < deadline and len(_kernels(server)) > RUNS + 1:
                    time.sleep(1)
                mem_closed = _rss(server)

                voila = _start([str(BIN / "voila"), "--no-browser", f"--port={voila_port}", "--Voila.ip=127.0.0.1",
                                str(project / "notebooks" / "fraud_detection.ipynb")],
                               f"http://127.0.0.1:{voila_port}/voila/static/voila.js", project / "voila.log")
                try:
                    plain = [_time_to_visible(browser, f"http://127.0.0.1:{voila_port}/", voila) for _ in range(RUNS)]
                finally:
                    _stop(voila)
                browser.close()
        finally:
            _stop(server)
    print(f"P4 time to first plot + widget visible (fraud_detection, median of {RUNS}, kernels quiet before each):")
    for label, i in (("cold (empty browser cache)", 0), ("warm (second visit, cached)", 1)):
        for what, j in (("visible", 0), ("visible, in the page (from navigation start)", 2), ("live   ", 1)):
            ours_s = statistics.median(r[i][j] for r in ours)
            plain_s = statistics.median(r[i][j] for r in plain)
            print(f"  {label}, {what}:")
            print(f"   lab2land serve (preheated): {ours_s:.2f} s   runs {', '.join(f'{r[i][j]:.2f}' for r in ours)}")
            print(f"   plain voila:                {plain_s:.2f} s   runs {', '.join(f'{r[i][j]:.2f}' for r in plain)}")
            target = "   (target: visible <= 1.0 s and >= 4x)" if j != 1 else ""
            print(f"   ratio: {plain_s / ours_s:.1f}x faster{target}")
    ordered = sorted(times)
    print(f"P5 fraud form round-trip, {len(times)} changes: median {statistics.median(times):.0f} ms, "
          f"p95 {ordered[int(len(ordered) * 0.95) - 1]:.0f} ms, max {max(times):.0f} ms (target p95 <= 200 ms)")
    print("MEM server + kernels RSS:")
    print(f"   idle (pools ready):        {mem_idle[0]:,.0f} MB, {mem_idle[1]} kernels")
    print(f"   10 light dashboards open:  {mem_open[0]:,.0f} MB, {mem_open[1]} kernels")
    print(f"   after closing (culled):    {mem_closed[0]:,.0f} MB, {mem_closed[1]} kernels")


if __name__ == "__main__":
    main()
