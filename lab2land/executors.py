"""Where runs execute: a registry of executors (``local`` processes, ``dask`` cluster).

An executor takes :class:`~lab2land.execute.RunJob` objects and yields
:class:`~lab2land.execute.RunResult` objects as runs finish, in any order. A failing run never
stops the others. The executed notebook travels back inside the result, so workers need not
share the site's filesystem (they do need to see the project's notebooks and data).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from .config import ConfigError
from .execute import RunJob, RunResult
from .forked import WarmSettings, kernel_problem, platform_problem, preload_for, server_for, stop_servers
from .isolate import forkserver_context, kill_tree, run_isolated

OnStart = Callable[[RunJob], None]


class Executor(Protocol):
    def map(self, jobs: Iterable[RunJob], on_start: OnStart) -> Iterator[RunResult]: ...

    def warm_up(self, notebooks: list[tuple[str, Path]]) -> None:
        """Get ready for runs of these (kernel, notebook) pairs, e.g. start fork servers."""


_REGISTRY: dict[str, Callable[..., Executor]] = {}


def register(name: str, factory: Callable[..., Executor]) -> None:
    """Make an executor available under ``name`` (``[site] executor = "<name>"``)."""
    _REGISTRY[name] = factory


def get_executor(name: str, *, jobs: int | None = None, scheduler: str | None = None,
                 warm: WarmSettings | None = None, note: Callable[[str], None] | None = None) -> Executor:
    """Create the executor called ``name``; an unknown name lists the valid ones.

    Args:
        name: A registered executor.
        jobs: Runs at once.
        scheduler: Dask scheduler address.
        warm: Whether runs get warm (forked) kernels, and extra modules to preload.
        note: Receives one-line notes for the build output (default: printed to stderr).
    """
    if name not in _REGISTRY:
        raise ConfigError([f"site.executor: unknown executor {name!r} (valid: {', '.join(sorted(_REGISTRY))})"])
    executor = _REGISTRY[name](jobs=jobs or os.cpu_count() or 1, scheduler=scheduler)
    executor.warm = warm or WarmSettings()
    executor.note = note or _print_note
    return executor


def _print_note(text: str) -> None:
    print(f"note: {text}", file=sys.stderr, flush=True)


def plan_warm(jobs: list[RunJob], warm: WarmSettings, note: Callable[[str], None]) -> list[RunJob]:
    """Mark the jobs that get warm kernels with what their fork server preloads (one server per
    kernel: the imports of all its notebooks); say in one line per kernel why any cannot."""
    if not warm.enabled:
        if jobs:
            note("cold kernels: [site] warm_kernels = false")
        return jobs
    by_kernel: dict[str | None, list[RunJob]] = {}
    for job in jobs:
        by_kernel.setdefault(job.kernel, []).append(job)
    marked = {}
    for kernel, group in by_kernel.items():
        problem = platform_problem() or (kernel_problem(kernel) if kernel else "the run names no kernel")
        if problem:
            note(f"cold kernels for {len(group)} run(s): {problem}")
            continue
        preload = preload_for(sorted({Path(j.notebook) for j in group}), warm.preload)
        marked.update({id(j): replace(j, preload=preload) for j in group})
    return [marked.get(id(j), j) for j in jobs]


def fork_servers(jobs: list[RunJob]) -> list[tuple[str, tuple[str, ...]]]:
    """The ``(kernel, preload)`` of each kernel fork server these (planned) jobs want."""
    return sorted({(j.kernel, tuple(j.preload)) for j in jobs if j.preload is not None})


def _servers_for(notebooks: list[tuple[str, Path]], warm: WarmSettings) -> list[tuple[str, tuple[str, ...]]]:
    jobs = [RunJob(report="", variant="", version_id="", notebook=str(nb), cwd=str(nb.parent), parameters={},
                   kernel=kernel) for kernel, nb in notebooks]
    return fork_servers(plan_warm(jobs, warm, lambda text: None))


class LocalExecutor:
    """Runs on this machine, ``jobs`` at a time, each in its own child process."""

    warm = WarmSettings()
    note = staticmethod(_print_note)

    def __init__(self, jobs: int, scheduler: str | None = None):
        self.jobs = jobs

    def warm_up(self, notebooks: list[tuple[str, Path]]) -> None:
        """Start the fork servers the runs will want, in the background, so that their imports
        overlap the build's planning and data loading (the first run waits for them): the run
        processes' forkserver (papermill imported) and a kernel fork server per kernel and preload."""
        if notebooks:
            threading.Thread(target=forkserver_context, daemon=True, name="lab2land-warm-up").start()
        for kernel, preload in _servers_for(notebooks, self.warm):
            threading.Thread(target=server_for, args=(kernel, list(preload)), daemon=True,
                             name="lab2land-warm-up").start()

    def _one(self, job: RunJob, on_start: OnStart) -> RunResult:
        on_start(job)
        return run_isolated(job)

    def map(self, jobs: Iterable[RunJob], on_start: OnStart) -> Iterator[RunResult]:
        jobs = plan_warm(list(jobs), self.warm, self.note)
        pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="lab2land-run")
        try:
            pending = {pool.submit(self._one, job, on_start) for job in jobs}
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        except BaseException:  # Ctrl-C or SIGTERM: take every run and kernel down with us
            kill_tree(os.getpid(), include_root=False)
            raise
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
            stop_servers()


