"""Warm dashboard kernels: ``serve`` forks each dashboard's kernel from a warm fork server.

The fork server is the one builds use (:mod:`lab2land.warm`, started by
:func:`lab2land.forked.server_for`): a separate process that imported ipykernel and the
dashboard notebook's imports without starting a thread, an event loop or a zmq context, and
forks one child per kernel; the child becomes an ordinary ipykernel kernel with the connection
file, working folder (the report's notebook folder) and environment jupyter_server chose for it.
The Voila server process itself never forks: it runs threads and an event loop.

A forked kernel is its own process, with its own pid (the one jupyter_server signals and waits
for); it shares the pages of the preloaded modules with its server and its siblings until it
writes to them, which is what makes ten open dashboards cheap. Each dashboard's server preloads
that dashboard's imports only (dashboards with the same imports share one server), so a light
dashboard's kernel does not carry a heavy one's modules.

Where a build's runs would start cold, dashboard kernels start cold too, and the server log says
why in one line (``note: cold ...``): ``[site] warm_kernels = false``, a platform that cannot fork safely, or a kernel
that is not this environment's ipykernel. A fork server that fails to start, or dies, costs the
kernels that asked for it a cold start, never a failure. The servers die with ``serve``, however
it ends (they watch their stdin), and their kernels with them.
"""

from __future__ import annotations

import asyncio
import sys
import threading

from jupyter_server.services.kernels.kernelmanager import ServerKernelManager
from traitlets import default

from lab2land import dashboards as dash
from lab2land.config import Config
from lab2land.forked import ForkProvisioner, kernel_problem, platform_problem, preload_for, server_for
from lab2land.kernel_ports import OwnPortsProvisioner, use_own_ports
from lab2land.kernels import SlicedKernelClient

_COLD_NOTED: set[str] = set()  # reasons already noted for a cold start at run time


def _note(text: str) -> None:
    """One line on stderr, as a build notes its cold kernels."""
    print(f"note: {text}", file=sys.stderr, flush=True)


def plan(config: Config, dashboards: dict[str, dash.Dashboard]) -> dict[str, list[str]]:
    """The modules each dashboard's fork server preloads, by report; reports left out get cold
    kernels, and a line on stderr says why, once per reason."""
    if not dashboards:
        return {}
    if not config.site.warm_kernels:
        _note("cold dashboard kernels: [site] warm_kernels = false")
        return {}
    problem = platform_problem()
    if problem:
        _note(f"cold dashboard kernels: {problem}")
        return {}
    preloads, cold = {}, {}
    for name, dashboard in dashboards.items():
        problem = kernel_problem(dashboard.kernel) if dashboard.kernel else "the report names no kernel"
        if problem:
            cold.setdefault(problem, []).append(name)
            continue
        preloads[name] = preload_for([dashboard.notebook], config.site.preload)
    for problem, names in cold.items():
        _note(f"cold kernels for dashboard(s) {', '.join(sorted(names))}: {problem}")
    return preloads


def start_servers(dashboards: dict[str, dash.Dashboard], preloads: dict[str, list[str]]) -> None:
    """Start the planned fork servers in the background: their imports overlap Voila's start,
    and the first kernel of each waits for its server instead of starting cold."""
    wanted = {(dashboards[name].kernel, tuple(preload)) for name, preload in preloads.items()}
    for kernel, preload in sorted(wanted):
        threading.Thread(target=server_for, args=(kernel, list(preload)), daemon=True,
                         name="lab2land-warm-up").start()


class DashboardForkProvisioner(ForkProvisioner):
    """Forks the kernel from the fork server for ``kernel`` and ``preload``, waiting for it to
    be warm; a server that cannot start gives a cold kernel."""

    kernel: str = ""
    preload: list[str] = []  # noqa: RUF012 - set per instance before launch

    async def start_process(self, cmd: list[str], **kwargs) -> None:
        loop = asyncio.get_running_loop()
        path, why_not = await loop.run_in_executor(None, server_for, self.kernel, list(self.preload))
        if path is None:
            if why_not not in _COLD_NOTED:
                _COLD_NOTED.add(why_not)
                _note(f"cold dashboard kernels for kernel {self.kernel!r}: {why_not}")
            await OwnPortsProvisioner.start_process(self, cmd, **kwargs)
            return
        self.server_path = path
        await super().start_process(cmd, **kwargs)


class ForkingKernelManager(ServerKernelManager):
    """jupyter_server's kernel manager, whose kernel is forked when ``fork_preload`` is set
    (by :class:`lab2land.serve_kernels.DashboardKernelManager`, from :func:`plan`)."""

    fork_preload: list[str] | None = None

    @default("client_factory")
    def _sliced_client(self):
        # Voila runs a dashboard's cells through this client: polled in slices as a build's
        # runs are (lab2land.kernels), so a missed wake-up (nbclient #312) costs a page at most
        # a second, not its cells' whole timeout.
        return SlicedKernelClient

    async def _async_pre_start_kernel(self, **kw):
        if self.fork_preload is not None:
            use_own_ports(self, kw, DashboardForkProvisioner, kernel=self.kernel_name,
                          preload=list(self.fork_preload))
        else:  # a cold kernel, which binds its own ports all the same
            use_own_ports(self, kw)
        return await super()._async_pre_start_kernel(**kw)

    @property
    def forked(self) -> bool:
        """True if this kernel is a fork server's child (not a cold ``Popen``)."""
        return bool(getattr(self.provisioner, "warm", False))
