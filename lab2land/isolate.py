"""Run one job in a child process of its own, time-limited: the run process and its handling.

Each run executes (:func:`lab2land.execute.execute`) in a child process, so that a whole-run
wall-clock limit can kill it (kernel included) and so that nothing a notebook does can take the
publisher, or a Dask worker, down. The child leaves its result as JSON in a temporary folder.

Where the child comes from (``mode`` of :func:`run_isolated`):

- ``"fork"``: a multiprocessing forkserver child of the publisher (local runs);
- ``"server"``: a child of this process's run fork server (:mod:`lab2land.warm`, ``runs``
  role) — for Dask workers, which are daemonic and may not start multiprocessing children;
  falls back to ``"subprocess"`` where that server cannot start;
- ``"subprocess"``: a new interpreter (``python -m lab2land.isolate``).

The first two start a run in a few milliseconds with papermill already imported; the last pays
a fresh interpreter and its imports (1-2 s) per run.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import multiprocessing.forkserver
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, replace
from pathlib import Path

import nbformat
import psutil

from .execute import RunError, RunJob, RunResult, _now, _read_nb, _running_cell, execute, where

# Python's "don't put the current folder on sys.path" switch (3.11+), for our own processes.
SAFE_PATH = "PYTHONSAFEPATH"


def _child(job: RunJob, workdir: str, publisher: int | None = None) -> None:
    """Entry point of the child process: run, then leave the result as JSON in ``workdir``.
    ``publisher`` is the pid of the process that started the run: the run dies with it."""
    entered = time.time()
    if publisher is not None:
        from .kernels import die_with

        die_with(publisher)
    os.environ.pop(SAFE_PATH, None)  # the kernel imports from the notebook's folder, as in Jupyter
    log = open(os.path.join(workdir, "log.txt"), "ab", buffering=0)  # noqa: SIM115 - open until the process exits
    # The kernel inherits these descriptors: its warnings land in the run's log, not the terminal.
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    try:
        result = execute(job, Path(workdir) / "executed.ipynb")
    except BaseException as exc:  # noqa: BLE001 - reported to the parent as an internal error
        result = RunResult(job, "failed", _now(), _now(), 0.0, error=RunError("internal", repr(exc)))
    result.extra["child_entered"] = entered
    tmp = os.path.join(workdir, "result.json.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(asdict(result)))  # one C call (json.dump encodes in Python: ~10x slower)
    os.replace(tmp, os.path.join(workdir, "result.json"))


def child_from_request(request: dict) -> None:
    """The run fork server's child (``runs`` role of :mod:`lab2land.warm`): run the job it sent."""
    _child(RunJob(**request["job"]), request["workdir"], request["requester"])


def kill_tree(pid: int, *, include_root: bool = True) -> None:
    """Kill a process's descendants (kernels included) and, unless told not to, the process."""
    try:
        root = psutil.Process(pid)
        procs = root.children(recursive=True) + ([root] if include_root else [])
    except psutil.NoSuchProcess:
        return
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(procs, timeout=5)


def _load_result(workdir: Path) -> RunResult | None:
    path = workdir / "result.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    data["job"] = RunJob(**data["job"])
    data["error"] = RunError(**data["error"]) if data["error"] else None
    return RunResult(**data)


def _log_tail(workdir: Path, lines: int = 20) -> str:
    log = workdir / "log.txt"
    if not log.is_file():
        return ""
    text = log.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(line for line in text[-lines:] if "running over TCP without encryption" not in line)


_FORKSERVER = None
_FORKSERVER_LOCK = threading.Lock()


def forkserver_context():
    # A forkserver forks each run from a clean single-threaded process that has papermill
    # imported already: ~1 s faster per run than spawning, and safe in our threaded parent.
    # Python starts it with `-c`, which puts the caller's current folder first on sys.path
    # (and its `sys_path` argument is not applied before the preloads): a `concurrent.py` in
    # the folder cron runs from would shadow the standard library in every run. PYTHONSAFEPATH
    # keeps it off; the forked child drops the variable again before starting its kernel.
    global _FORKSERVER
    with _FORKSERVER_LOCK:
        if _FORKSERVER is None:
            ctx = multiprocessing.get_context("forkserver")
            # lab2land.lean first (see there: ~0.8 s off the server's start, which the first run
            # waits for); lab2land.cli too: each child re-runs the parent's main script (publish.py, the
            # `lab2land` script) before its target, as multiprocessing does, and that script
            # imports lab2land.cli: ~0.15 s per run unless the server has it already. (Preloading
            # "__main__" itself does nothing on Python < 3.14: the server is never given its path.)
            ctx.set_forkserver_preload(["lab2land.lean", "lab2land.isolate", "lab2land.forked", "lab2land.cli",
                                        "papermill", "nbclient", "nbformat"])
            previous = os.environ.get(SAFE_PATH)
            os.environ[SAFE_PATH] = "1"
            try:
                multiprocessing.forkserver.ensure_running()
            finally:
                if previous is None:
                    del os.environ[SAFE_PATH]
                else:
                    os.environ[SAFE_PATH] = previous
            _FORKSERVER = ctx
    return _FORKSERVER


