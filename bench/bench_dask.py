"""P7: the 12 KPI variants of P1 on a Dask LocalCluster with 2 workers vs 1, and vs local --jobs 2.

Each side is one ``publish.py build kpi --force`` through the CLI with ``[site] executor =
"dask"`` and ``jobs = N`` (lab2land then starts a LocalCluster of N single-threaded worker
processes, cluster start-up included in the wall time), or the local executor with ``--jobs 2``.
Warm kernels are on (the default): each Dask worker keeps its own fork server. Prints figures
and ratios, asserts nothing.

``--profile`` adds, in this process, the same 12 runs through the executors themselves (no CLI,
no rendering): where each run's time goes on its worker (waiting for the fork server, starting
the run's process, kernel start, cells), the gaps between one worker's runs (scheduler and result
transfer), and the CPU seconds each whole build used (all its processes; cores busy = CPU / wall).

Usage: .venv/bin/python bench/bench_dask.py [--timeout 60] [--profile] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import itertools
import json
import os
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import demo_project, keep_or_remove, machine, publish  # noqa: E402
from bench_build import DEFAULT_TIMEOUT, NOTEBOOK, avg, config_toml, variants  # noqa: E402

PR_SET_CHILD_SUBREAPER = 36


def _reap_orphans() -> None:
    """Reap the descendants that were orphaned to us (we are their subreaper), so that their CPU
    time is counted in RUSAGE_CHILDREN (a fork server outlives the publisher by a moment)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.05)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def build_once(project: Path, timeout: int, output: str, executor: str, jobs: int) -> float:
    toml = config_toml(timeout, True, output).replace(
        "[site]\n", f"[site]\nexecutor = \"{executor}\"\njobs = {jobs}\n", 1)
    (project / "publish.toml").write_text(toml, encoding="utf-8")
    cpu, launched = _cpu(), datetime.now(UTC)
    wall = publish(project, "build", "kpi", "--force")
    _reap_orphans()
    cpu = _cpu() - cpu
    manifests = [json.loads(p.read_text()) for p in (project / output / "kpi").glob("*/manifest.json")]
    first = min(datetime.fromisoformat(m["started"]) for m in manifests)
    last = max(datetime.fromisoformat(m["finished"]) for m in manifests)
    before, runs = (first - launched).total_seconds(), (last - first).total_seconds()
    print(f"  {output}: {wall:.1f} s wall, {cpu:.1f} s CPU in all its processes = {cpu / wall:.2f} cores busy; "
          f"timeline (1 s resolution): first run started {before:.0f} s after launch, the runs took {runs:.0f} s, "
          f"then {wall - before - runs:.0f} s to the end")
    versions = json.loads((project / output / "catalog.json").read_text())["reports"]["kpi"]["versions"]
    if len(versions) != len(variants()) or any(v["status"] != "ok" for v in versions):
        sys.exit(f"{output}: not {len(variants())} good versions: {[v['status'] for v in versions]}")
    return wall


def _jobs(project: Path, timeout: int) -> list:
    from lab2land.execute import RunJob

    nb = project / "notebooks" / NOTEBOOK
    data = str((project / "data" / "daily_sales.csv").resolve())
    return [RunJob(report="kpi", variant=f"{v['region']}-{v['months']}", version_id=f"v{i}", notebook=str(nb),
                   cwd=str(nb.parent), parameters={**v, "daily_sales": data}, kernel="python3", cell_timeout=timeout)
            for i, v in enumerate(variants())]


