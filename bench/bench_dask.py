"""P7: the 12 KPI variants of P1 on a Dask LocalCluster with 2 workers vs 1, and vs local --jobs 2.

Each side is one ``publish.py build kpi --force`` through the CLI with ``[site] executor =
"dask"`` and ``jobs = N`` (lab2land then starts a LocalCluster of N single-threaded worker
processes, cluster start-up included in the wall time), or the local executor with ``--jobs 2``.
Warm kernels are on (the default): each Dask worker keeps its own fork server. Prints figures
and ratios, asserts nothing.

Usage: .venv/bin/python bench/bench_dask.py [--timeout 60] [--keep]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import demo_project, keep_or_remove, machine, publish  # noqa: E402
from bench_build import DEFAULT_TIMEOUT, NOTEBOOK, config_toml, variants  # noqa: E402


def build_once(project: Path, timeout: int, output: str, executor: str, jobs: int) -> float:
    toml = config_toml(timeout, True, output).replace(
        "[site]\n", f"[site]\nexecutor = \"{executor}\"\njobs = {jobs}\n", 1)
    (project / "publish.toml").write_text(toml, encoding="utf-8")
    wall = publish(project, "build", "kpi", "--force")
    versions = json.loads((project / output / "catalog.json").read_text())["reports"]["kpi"]["versions"]
    if len(versions) != len(variants()) or any(v["status"] != "ok" for v in versions):
        sys.exit(f"{output}: not {len(variants())} good versions: {[v['status'] for v in versions]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT, help="cell time limit")
    parser.add_argument("--keep", action="store_true", help="keep the temporary project")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
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
    keep_or_remove(tmp, args.keep, project)


if __name__ == "__main__":
    main()
