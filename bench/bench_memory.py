"""Memory: peak RSS and PSS of a 4-way parallel build, warm kernels vs cold.

One ``publish.py build kpi --jobs 4 --force`` per side (the 12 KPI variants of P1). While it
runs, every 0.2 s, the RSS and PSS (proportional set size: a page shared by n processes counts
1/n in each, read from /proc/PID/smaps_rollup) of the publisher and all its descendants
(forkserver, runs, fork server, kernels) are summed; the peaks are printed. Forked kernels share
the pages of the modules their server imported, so their PSS sum should be well below the cold
kernels'. Linux only. Prints figures, asserts nothing.

Usage: .venv/bin/python bench/bench_memory.py [--jobs 4] [--keep]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, demo_project, keep_or_remove, machine  # noqa: E402
from bench_build import DEFAULT_TIMEOUT, NOTEBOOK, config_toml  # noqa: E402

MB = 1024 * 1024


def tree_memory(root: psutil.Process) -> tuple[int, int, int]:
    """Summed RSS and PSS of ``root`` and its descendants, and how many processes."""
    rss = pss = count = 0
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0, 0
    for proc in procs:
        try:
            info = proc.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        rss, pss, count = rss + info.rss, pss + info.pss, count + 1
    return rss, pss, count


def measure(project: Path, jobs: int, warm: bool, timeout: int) -> dict:
    output = f"reports-{'warm' if warm else 'cold'}"
    (project / "publish.toml").write_text(config_toml(timeout, warm, output), encoding="utf-8")
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(ROOT / "publish.py"), "--project", str(project), "build", "kpi",
                             "--jobs", str(jobs), "--force"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    root = psutil.Process(proc.pid)
    peak = {"rss": 0, "pss": 0, "procs": 0}
    while proc.poll() is None:
        rss, pss, count = tree_memory(root)
        peak = {"rss": max(peak["rss"], rss), "pss": max(peak["pss"], pss), "procs": max(peak["procs"], count)}
        time.sleep(0.2)
    if proc.returncode:
        sys.exit(f"build failed: {proc.stderr.read().decode()[-2000:]}")
    return {**peak, "wall": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=4, help="runs at once (default 4)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary project")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    tmp = Path(tempfile.mkdtemp(prefix="lab2land-bench-memory-"))
    project = demo_project(tmp, [NOTEBOOK], config_toml(DEFAULT_TIMEOUT))
    print(f"memory benchmark: 12 variants of {NOTEBOOK}, --jobs {args.jobs}")
    print(f"machine: {machine()}")
    results = {label: measure(project, args.jobs, label == "warm", DEFAULT_TIMEOUT) for label in ("warm", "cold")}
    for label, r in results.items():
        print(f"{label}: peak RSS {r['rss'] / MB:7.0f} MB, peak PSS {r['pss'] / MB:7.0f} MB, "
              f"up to {r['procs']} processes, {r['wall']:.1f} s wall")
    warm, cold = results["warm"], results["cold"]
    print(f"ratio cold / warm: RSS {cold['rss'] / warm['rss']:.2f}x, PSS {cold['pss'] / warm['pss']:.2f}x")
    print(f"load average after: {machine().rsplit('load average ', 1)[1]}")
    keep_or_remove(tmp, args.keep, project)


if __name__ == "__main__":
    main()
