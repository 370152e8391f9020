"""The Dask worker plugin that gives each worker warm run processes and kernels of its own.

On :meth:`WarmKernels.setup` (when the build registers it, on every worker, and on workers that
join later) the worker starts, in the background, its run fork server
(:func:`lab2land.forked.run_server`) and a kernel fork server per planned kernel and preload
(:func:`lab2land.forked.server_for`), so their imports overlap the cluster's start and the
submission of the runs instead of delaying the first run on each worker. A run that arrives
before they are warm waits for them. The plugin stops them when the worker closes; a worker
that is killed takes them down anyway (a server exits when its parent's pipe closes, and its
children die with it).
"""

from __future__ import annotations

import threading

from distributed.diagnostics.plugin import WorkerPlugin


class WarmKernels(WorkerPlugin):
    """Starts the worker's fork servers when it is registered; stops them when the worker closes.

    Args:
        servers: ``(kernel, preload)`` of each kernel fork server the runs will want.
    """

    name = "lab2land-warm-kernels"

    def __init__(self, servers: list[tuple[str, tuple[str, ...]]] = ()):
        self.servers = [(kernel, list(preload)) for kernel, preload in servers]

    def setup(self, worker) -> None:
        threading.Thread(target=self._start, daemon=True, name="lab2land-warm-up").start()

    def _start(self) -> None:
        from .forked import run_server, server_for

        run_server()
        for kernel, preload in self.servers:
            server_for(kernel, preload)

    def teardown(self, worker) -> None:
        from .forked import stop_servers

        stop_servers()