def profile(project: Path, timeout: int, executor_name: str, workers: int) -> None:
    """The 12 runs through one executor in this process: per-run breakdown and per-worker gaps."""
    from lab2land.executors import get_executor
    from lab2land.forked import WarmSettings, stop_servers

    label = f"{executor_name}-{workers}"
    cluster, scheduler, clock = None, None, time.monotonic()
    if executor_name == "dask":
        from dask.distributed import LocalCluster

        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None)
        scheduler = cluster.scheduler_address
    cluster_s = time.monotonic() - clock
    executor = get_executor(executor_name, jobs=workers, scheduler=scheduler, warm=WarmSettings(), note=print)
    start = time.time()
    try:
        results = list(executor.map(_jobs(project, timeout), on_start=lambda job: None))
    finally:
        stop_servers()
        if cluster is not None:
            cluster.close()
    wall = time.time() - start
    bad = [r.error for r in results if not r.ok]
    if bad:
        sys.exit(f"profile {label}: failed runs: {bad}")
    ex = [r.extra for r in results]
    print(f"\nprofile {label}: cluster start {cluster_s:.1f} s, then 12 runs in {wall:.1f} s "
          f"(first run started {min(e['t_start'] for e in ex) - start:.1f} s after submitting)")
    rows = (("server_wait_s", "waiting for the worker's kernel fork server"),
            ("child_start_s", "run process: start -> running (interpreter, imports)"),
            ("kernel_s", "papermill: kernel start + shutdown, notebook I/O"),
            ("cells_s", "papermill: cells"))
    for key, what in rows:
        values = [e.get(key, 0.0) for e in ex]
        print(f"  {what:58} avg {avg(values):5.2f} s  min {min(values):5.2f}  max {max(values):5.2f}")
    total = [e["t_end"] - e["t_start"] for e in ex]
    print(f"  {'whole run on its worker':58} avg {avg(total):5.2f} s  sum {sum(total):5.1f} s")
    by_worker: dict[int, list[dict]] = {}
    for e in ex:
        by_worker.setdefault(e["worker_pid"], []).append(e)
    for pid, runs in sorted(by_worker.items()):
        runs.sort(key=lambda e: e["t_start"])
        gaps = [b["t_start"] - a["t_end"] for a, b in itertools.pairwise(runs)]
        busy = sum(e["t_end"] - e["t_start"] for e in runs)
        print(f"  worker {pid}: {len(runs)} runs, busy {busy:.1f} s of {wall:.1f} s; gap between runs avg "
              f"{avg(gaps) if gaps else 0:.2f} s (scheduler, result transfer)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT, help="cell time limit")
    parser.add_argument("--profile", action="store_true", help="also profile the runs on each executor")
    parser.add_argument("--keep", action="store_true", help="keep the temporary project")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    with contextlib.suppress(OSError, AttributeError):  # Linux: orphaned descendants come to us
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1)
    tmp = Path(tempfile.mkdtemp(prefix="lab2land-bench-dask-"))
    project = demo_project(tmp, [NOTEBOOK], config_toml(args.timeout))
    print(f"P7 Dask benchmark: {len(variants())} variants of {NOTEBOOK}")
    print(f"machine: {machine()}")
    dask2 = build_once(project, args.timeout, "reports-dask2", "dask", 2)
    dask1 = build_once(project, args.timeout, "reports-dask1", "dask", 1)
    local2 = build_once(project, args.timeout, "reports-local2", "local", 2)
    print(f"dask, 2 workers : {dask2:6.1f} s wall")
    print(f"dask, 1 worker  : {dask1:6.1f} s wall")
    print(f"local, --jobs 2 : {local2:6.1f} s wall")
    print(f"ratio dask-1 / dask-2 = {dask1 / dask2:.2f}x (target >= 1.7x)")
    print(f"ratio dask-2 / local-2 = {dask2 / local2:.2f} (close to 1: Dask costs about what local does)")
    print(f"load average after: {machine().rsplit('load average ', 1)[1]}")
    if args.profile:
        for name, workers in (("dask", 2), ("dask", 1), ("local", 2)):
            profile(project, args.timeout, name, workers)
        print(f"load average after the profile: {machine().rsplit('load average ', 1)[1]}")
    keep_or_remove(tmp, args.keep, project)


if __name__ == "__main__":
    main()