class DaskExecutor:
    """Runs on a Dask cluster: ``scheduler`` is its address, or None for a local cluster.

    Each run executes in a process of its own on a worker, so a worker survives any notebook.
    Dask's worker processes are daemonic and may not start multiprocessing children, so the
    worker's own run fork server forks it, with papermill already imported (a fresh interpreter
    where that server cannot start); its kernel is forked from the worker's own warm kernel fork
    server. The worker plugin (:mod:`lab2land.dask_plugin`) starts both servers as soon as it is
    registered, before the first run. Workers must have lab2land and the notebooks' kernels
    installed, and see the project folder at the same path.

    A worker that dies mid-run (killed, out of memory) makes Dask run the task again elsewhere;
    when Dask gives up, the run fails like any other. Nothing is committed until the result is
    back here, so neither leaves a half-published version.
    """

    def __init__(self, jobs: int, scheduler: str | None = None):
        self.jobs, self.scheduler = jobs, scheduler
        self._starting: threading.Thread | None = None
        self._session: tuple | BaseException | None = None  # (client, cluster, plugin's servers)

    def warm_up(self, notebooks: list[tuple[str, Path]]) -> None:
        """Start the local cluster (or connect to the scheduler) and register the worker plugin,
        which starts each worker's fork servers, in the background: all of that overlaps the
        build's planning and data loading (the first run waits for it). A build that ends before
        its runs leaves the cluster to the interpreter's exit (distributed closes it then)."""
        servers = _servers_for(notebooks, self.warm)
        self._starting = threading.Thread(target=self._connect, args=(servers,), daemon=True,
                                          name="lab2land-dask-up")
        self._starting.start()

    def _connect(self, servers: list) -> None:
        from .dask_plugin import WarmKernels

        client = cluster = None
        try:
            client, cluster = self._client()
            client.register_plugin(WarmKernels(servers))
            self._session = (client, cluster, servers)
        except BaseException as exc:  # noqa: BLE001 - raised again by map(), in the build's thread
            _close(client, cluster)
            self._session = exc

    def _connected(self, servers: list) -> tuple:
        """The client and cluster, with the plugin registered for ``servers``."""
        from .dask_plugin import WarmKernels

        if self._starting is None:
            self._connect(servers)
        else:
            self._starting.join()
        session, self._session, self._starting = self._session, None, None
        if isinstance(session, BaseException):
            raise session
        client, cluster, registered = session
        if not set(servers) <= set(registered):
            try:
                client.register_plugin(WarmKernels(servers))
            except BaseException:
                _close(client, cluster)
                raise
        return client, cluster

    def _client(self):
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            raise ConfigError(["site.executor = 'dask' needs dask.distributed: pip install 'lab2land[dask]'"]) from None
        if self.scheduler:
            return Client(self.scheduler), None
        # Bind to loopback: a cluster started for us must not listen on the network.
        cluster = LocalCluster(n_workers=self.jobs, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None)
        return Client(cluster), cluster

    def map(self, jobs: Iterable[RunJob], on_start: OnStart) -> Iterator[RunResult]:
        jobs = plan_warm(list(jobs), self.warm, self.note)
        client, cluster = self._connected(fork_servers(jobs))
        try:
            from dask.distributed import as_completed

            futures = {}
            for job in jobs:
                on_start(job)
                future = client.submit(run_isolated, job, mode="server", pure=False,
                                       key=f"lab2land-{job.report}-{job.version_id}")
                futures[future] = job
            for future in as_completed(futures):
                yield _dask_result(future, futures[future])
        finally:
            _close(client, cluster)


def _close(client, cluster) -> None:
    if client is not None:
        client.close()
    if cluster is not None:
        cluster.close()


def _dask_result(future, job: RunJob) -> RunResult:
    """The run's result, or a failed run if Dask could not run it (e.g. its workers kept dying)."""
    from datetime import UTC, datetime

    from .execute import RunError

    try:
        return future.result()
    except Exception as exc:  # KilledWorker, a worker that lost lab2land, ...: this run fails, not the build
        now = datetime.now(UTC).isoformat(timespec="seconds")
        return RunResult(job, "failed", now, now, 0.0, error=RunError(
            "kernel_died", f"the Dask worker running it died or failed ({type(exc).__name__}: {exc})",
            ename=type(exc).__name__, evalue=str(exc)))


register("local", LocalExecutor)
register("dask", DaskExecutor)
