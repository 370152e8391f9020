"""The Dask worker plugin that gives each worker warm kernels of its own.

Each worker process keeps its own kernel fork servers (:func:`lab2land.forked.server_for`,
started by the first run that needs one), so a run on Dask forks its kernel as a local run does
instead of starting a fresh interpreter. The plugin stops them when the worker closes; a worker
that is killed takes them down anyway (a server exits when its parent's pipe closes, and its
kernels die with it).
"""

from __future__ import annotations

from distributed.diagnostics.plugin import WorkerPlugin


class WarmKernels(WorkerPlugin):
    """Stops the worker's fork servers when the worker closes."""

    name = "lab2land-warm-kernels"

    def teardown(self, worker) -> None:
        from .forked import stop_servers

        stop_servers()
