"""Where runs execute: a registry of executors (``local`` processes, ``dask`` cluster).

An executor takes :class:`~lab2land.execute.RunJob` objects and yields
:class:`~lab2land.execute.RunResult` objects as runs finish, in any order. A failing run never
stops the others. The executed notebook travels back inside the result, so workers need not
share the site's filesystem (they do need to see the project's notebooks and data).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Protocol

from .config import ConfigError
from .execute import RunJob, RunResult, kill_tree, run_isolated

OnStart = Callable[[RunJob], None]


class Executor(Protocol):
    def map(self, jobs: Iterable[RunJob], on_start: OnStart) -> Iterator[RunResult]: ...


_REGISTRY: dict[str, Callable[..., Executor]] = {}


def register(name: str, factory: Callable[..., Executor]) -> None:
    """Make an executor available under ``name`` (``[site] executor = "<name>"``)."""
    _REGISTRY[name] = factory


def get_executor(name: str, *, jobs: int | None = None, scheduler: str | None = None) -> Executor:
    """Create the executor called ``name``; an unknown name lists the valid ones."""
    if name not in _REGISTRY:
        raise ConfigError([f"site.executor: unknown executor {name!r} (valid: {', '.join(sorted(_REGISTRY))})"])
    return _REGISTRY[name](jobs=jobs or os.cpu_count() or 1, scheduler=scheduler)


class LocalExecutor:
    """Runs on this machine, ``jobs`` at a time, each in its own child process."""

    def __init__(self, jobs: int, scheduler: str | None = None):
        self.jobs = jobs

    def _one(self, job: RunJob, on_start: OnStart) -> RunResult:
        on_start(job)
        return run_isolated(job)

    def map(self, jobs: Iterable[RunJob], on_start: OnStart) -> Iterator[RunResult]:
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


class DaskExecutor:
    """Runs on a Dask cluster: ``scheduler`` is its address, or None for a local cluster.

    Each run executes in a fresh interpreter on a worker (Dask's worker processes are daemonic
    and may not fork children), so a worker survives any notebook. Workers must have lab2land
    and the notebooks' kernels installed, and see the project folder at the same path.
    """

    def __init__(self, jobs: int, scheduler: str | None = None):
        self.jobs, self.scheduler = jobs, scheduler

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
        from dask.distributed import as_completed

        client, cluster = self._client()
        try:
            futures = []
            for job in jobs:
                on_start(job)
                futures.append(client.submit(run_isolated, job, mode="subprocess", pure=False,
                                             key=f"lab2land-{job.report}-{job.version_id}"))
            for future in as_completed(futures):
                yield future.result()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


register("local", LocalExecutor)
register("dask", DaskExecutor)
