"""P8: what changed between versions — ``lab2land diff`` vs the naive ``diff -u`` of the notebooks,
and the history page of a report with 200 versions.

1. Builds the KPI report (north) on 90 days of demo data, advances the data a week, builds again,
   then re-runs the second version's inputs (``--force``): three versions.
2. Times ``lab2land diff`` (CLI, as a user runs it) and ``diff -u`` of the two executed notebooks
   (what a user without lab2land does), for the week-apart pair and for the re-run pair; prints
   how many lines each prints. For the re-run pair every line ``diff -u`` prints is noise
   (timestamps, durations, ids); lab2land's should say "no changes".
3. Copies the newest version 200 times with varied metrics (a report with 200 versions), times
   the site rewrite (``lab2land repair``) and prints the history page's weight.

Prints figures; asserts nothing about time.

Usage: .venv/bin/python bench/bench_diff.py [--versions 200] [--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, demo_project, kb, keep_or_remove, machine, publish  # noqa: E402

TOML = """
[site]
title = "Bench"
[sources.daily_sales]
url = "sqlite:///data/shop.sqlite"
sql = "select date, region, product, orders, revenue, customers from daily_sales order by date, region, product"
[reports.kpi]
notebook = "notebooks/kpi_report.ipynb"
title = "KPIs"
sources = ["daily_sales"]
parameters = { region = "north" }
"""


def timed(cmd: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode not in (0, 1):  # diff -u exits 1 when the files differ
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start, proc.stdout


def versions(site: Path) -> list[Path]:
    return sorted(p for p in (site / "kpi").iterdir() if p.name[:1].isdigit())


def compare(project: Path, old: Path, new: Path, label: str) -> None:
    ours_s, ours = timed([sys.executable, str(ROOT / "publish.py"), "--project", str(project), "diff", "kpi",
                          old.name, new.name])
    naive_s, naive = timed(["diff", "-u", str(old / "kpi_report.ipynb"), str(new / "kpi_report.ipynb")])
    print(f"{label:<24} lab2land diff {ours_s:6.2f} s, {len(ours.splitlines()):5d} lines"
          f" | diff -u {naive_s:6.3f} s, {len(naive.splitlines()):5d} lines"
          f" | first line of ours: {ours.splitlines()[1].strip() if len(ours.splitlines()) > 1 else ''}")


def many_versions(project: Path, count: int) -> None:
    site = project / "reports"
    template = versions(site)[-1]
    manifest = json.loads((template / "manifest.json").read_text())
    for i in range(count):
        stamp = f"2025{1 + i // 28 % 12:02d}{1 + i % 28:02d}T060000Z-north"
        folder = site / "kpi" / stamp
        if folder.exists():
            continue
        shutil.copytree(template, folder)
        data = {**manifest, "version_id": stamp, "created": f"2025-{1 + i // 28 % 12:02d}-{1 + i % 28:02d}T06:00:00",
                "metrics": {k: {**v, "value": round(v["value"] * (0.9 + (i % 20) / 100), 2)}
                            for k, v in manifest.get("metrics", {}).items()}}
        (folder / "manifest.json").write_text(json.dumps(data))
    start = time.perf_counter()
    publish(project, "repair")
    elapsed = time.perf_counter() - start
    history = site / "kpi" / "index.html"
    print(f"{len(versions(site))} versions: site rewrite (lab2land repair) {elapsed:.2f} s; history page "
          f"{kb(history.stat().st_size)}, catalog.json {kb((site / 'catalog.json').stat().st_size)}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--versions", type=int, default=200)
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lab2land-bench-diff-"))
    try:
        project = demo_project(tmp / "project", ["kpi_report.ipynb"], TOML)
        print(f"P8 diff and history — {machine()}")
        publish(project, "build")
        publish(project, "demo-data", "--advance", "7d")
        publish(project, "build")
        publish(project, "build", "--force")
        first, second, rerun = versions(project / "reports")
        compare(project, first, second, "a week of new data")
        compare(project, second, rerun, "re-run, same inputs")
        many_versions(project, args.versions)
    finally:
        keep_or_remove(tmp, args.keep)


if __name__ == "__main__":
    main()
