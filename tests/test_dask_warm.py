"""Warm kernels on Dask: each worker forks its runs' kernels from a fork server of its own, and a
worker killed mid-run makes that run retry or fail cleanly, leaving no process and no
half-published version behind. Real ``distributed.LocalCluster`` with worker processes."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import psutil
import pytest

from conftest import code_notebook, process_gone, write_project
from lab2land.build import build
from lab2land.config import load_config
from lab2land.execute import RunJob
from lab2land.executors import get_executor
from lab2land.forked import WarmSettings

distributed = pytest.importorskip("distributed")

WHO = """
import json, os, psutil
server = psutil.Process(os.getppid())
print(json.dumps({"kernel": os.getpid(), "server": server.pid, "server_cmd": server.cmdline(),
                  "worker": server.parent().pid}))
"""


def _printed(result) -> dict:
    import nbformat

    nb = nbformat.reads(result.notebook_json, as_version=4)
    texts = [o["text"] for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "stream"]
    return json.loads(texts[-1])


@pytest.fixture
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        yield cluster


def test_dask_runs_fork_their_kernels_from_their_workers_servers(tmp_path, cluster):
    nb = write_project(tmp_path, {"nb.ipynb": code_notebook("n = 1", WHO)}) / "nb.ipynb"
    jobs = [RunJob(report="r", variant=str(i), version_id=f"v{i}", notebook=str(nb), cwd=str(tmp_path),
                   parameters={"n": i}, kernel="python3") for i in range(4)]
    executor = get_executor("dask", jobs=2, scheduler=cluster.scheduler_address, warm=WarmSettings())
    results = list(executor.map(jobs, on_start=lambda job: None))
    assert len(results) == 4 and all(r.ok for r in results), [r.error for r in results]
    assert all(r.extra["kernel"] == "warm" for r in results)
    who = [_printed(r) for r in results]
    workers = {p.pid for p in psutil.Process().children(recursive=True)}
    for w in who:
        assert "lab2land.warm" in w["server_cmd"] and w["worker"] in workers and w["worker"] != os.getpid()
    # One server per worker, reused across that worker's runs.
    servers_by_worker = {}
    for w in who:
        servers_by_worker.setdefault(w["worker"], set()).add(w["server"])
    assert all(len(s) == 1 for s in servers_by_worker.values())
    assert len({w["kernel"] for w in who}) == 4


def _wait_for(path: Path, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().endswith("\n"):
            return json.loads(path.read_text().splitlines()[0])
        time.sleep(0.1)
    raise AssertionError(f"{path} never appeared")


def test_a_worker_killed_mid_run_retries_or_fails_cleanly(tmp_path, cluster):
    marker = tmp_path / "started.json"
    body = WHO.replace("print(json.dumps(", "open(MARKER, 'a').write(json.dumps(").replace("}))", "}) + '\\n')")
    project = write_project(
        tmp_path, {"nb.ipynb": code_notebook(f"MARKER = {str(marker)!r}", body, "import time; time.sleep(6)",
                                             "print('finished')")},
        {"r": {"notebook": "nb.ipynb", "title": "R"}},
        site={"executor": "dask", "scheduler": cluster.scheduler_address})
    config = load_config(project)
    outcome: dict = {}
    builder = threading.Thread(target=lambda: outcome.update(summary=build(config)), daemon=True)
    builder.start()
    first = _wait_for(marker)
    psutil.Process(first["worker"]).kill()  # the worker running the notebook, mid-cell
    builder.join(300)
    assert not builder.is_alive(), "the build did not finish after its worker was killed"
    # The dead worker's server and kernel went with it.
    assert process_gone(first["server"], 20) and process_gone(first["kernel"], 20)
    [result] = outcome["summary"].outcomes
    site = config.output_dir
    versions = [p for p in (site / "r").iterdir() if p.name[:1].isdigit()]
    assert len(versions) == 1  # one version, complete: manifest, page and notebook
    manifest = json.loads((versions[0] / "manifest.json").read_text())
    assert (versions[0] / "index.html").is_file() and (versions[0] / "nb.ipynb").is_file()
    assert manifest["status"] == result.status
    if result.status == "ok":  # Dask ran it again on a live worker
        assert len(marker.read_text().splitlines()) == 2
        assert "finished" in (versions[0] / "index.html").read_text()
    else:
        assert result.status == "failed" and "worker" in result.summary
    catalog = json.loads((site / "catalog.json").read_text())
    assert [v["id"] for v in catalog["reports"]["r"]["versions"]] == [versions[0].name]
