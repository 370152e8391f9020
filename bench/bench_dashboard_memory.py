"""Dashboard memory: ``publish.py serve`` with 10 dashboards open, warm (forked) kernels vs cold.

The project of ``bench_dashboards.py``: the fraud dashboard (pool of 3) and a light one (a slider
and a plotly bar chart, pool of 1). Per side, in the same run: the server starts, its pools fill
and go quiet (idle); 10 Chromium tabs open the light dashboard, each waits for its live slider
(10 open); the tabs close and the kernels go back to the pools (after closing). At each point
the RSS and PSS (a page shared by n processes counts 1/n in each, from /proc/PID/smaps_rollup)
of the server and every descendant (fork servers, kernels) are summed. Warm kernels share their
fork server's pages, which PSS shows and RSS (shared pages counted in full in every process)
does not. The cold side sets ``[site] warm_kernels = false``. Linux only; prints figures,
asserts nothing.

Usage: .venv/bin/python bench/bench_dashboard_memory.py [--tabs 10] [--keep]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, demo_project, keep_or_remove, machine  # noqa: E402
from bench_dashboards import _free_port, _kernels, _light_notebook  # noqa: E402

MB = 1024 * 1024
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
POOLED = 3 + 1  # fraud's pool and light's
TOML = """[site]
title = "bench"
warm_kernels = %s
[reports.fraud]
notebook = "notebooks/fraud_detection.ipynb"
title = "Fraud"
parameters = { threshold = 0.5 }
dashboard = true
pool_size = 3
[reports.light]
notebook = "notebooks/light.ipynb"
title = "Light"
dashboard = true
pool_size = 1
"""


def _kind(proc: psutil.Process, root: psutil.Process) -> str:
    """``server`` (serve itself), ``fork server``, ``kernel`` or ``other``."""
    if proc.pid == root.pid:
        return "server"
    cmd = proc.cmdline()
    if cmd[1:3] == ["-m", "lab2land.warm"]:
        # A forked kernel shows its server's command line: its parent tells them apart.
        return "fork server" if proc.ppid() == root.pid else "kernel"
    return "kernel" if "ipykernel_launcher" in " ".join(cmd) else "other"


def tree(root: psutil.Process) -> dict[str, dict[str, int]]:
    """RSS, PSS and count of ``root`` and its descendants, by kind and in total."""
    sums: dict[str, dict[str, int]] = {}
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return {}
    for proc in procs:
        try:
            kind, info = _kind(proc, root), proc.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, IndexError):
            continue  # exiting: a kernel being shut down is no longer counted
        for key in (kind, "total"):
            entry = sums.setdefault(key, {"rss": 0, "pss": 0, "n": 0})
            entry["rss"] += info.rss
            entry["pss"] += info.pss
            entry["n"] += 1
    return sums


def _wait_quiet(root: psutil.Process, count: int, timeout: float = 300, exact: bool = False) -> None:
    """Until ``count`` kernels exist (exactly, or at least) and together use < 5 % of a CPU."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kernels = _kernels(root)
        if len(kernels) == count or (not exact and len(kernels) > count):
            try:
                for k in kernels:
                    k.cpu_percent(interval=None)
                time.sleep(1.5)
                if sum(k.cpu_percent(interval=None) for k in kernels) < 5:
                    return
            except psutil.NoSuchProcess:
                pass
        time.sleep(0.5)
    print(f"  (gave up waiting for {count} quiet kernels: {len(_kernels(root))})")


def measure(project: Path, warm: bool, tabs: int, browser) -> dict:
    (project / "publish.toml").write_text(TOML % ("true" if warm else "false"), encoding="utf-8")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = project / f"serve-{'warm' if warm else 'cold'}.log"
    env = {**os.environ, "LAB2LAND_CLOSE_GRACE_SECONDS": "2"}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(ROOT / "publish.py"), "--project", str(project), "serve",
                             "--port", str(port)], cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
    root = psutil.Process(proc.pid)
    result: dict = {}
    try:
        _wait_quiet(root, POOLED, exact=True)
        result["ready_s"] = time.perf_counter() - start
        time.sleep(2)
        result["idle"] = tree(root)
        context = browser.new_context()
        for _ in range(tabs):
            page = context.new_page()
            page.goto(base + "/dashboards/light/", timeout=180_000)
            page.wait_for_selector("body.l2l-live .widget-slider", timeout=180_000)
        _wait_quiet(root, POOLED + tabs)
        result["open"] = tree(root)
        context.close()
        _wait_quiet(root, POOLED, timeout=120, exact=True)
        time.sleep(2)
        result["closed"] = tree(root)
        everything = [root, *root.children(recursive=True)]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    _gone, alive = psutil.wait_procs(everything, timeout=10)
    result["left"] = [p.pid for p in alive if p.status() != psutil.STATUS_ZOMBIE]
    cold_notes = [line for line in log.read_text().splitlines() if line.startswith("note: cold")]
    result["notes"] = cold_notes
    return result


def _row(label: str, sums: dict) -> str:
    total = sums.get("total", {"rss": 0, "pss": 0, "n": 0})
    parts = ", ".join(f"{kind} {v['n']}: {v['rss'] / MB:,.0f}/{v['pss'] / MB:,.0f}"
                      for kind, v in sums.items() if kind != "total")
    return (f"  {label:<14} RSS {total['rss'] / MB:7,.0f} MB  PSS {total['pss'] / MB:7,.0f} MB  "
            f"({parts}; RSS/PSS MB)")


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tabs", type=int, default=10, help="dashboards to open (default 10)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary project")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    print(f"bench_dashboard_memory: {machine()}")
    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True, check=True).stdout.strip()}")
    tmp = Path(tempfile.mkdtemp(prefix="lab2land-bench-dash-mem-"))
    project = demo_project(tmp, ["fraud_detection.ipynb"], TOML % "true")
    _light_notebook(project / "notebooks" / "light.ipynb")
    results = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for label in ("warm", "cold"):
            results[label] = measure(project, label == "warm", args.tabs, browser)
        browser.close()
    for label, r in results.items():
        print(f"{label} kernels: pools ready {r['ready_s']:.1f} s after start; "
              f"left after stop: {r['left'] or 'nothing'}; {' | '.join(r['notes']) or 'no cold-kernel note'}")
        for point, name in (("idle", "idle (pools)"), ("open", f"{args.tabs} open"), ("closed", "after closing")):
            print(_row(name, r[point]))
    for point in ("idle", "open", "closed"):
        warm, cold = results["warm"][point]["total"], results["cold"][point]["total"]
        print(f"cold / warm, {point}: RSS {cold['rss'] / warm['rss']:.2f}x, PSS {cold['pss'] / warm['pss']:.2f}x")
    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True, check=True).stdout.strip()}")
    keep_or_remove(tmp, args.keep, project)


if __name__ == "__main__":
    main()
