"""P1: build 12 report variants with lab2land vs the naive way, in the same run.

lab2land: ``publish.py build kpi --jobs N --force`` (one CLI call; papermill in-process in
forkserver children, N runs at a time, in-process nbconvert rendering, site pages), twice: with
warm kernels (forked from a fork server, the default) and with ``[site] warm_kernels = false``
(a cold interpreter per kernel, the fallback).

Naive: per variant, sequentially, ``papermill in.ipynb out_i.ipynb -p ... --cwd notebooks/`` and
then ``jupyter nbconvert --to html out_i.ipynb``, each a checked subprocess.

Both execute ``notebooks/kpi_report.ipynb`` of the demo over the same 12 parameter sets
(4 regions x 3 month spans) on the same CSV, in a temporary copy of the demo project.
lab2land (warm) runs first, so any cold-cache penalty falls on it. Prints figures, asserts
nothing. ``--profile`` adds the per-run breakdown (kernel ready, cells, after the cells) and an
in-process instrumented warm build that times rendering and committing each version.

Usage: .venv/bin/python bench/bench_build.py [--jobs N] [--profile] [--keep]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BIN, demo_project, keep_or_remove, machine, publish, run  # noqa: E402

REGIONS = ("north", "south", "east", "west")
MONTHS = (1, 2, 3)
NOTEBOOK = "kpi_report.ipynb"
# Cell time limit on BOTH sides (report `timeout`, papermill --execution-timeout). Needed: the
# kpi notebook's widget cell sometimes never sees its execute_reply (nbclient issue #312, seen
# here with the plain papermill CLI too); without a limit that run hangs forever, with one the
# reply is found when the limit expires and the cell "completes" late. See bench/README.md.
DEFAULT_TIMEOUT = 60


def variants() -> list[dict]:
    return [{"region": r, "months": m} for r in REGIONS for m in MONTHS]


def config_toml(timeout: int, warm: bool = True, output: str = "reports") -> str:
    sets = ", ".join(f'{{ region = "{v["region"]}", months = {v["months"]} }}' for v in variants())
    return (f"[site]\ntitle = \"bench\"\noutput = \"{output}\"\nwarm_kernels = {str(warm).lower()}\n\n"
            "[sources.daily_sales]\npath = \"data/daily_sales.csv\"\n\n"
            f"[reports.kpi]\nnotebook = \"notebooks/{NOTEBOOK}\"\ntitle = \"Sales KPIs\"\n"
            f"sources = [\"daily_sales\"]\ntimeout = {timeout}\nparameters = [{sets}]\n")


def slowest_cell(executed: Path) -> float:
    """Seconds of the slowest code cell of an executed notebook (papermill's own timing)."""
    cells = json.loads(executed.read_text(encoding="utf-8"))["cells"]
    return max(c["metadata"]["papermill"].get("duration") or 0.0 for c in cells if c["cell_type"] == "code")


def bench_lab2land(project: Path, jobs: int, timeout: int, warm: bool) -> dict:
    """One CLI build of the 12 variants into its own site folder (reports-warm / reports-cold)."""
    output = f"reports-{'warm' if warm else 'cold'}"
    (project / "publish.toml").write_text(config_toml(timeout, warm, output), encoding="utf-8")
    launched = datetime.now(UTC)
    wall = publish(project, "build", "kpi", "--jobs", str(jobs), "--force")
    site = project / output
    catalog = json.loads((site / "catalog.json").read_text(encoding="utf-8"))
    versions = catalog["reports"]["kpi"]["versions"]
    bad = [v for v in versions if v["status"] != "ok"]
    if len(versions) != len(variants()) or bad:
        sys.exit(f"lab2land build did not publish {len(variants())} good versions: {bad or len(versions)}")
    return {"wall": wall, "run_s": [v["duration_s"] for v in versions], "site": site, "launched": launched,
            "slowest_cell": [slowest_cell(p) for p in (site / "kpi").glob(f"*/{NOTEBOOK}")]}


def bench_naive(project: Path, timeout: int) -> dict:
    nb_dir, out = project / "notebooks", project / "naive"
    out.mkdir()
    data = str((project / "data" / "daily_sales.csv").resolve())
    pm_s, nbc_s = [], []
    for i, v in enumerate(variants()):
        executed = out / f"out_{i}.ipynb"
        pm_s.append(run([str(BIN / "papermill"), str(nb_dir / NOTEBOOK), str(executed),
                         "-p", "region", v["region"], "-p", "months", str(v["months"]),
                         "-p", "daily_sales", data, "--cwd", str(nb_dir),
                         "--execution-timeout", str(timeout)]))
        nbc_s.append(run([str(BIN / "jupyter"), "nbconvert", "--to", "html", str(executed)]))
        if not executed.with_suffix(".html").is_file():
            sys.exit(f"nbconvert wrote no {executed.with_suffix('.html')}")
    return {"wall": sum(pm_s) + sum(nbc_s), "papermill_s": pm_s, "nbconvert_s": nbc_s,
            "slowest_cell": [slowest_cell(p) for p in out.glob("out_*.ipynb")]}


def _seconds(a: str, b: str) -> float:
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()


def profile(site: Path, ours: dict, jobs: int, timeout: int, label: str) -> None:
    """Where lab2land's wall time went, from the manifests and the executed notebooks' papermill
    timings (no extra runs): kernel start, cells (the import cell separately), kernel shutdown and
    child overhead per run, and what is left for planning, rendering and writing the site."""
    rows = []
    for manifest_path in sorted((site / "kpi").glob("*/manifest.json")):
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        nb = json.loads((manifest_path.parent / manifest["executed_notebook"]).read_text(encoding="utf-8"))
        pm = nb["metadata"]["papermill"]
        cells = [c["metadata"]["papermill"] for c in nb["cells"] if c["cell_type"] == "code"]
        first, last = cells[0]["start_time"], cells[-1]["end_time"]
        durations = [c["duration"] or 0.0 for c in cells]
        slowest = max(range(len(cells)), key=lambda i: durations[i])
        rows.append({
            "variant": manifest["variant"], "run": manifest["duration_s"],
            "kernel_start": _seconds(pm["start_time"], first), "cells": sum(durations),
            "imports": max(durations[:4]),  # the imports cell is among the first code cells
            "after_cells": _seconds(last, pm["end_time"]),
            "child_overhead": manifest["duration_s"] - pm["duration"],
            "slowest": (slowest, durations[slowest]),
        })
    n = len(rows)
    print(f"\nprofile of the {label} lab2land build ({n} runs, --jobs {jobs}):")
    for key, what in (("run", "RunResult.duration_s (papermill call in the child)"),
                      ("kernel_start", "fork/start -> kernel ready (papermill start -> first cell)"),
                      ("cells", "all cells"), ("imports", "the slowest of the first 4 cells (imports)"),
                      ("after_cells", "after the last cell (kernel shutdown, final write)"),
                      ("child_overhead", "duration_s - papermill's own duration")):
        values = [r[key] for r in rows]
        print(f"  {what:55} avg {avg(values):6.2f} s  min {min(values):6.2f}  max {max(values):6.2f}")
    manifests = [json.loads(p.read_text(encoding="utf-8")) for p in (site / "kpi").glob("*/manifest.json")]
    first = min(datetime.fromisoformat(m["started"]) for m in manifests)
    last = max(datetime.fromisoformat(m["finished"]) for m in manifests)
    before = (first - ours["launched"]).total_seconds()
    print(f"  timeline (1 s resolution): first run started {before:.0f} s after the CLI was launched (CLI start, "
          f"planning, snapshot, fork server start), last run finished {(last - first).total_seconds():.0f} s "
          f"later, then {ours['wall'] - before - (last - first).total_seconds():.0f} s to the end (last page, site)")
    busy = sum(r["run"] for r in rows)
    print(f"  sum of run durations / jobs = {busy / jobs:.1f} s of {ours['wall']:.1f} s wall; "
          f"the other {ours['wall'] - busy / jobs:.1f} s are CLI start, planning, snapshots, "
          f"rendering/committing versions and the site (serial in the parent)")
    stalls = [r for r in rows if r["slowest"][1] >= 0.9 * timeout]
    for r in stalls:
        print(f"  STALL: {r['variant']}: code cell {r['slowest'][0]} took {r['slowest'][1]:.1f} s "
              f"(the cell timeout is {timeout} s) and still completed")


def avg(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def instrumented(project: Path, jobs: int, timeout: int) -> None:
    """A warm build in this process, timing each version's rendering and commit (the publisher's
    serial share of the wall time) by wrapping ``render_version`` and ``Store.commit_version``."""
    import time

    from lab2land import render
    from lab2land.build import build
    from lab2land.config import load_config
    from lab2land.store import Store

    timings: dict[str, list[float]] = {"render": [], "commit": [], "publish": []}

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                timings[name].append(time.perf_counter() - start)
        return wrapper

    from lab2land.publisher import Publisher

    originals = (render.render_version, Store.commit_version, Publisher.publish)
    render.render_version = timed("render", render.render_version)
    Store.commit_version = timed("commit", Store.commit_version)
    Publisher.publish = timed("publish", Publisher.publish)
    try:
        (project / "publish.toml").write_text(config_toml(timeout, True, "reports-instrumented"), encoding="utf-8")
        start = time.perf_counter()
        build(load_config(project), reports=["kpi"], jobs=jobs, force=True)
        wall = time.perf_counter() - start
    finally:
        render.render_version, Store.commit_version, Publisher.publish = originals
    print(f"\nin-process warm build: {wall:.1f} s wall; per version, in the publisher (serial):")
    for name, what in (("render", "render_version (nbconvert page)"), ("commit", "Store.commit_version"),
                       ("publish", "Publisher.publish (manifest, diff, render, commit)")):
        values = timings[name]
        print(f"  {what:55} avg {avg(values):6.3f} s  total {sum(values):6.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="lab2land --jobs (default 2: this machine's cores)")
    parser.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT,
                        help=f"cell time limit, both sides (default {DEFAULT_TIMEOUT} s)")
    parser.add_argument("--profile", action="store_true", help="also break lab2land's time down by stage")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive side (warm vs cold only)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary project and print its path")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)

    tmp = Path(tempfile.mkdtemp(prefix="lab2land-bench-build-"))
    project = demo_project(tmp, [NOTEBOOK], config_toml(args.timeout))
    n = len(variants())
    print(f"P1 build benchmark: {n} variants of {NOTEBOOK} ({len(REGIONS)} regions x {len(MONTHS)} month spans)")
    print(f"machine: {machine()}")

    warm = bench_lab2land(project, args.jobs, args.timeout, warm=True)
    cold = bench_lab2land(project, args.jobs, args.timeout, warm=False)
    naive = None if args.no_naive else bench_naive(project, args.timeout)

    for label, ours in (("warm", warm), ("cold", cold)):
        print(f"\nlab2land {label} kernels, publish.py build --jobs {args.jobs} --force: {ours['wall']:7.1f} s wall "
              f"({ours['wall'] / n:.2f} s per variant; each run {avg(ours['run_s']):.2f} s on average "
              f"in its child, min {min(ours['run_s']):.2f}, max {max(ours['run_s']):.2f})")
    if naive:
        print(f"naive     papermill CLI + nbconvert CLI, sequential: {naive['wall']:7.1f} s wall "
              f"({naive['wall'] / n:.2f} s per variant: papermill {avg(naive['papermill_s']):.2f} s "
              f"+ nbconvert {avg(naive['nbconvert_s']):.2f} s)")
        print(f"slowest cell: lab2land warm {max(warm['slowest_cell']):.2f} s, cold {max(cold['slowest_cell']):.2f} s, "
              f"naive {max(naive['slowest_cell']):.2f} s (cell timeout {args.timeout} s on all sides; "
              f"a slowest cell near it is the widget-cell stall)")
        print(f"ratio     naive / lab2land warm = {naive['wall'] / warm['wall']:.2f}x (target >= 10x, aim 15x)")
        print(f"ratio     naive / lab2land cold = {naive['wall'] / cold['wall']:.2f}x")
    print(f"ratio     lab2land cold / warm = {cold['wall'] / warm['wall']:.2f}x")
    print(f"load average after: {machine().rsplit('load average ', 1)[1]}")

    if args.profile:
        profile(warm["site"], warm, args.jobs, args.timeout, "warm")
        profile(cold["site"], cold, args.jobs, args.timeout, "cold")
        instrumented(project, args.jobs, args.timeout)
    keep_or_remove(tmp, args.keep, project)


if __name__ == "__main__":
    main()
