"""Warm runs on Dask: each worker forks its runs' processes and their kernels from fork servers of
its own, started when the worker plugin is registered; a run that overruns its ``run_timeout``
or whose process dies fails like a local run, leaving the servers serving; a worker killed
mid-run makes that run retry or fail cleanly, leaving no process and no half-published version
behind. Real ``distributed.LocalCluster`` with worker processes."""

from __future__ import annotations

import contextlib
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

# The run's process is the kernel's JPY_PARENT_PID (its kernel manager's process).
WHO = """
import json, os, psutil
server = psutil.Process(os.getppid())
run = psutil.Process(int(os.environ["JPY_PARENT_PID"]))
print(json.dumps({"kernel": os.getpid(), "server": server.pid, "server_cmd": server.cmdline(),
                  "worker": server.parent().pid, "run": run.pid, "run_server": run.ppid(),
                  "run_server_cmd": run.parent().cmdline(), "run_worker": run.parent().ppid()}))
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
        # The run's process too is forked, by the same worker's run server: no fresh interpreter.
        assert w["run_server_cmd"][-1] == "runs" and "lab2land.warm" in w["run_server_cmd"]
        assert w["run_worker"] == w["worker"]
    assert all(r.extra["run_process"] == "ServedRun" for r in results)
    # One server of each kind per worker, reused across that worker's runs.
    servers_by_worker = {}
    for w in who:
        servers_by_worker.setdefault(w["worker"], set()).add((w["server"], w["run_server"]))
    assert all(len(s) == 1 for s in servers_by_worker.values())
    assert len({w["kernel"] for w in who}) == len({w["run"] for w in who}) == 4


def _warm_children(pid: int) -> list[str]:
    """The roles of the lab2land fork servers that process ``pid`` started."""
    found = []
    for child in psutil.Process(pid).children():
        with contextlib.suppress(psutil.Error):
            cmd = child.cmdline()
            if "lab2land.warm" in cmd:
                found.append(cmd[-1])
    return sorted(found)


def test_the_plugin_starts_each_workers_servers_before_any_run_and_stops_them(cluster):
    from lab2land.dask_plugin import WarmKernels

    with distributed.Client(cluster) as client:
        workers = list(client.run(os.getpid).values())
        assert len(workers) == 2
        client.register_plugin(WarmKernels([("python3", ("json",))]))
        deadline = time.monotonic() + 120
        while any(_warm_children(w) != ["kernels", "runs"] for w in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert all(_warm_children(w) == ["kernels", "runs"] for w in workers), [_warm_children(w) for w in workers]
        servers = [c.pid for w in workers for c in psutil.Process(w).children()]
        client.unregister_worker_plugin(WarmKernels.name)  # its teardown stops them
        assert all(process_gone(pid, 20) for pid in servers)


@pytest.mark.parametrize(("cell", "keys", "kind"), [
    ("import time; time.sleep(60)", {"run_timeout": 8}, "run_timeout"),
    ("import os, signal; os.kill(int(os.environ['JPY_PARENT_PID']), signal.SIGKILL)", {}, "kernel_died"),
])
def test_a_run_that_overruns_or_loses_its_process_fails_and_the_servers_serve_on(tmp_path, cell, keys, kind):
    """run_timeout kills the run's process (not a child of the worker) and its kernel; a run
    process killed outright is seen to end; both servers live on and serve the next runs."""
    marker = tmp_path / "who.json"
    body = WHO.replace("print(json.dumps(", "open(MARKER, 'a').write(json.dumps(").replace("}))", "}) + '\\n')")
    nb = write_project(tmp_path, {"nb.ipynb": code_notebook(f"MARKER = {str(marker)!r}", body, cell)}) / "nb.ipynb"
    ok = write_project(tmp_path / "ok", {"ok.ipynb": code_notebook("n = 1", WHO)}) / "ok.ipynb"
    jobs = [RunJob(report="r", variant="x", version_id="v0", notebook=str(nb), cwd=str(tmp_path), parameters={},
                   kernel="python3", **keys)]
    jobs += [RunJob(report="r", variant=str(i), version_id=f"v{i}", notebook=str(ok), cwd=str(ok.parent),
                    parameters={}, kernel="python3") for i in (1, 2)]
    # One worker, one thread: it runs the jobs in the order they were submitted.
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as one:
        executor = get_executor("dask", jobs=1, scheduler=one.scheduler_address, warm=WarmSettings())
        results = {r.job.version_id: r for r in executor.map(jobs, on_start=lambda job: None)}
        bad = results.pop("v0")
        assert not bad.ok and bad.error.kind == kind, bad.error
        first = _wait_for(marker)
        assert process_gone(first["run"], 20) and process_gone(first["kernel"], 20)
        assert not process_gone(first["server"], 0) and not process_gone(first["run_server"], 0)
        assert all(r.ok and r.extra["kernel"] == "warm" and r.extra["t_start"] > bad.extra["t_end"]
                   for r in results.values()), [(r.error, r.extra) for r in results.values()]
        for later in map(_printed, results.values()):
            assert (later["server"], later["run_server"]) == (first["server"], first["run_server"])


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
    # The dead worker's servers, its run's process and the kernel went with it.
    assert process_gone(first["server"], 20) and process_gone(first["kernel"], 20)
    assert process_gone(first["run"], 20) and process_gone(first["run_server"], 20)
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
