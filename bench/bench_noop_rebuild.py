"""P2: a no-op rebuild of 100 report variants (nothing changed), against the cold build.

A temporary project holds one small notebook fanned out over 100 parameter sets that reads one
SQLite source (a real SQL query, snapshotted and hashed on every build). The cold build executes
and publishes all 100 variants. Then, with nothing changed, the rebuild is timed:

* in-process: ``build(load_config(project))``, the library call, several times;
* CLI: ``publish.py --project DIR build`` as a user or cron runs it (interpreter start-up and
  imports included), several times.

Every no-op must report 100 × "unchanged" and start no kernel (checked). Target: no-op ≤ 1 s and
≥ 50× faster than the cold build. Prints figures, asserts nothing about time.

The bench runs on a frozen copy of ``lab2land/`` (templates included) and ``publish.py``: the cache key
covers lab2land's templates and render code, so an edit in a shared checkout during the run would
(rightly) turn the "no-op" into a full rebuild. ``--live-code`` runs the checkout as it is.

Usage: .venv/bin/python bench/bench_noop_rebuild.py [--variants 100] [--jobs 2] [--repeat 5]
       [--profile] [--keep] [--live-code]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbformat import v4

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, keep_or_remove, machine  # noqa: E402
from lab2land.build import Reporter, build  # noqa: E402
from lab2land.config import load_config  # noqa: E402


class Counter(Reporter):
    def __init__(self):
        self.started_runs = 0

    def started(self, run) -> None:
        self.started_runs += 1


def make_project(root: Path, variants: int) -> Path:
    (root / "data").mkdir(parents=True)
    with sqlite3.connect(root / "data" / "shop.sqlite") as db:
        db.execute("create table sales (day text, region text, amount real)")
        db.executemany("insert into sales values (?, ?, ?)",
                       [(f"2026-01-{d:02d}", f"r{r}", d * 1.5 + r) for d in range(1, 29) for r in range(variants)])
    nb = v4.new_notebook(cells=[
        v4.new_code_cell('sales = ""\nregion = "r0"', metadata={"tags": ["parameters"]}),
        v4.new_code_cell("import csv\nrows = [r for r in csv.DictReader(open(sales)) if r['region'] == region]\n"
                         "print(f'{region}: {len(rows)} days, total {sum(float(r[\"amount\"]) for r in rows):.1f}')"),
        v4.new_markdown_cell("Revenue of one region."),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    (root / "notebooks").mkdir()
    nbformat.write(nb, str(root / "notebooks" / "region.ipynb"))
    sets = ", ".join(f'{{ region = "r{i}" }}' for i in range(variants))
    (root / "publish.toml").write_text(
        '[site]\ntitle = "P2 bench"\n\n'
        '[sources.sales]\nurl = "sqlite:///data/shop.sqlite"\n'
        'sql = "select day, region, amount from sales order by day, region"\n\n'
        '[reports.region]\nnotebook = "notebooks/region.ipynb"\ntitle = "Region"\nsources = ["sales"]\n'
        f"parameters = [{sets}]\n", encoding="utf-8")
    return root


def noop_in_process(project: Path, variants: int) -> float:
    counter = Counter()
    start = time.perf_counter()
    summary = build(load_config(project), reporter=counter)
    wall = time.perf_counter() - start
    statuses = [o.status for o in summary.outcomes]
    if counter.started_runs or statuses != ["unchanged"] * variants:
        sys.exit(f"not a no-op: {counter.started_runs} kernels started, statuses {set(statuses)}")
    return wall


def versions(project: Path) -> int:
    return sum(1 for p in (project / "reports" / "region").glob("2*") if p.is_dir())


def profile_noop(project: Path) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    build(load_config(project))
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
    return out.getvalue()


def import_breakdown(project: Path, top: int = 10) -> str:
    """Where a CLI no-op spends its import time: each package's cumulative import time at its first
    import (``python -X importtime``), heaviest first."""
    script = Path(os.environ.get(FROZEN, ROOT)) / "publish.py"
    proc = subprocess.run([sys.executable, "-X", "importtime", str(script), "--project", str(project), "build"],
                          capture_output=True, text=True, check=True)
    packages: dict[str, int] = {}
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = (part.strip() for part in line.split("|"))
        if cumulative.isdigit() and "." not in name:
            packages[name] = max(packages.get(name, 0), int(cumulative))
    heaviest = sorted(packages.items(), key=lambda kv: -kv[1])[:top]
    return "\n".join(f"  {name:<24} {us / 1000:7.0f} ms" for name, us in heaviest)


FROZEN = "LAB2LAND_BENCH_FROZEN_CODE"


def rerun_on_frozen_code() -> None:
    """Copy the code the cache key depends on and re-execute this script on that copy."""
    code = Path(tempfile.mkdtemp(prefix="lab2land-bench-code-"))
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "lab2land", code / "lab2land", ignore=skip)  # templates and assets inside
    shutil.copy(ROOT / "publish.py", code / "publish.py")
    env = {**os.environ, FROZEN: str(code), "PYTHONPATH": os.pathsep.join(filter(None, [
        str(code), os.environ.get("PYTHONPATH")]))}
    try:
        sys.exit(subprocess.run([sys.executable, __file__, *sys.argv[1:]], env=env).returncode)
    finally:
        shutil.rmtree(code, ignore_errors=True)


def publish_cli(project: Path, *args: str) -> float:
    """``publish.py --project PROJECT ARGS`` as a user runs it (the frozen copy's publish.py)."""
    script = Path(os.environ.get(FROZEN, ROOT)) / "publish.py"
    start = time.perf_counter()
    subprocess.run([sys.executable, str(script), "--project", str(project), *args], check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", type=int, default=100)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--profile", action="store_true", help="print a cProfile of one in-process no-op")
    p.add_argument("--keep", action="store_true", help="keep the temporary project")
    p.add_argument("--live-code", action="store_true", help="run on the checkout, not a frozen copy of it")
    args = p.parse_args()
    if not args.live_code and FROZEN not in os.environ:
        rerun_on_frozen_code()
    import lab2land

    code_dir = Path(lab2land.__file__).resolve().parent.parent

    tmp = Path(tempfile.mkdtemp(prefix="lab2land-bench-noop-"))
    try:
        project = make_project(tmp / "project", args.variants)
        print(f"P2 no-op rebuild — {machine()}")
        print(f"project: {args.variants} variants of one notebook, one SQLite source; jobs={args.jobs}; "
              f"code: {'frozen copy' if FROZEN in os.environ else 'live checkout'} ({code_dir})")

        counter = Counter()
        start = time.perf_counter()
        summary = build(load_config(project), jobs=args.jobs, reporter=counter)
        cold = time.perf_counter() - start
        bad = [o for o in summary.outcomes if o.status != "ok"]
        if bad or counter.started_runs != args.variants:
            sys.exit(f"cold build failed: {[o.summary for o in bad][:3]}")
        before = versions(project)

        in_process = [noop_in_process(project, args.variants) for _ in range(args.repeat)]
        cli = [publish_cli(project, "build") for _ in range(args.repeat)]
        if versions(project) != before:
            sys.exit(f"a no-op rebuild wrote versions: {before} → {versions(project)}")

        best_in, med_in = min(in_process), statistics.median(in_process)
        best_cli, med_cli = min(cli), statistics.median(cli)
        print(f"cold build (in-process, {args.variants} kernels):  {cold:8.2f} s")
        print(f"no-op rebuild, in-process:   median {med_in:6.3f} s (best {best_in:.3f})   "
              f"{cold / med_in:7.0f}× faster than cold")
        print(f"no-op rebuild, CLI:          median {med_cli:6.3f} s (best {best_cli:.3f})   "
              f"{cold / med_cli:7.0f}× faster than cold")
        print(f"target: ≤ 1 s and ≥ 50×.  in-process: {'met' if med_in <= 1 and cold / med_in >= 50 else 'MISSED'}; "
              f"CLI: {'met' if med_cli <= 1 and cold / med_cli >= 50 else 'MISSED'}")
        if args.profile:
            print("CLI no-op, heaviest imports (cumulative, nested imports included):")
            print(import_breakdown(project))
            print(profile_noop(project))
    finally:
        keep_or_remove(tmp, args.keep)


if __name__ == "__main__":
    main()