class ServedRun:
    """A run process forked by the run fork server: not our child, so its end is seen on a pipe
    whose write end only it holds (the part of ``Popen`` this module uses)."""

    def __init__(self, path: str, job: RunJob, workdir: Path):
        from .forked import ask_server

        self._done, write_end = os.pipe()
        try:
            request = {"job": asdict(job), "workdir": str(workdir), "cwd": os.getcwd(), "env": dict(os.environ)}
            self.pid = ask_server(path, request, [write_end])
        except BaseException:
            os.close(self._done)
            raise
        finally:
            os.close(write_end)

    def wait(self, timeout: float | None) -> bool:
        """True once the process has ended (its pipe end closed); False after ``timeout``."""
        if self._done < 0:
            return True
        ready, _, _ = select.select([self._done], [], [], timeout)
        if not ready:
            return False
        os.close(self._done)  # EOF, or the pipe's only writer is gone: either way the run ended
        self._done = -1
        return True

    def alive(self) -> bool:
        return not self.wait(0)

    def close(self) -> None:
        if self._done >= 0:
            os.close(self._done)
            self._done = -1


def _start_child(job: RunJob, workdir: Path, mode: str):
    if mode == "server":
        from .forked import run_server

        path, _ = run_server()
        if path:
            with contextlib.suppress(OSError):  # a server that died since: a fresh interpreter instead
                return ServedRun(path, job, workdir)
        mode = "subprocess"
    if mode == "subprocess":  # for hosts (e.g. daemonic Dask workers) that may not fork children
        job_path = workdir / "job.json"
        job_path.write_text(json.dumps(asdict(job)), encoding="utf-8")
        # -P: not the worker's current folder first on sys.path (see forkserver_context)
        return subprocess.Popen([sys.executable, "-P", "-m", "lab2land.isolate", str(job_path), str(workdir),
                                 str(os.getpid())],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc = forkserver_context().Process(target=_child, args=(job, str(workdir), os.getpid()),
                                        name=f"lab2land-{job.version_id}")
    proc.start()
    return proc


def _alive(proc) -> bool:
    if isinstance(proc, ServedRun):
        return proc.alive()
    return proc.poll() is None if isinstance(proc, subprocess.Popen) else proc.is_alive()


def _wait(proc, timeout: float) -> bool:
    """Wait for the child; True if it finished in time."""
    if isinstance(proc, ServedRun):
        return proc.wait(timeout)
    if isinstance(proc, subprocess.Popen):
        try:
            proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False
    proc.join(timeout)
    return not proc.is_alive()


def _warm_kernel(job: RunJob) -> tuple[RunJob, str]:
    """The job with its kernel fork server's socket, if it asked for a warm kernel and can have one."""
    if job.preload is None or job.kernel_server is not None:
        return job, "cold"
    from .forked import server_for

    path, why_not = server_for(job.kernel, job.preload) if job.kernel else (None, "no kernel name")
    return (replace(job, kernel_server=path), "warm") if path else (job, f"cold: {why_not}")


def run_isolated(job: RunJob, *, mode: str = "fork") -> RunResult:
    """Execute ``job`` in a child process, killing it (and its kernel) after ``job.run_timeout``.

    Args:
        job: The run.
        mode: ``"fork"`` (forkserver child), ``"server"`` (run fork server child) or
            ``"subprocess"`` (a new interpreter); see the module docstring.
    """
    started, clock, t_start = _now(), time.monotonic(), time.time()
    job, kernel = _warm_kernel(job)
    t_spawn = time.time()
    with tempfile.TemporaryDirectory(prefix="lab2land-run-") as tmp:
        workdir = Path(tmp)
        proc = _start_child(job, workdir, mode)
        try:
            finished_in_time = _wait(proc, job.run_timeout)
        finally:
            if _alive(proc):  # timed out, or we are being interrupted (Ctrl-C)
                kill_tree(proc.pid)
            if isinstance(proc, ServedRun):
                proc.close()
        result = _load_result(workdir) if finished_in_time else None
        if result is None:
            result = _no_result(job, workdir, finished_in_time, started, clock)
        if not result.ok:
            result.log_tail = _log_tail(workdir)
    # Where the time went, for bench/bench_dask.py --profile (epoch seconds: several processes).
    result.extra.update(kernel=kernel, server_wait_s=round(t_spawn - t_start, 3), t_start=t_start,
                        t_end=time.time(), worker_pid=os.getpid(), run_process=type(proc).__name__)
    if "child_entered" in result.extra:
        result.extra["child_start_s"] = round(result.extra["child_entered"] - t_spawn, 3)
    return result


def _no_result(job: RunJob, workdir: Path, finished_in_time: bool, started: str, clock: float) -> RunResult:
    """The failed run of a child that left no result: it died, or it was killed at ``run_timeout``."""
    nb = _read_nb(workdir / "executed.ipynb")
    index = _running_cell(nb)
    if finished_in_time:
        error = RunError("kernel_died", "the run's process exited without a result (killed, or out of memory)", index)
    else:
        error = RunError("run_timeout", f"the run took longer than {job.run_timeout} s (the report's "
                                        f"`run_timeout`); stopped while running {where(nb, index)}", index)
    return RunResult(job, "failed", started, _now(), round(time.monotonic() - clock, 3),
                     nbformat.writes(nb) if nb is not None else None, error)


def main(argv: list[str]) -> None:
    """``python -m lab2land.isolate JOB_JSON WORKDIR [PUBLISHER_PID]``: the subprocess isolation mode."""
    job = RunJob(**json.loads(Path(argv[0]).read_text(encoding="utf-8")))
    _child(job, argv[1], int(argv[2]) if len(argv) > 2 else None)


if __name__ == "__main__":
    main(sys.argv[1:])
