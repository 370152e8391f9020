"""The kernel manager behind ``publish.py serve``: dashboard kernels follow their viewers.

* A kernel runs in the folder of its report's source notebook (Voila would use the private
  runtime folder of prepared notebooks).
* A kernel is never culled as idle while a page is loading with it, while a viewer is
  connected, or while it waits in a preheated pool; a page that finished loading has
  ``PAGE_GRACE_S`` for its browser to open the kernel websocket.
* A kernel whose last viewer's websocket closed is shut down ``CLOSE_GRACE_S`` later (unless
  the browser reconnected): a closed tab frees its kernel in seconds, not at the next cull.
* At most ``max_kernels`` live kernels: a viewer's start beyond it raises :class:`AtCapacity`
  (the handler answers "busy"), a pool refill waits for room.
* A report in ``kernel_preload`` gets kernels forked from a warm fork server that preloaded
  those modules (:mod:`lab2land.serve_warm`); the others start cold.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os

from jupyter_server._tz import utcnow
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from traitlets import Dict, Integer

log = logging.getLogger("lab2land.serve")

# How long a page that finished loading may take to open its kernel websocket before the idle
# culler may take the kernel (a page's scripts load slowly on a busy machine).
PAGE_GRACE_S = int(os.environ.get("LAB2LAND_PAGE_GRACE_SECONDS", "120"))
# How long a kernel outlives its last viewer's websocket: a browser reconnecting after a
# network blip finds it still there.
CLOSE_GRACE_S = float(os.environ.get("LAB2LAND_CLOSE_GRACE_SECONDS", "5"))
POOL_WAIT_S = 0.5  # how often a pool refill held back by max_kernels looks for room again

# The kernels started for the page being served in the current task (see page_kernels()).
_PAGE = contextvars.ContextVar("lab2land_page_kernels", default=None)
# What the fork server of the kernel being started in the current task preloads (None: cold).
# Set by start_kernel, which knows the report, for pre_start_kernel, which makes its manager.
_PRELOAD = contextvars.ContextVar("lab2land_kernel_preload", default=None)


class AtCapacity(Exception):
    """``max_kernels`` kernels are live: no kernel can be started for this viewer now."""


def page_kernels() -> list[str]:
    """Start collecting, for the calling task, the ids of kernels handed to its page.

    The dashboard handler calls this before Voila's page generator runs: the kernel Voila
    starts (or takes from its pool) for the page is appended to the returned list.
    """
    kernels: list[str] = []
    _PAGE.set(kernels)
    return kernels


class DashboardKernelManager(AsyncMappingKernelManager):
    """Jupyter's kernel manager with lab2land's folders, cull rules and cap (module docstring)."""

    kernel_dirs = Dict(config=True, help="Folder to run kernels in, by report name.")
    max_kernels = Integer(0, config=True, help="Live kernels at most (0: no limit).")
    kernel_preload = Dict(config=True, help="Modules a report's fork server preloads, by report (absent: cold).")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.viewed: set[str] = set()  # kernels a viewer's websocket has been connected to
        self.loading: dict[str, int] = {}  # kernel id -> pages streaming with it now
        self.loaded_at: dict = {}  # kernel id -> when its page finished (or the culler first saw it)
        self._starting = 0
        # Voila's preheating subclass defines get_rendered_notebook (handing a pooled kernel to
        # a page) below this class; wrap the bound method so the page learns its kernel id.
        voila_get = getattr(self, "get_rendered_notebook", None)
        if voila_get is not None:
            async def get_rendered_notebook(*args, **kw):
                render_task, cache, kernel_id = await voila_get(*args, **kw)
                _note_page_kernel(kernel_id)
                return render_task, cache, kernel_id
            self.get_rendered_notebook = get_rendered_notebook

    def live_kernels(self) -> int:
        """Kernels running or starting."""
        return len(self._kernels) + self._starting

    def busy_for(self, notebook: str) -> bool:
        """True if a page of ``notebook`` would have to wait for room: at ``max_kernels`` and no
        preheated kernel of it ready (a pool refill waiting for room would hold the page)."""
        if not self.max_kernels or self.live_kernels() < self.max_kernels:
            return False
        pool = getattr(self, "_pools", {}).get(notebook, [])
        return not any(t.done() and not t.cancelled() and t.exception() is None for t in pool)

    async def start_kernel(self, **kwargs):
        preheat = (kwargs.get("env") or {}).get("VOILA_PREHEAT") == "True"
        if self.max_kernels:
            if preheat:
                while self.live_kernels() >= self.max_kernels:
                    await asyncio.sleep(POOL_WAIT_S)
            elif self.live_kernels() >= self.max_kernels:
                raise AtCapacity(f"{self.live_kernels()} of at most {self.max_kernels} kernels are live")
        self._starting += 1
        preload = _PRELOAD.set(self.kernel_preload.get(_report(kwargs.get("path"))))
        try:
            kernel_id = await super().start_kernel(**kwargs)
        finally:
            _PRELOAD.reset(preload)
            self._starting -= 1
        if not preheat:  # pool refills run in tasks copied from a page's context: not that page's
            _note_page_kernel(kernel_id)
        return kernel_id

    def pre_start_kernel(self, kernel_name, kwargs):
        km, kernel_name, kernel_id = super().pre_start_kernel(kernel_name, kwargs)
        if hasattr(km, "fork_preload"):  # lab2land.serve_warm.ForkingKernelManager
            km.fork_preload = _PRELOAD.get()
        return km, kernel_name, kernel_id

    def page_started(self, kernel_id: str) -> None:
        self.loading[kernel_id] = self.loading.get(kernel_id, 0) + 1

    def page_finished(self, kernel_id: str) -> None:
        self.loading[kernel_id] = self.loading.get(kernel_id, 1) - 1
        if self.loading[kernel_id] <= 0:
            self.loading.pop(kernel_id, None)
        self.loaded_at[kernel_id] = utcnow()

    def notify_connect(self, kernel_id):
        super().notify_connect(kernel_id)
        self.viewed.add(kernel_id)

    def notify_disconnect(self, kernel_id):
        super().notify_disconnect(kernel_id)
        if kernel_id in self._kernels and self._kernel_connections.get(kernel_id, 0) <= 0:
            loop = asyncio.get_event_loop()
            loop.call_later(CLOSE_GRACE_S, lambda: asyncio.ensure_future(self._shutdown_if_left(kernel_id)))

    async def _shutdown_if_left(self, kernel_id: str) -> None:
        if (kernel_id in self._kernels and self._kernel_connections.get(kernel_id, 0) <= 0
                and not self.loading.get(kernel_id)):
            log.info("kernel %s: its viewer left, shutting it down", kernel_id)
            try:
                await self.shutdown_kernel(kernel_id)
            except Exception:  # already gone (culled, shut by the page's own request): fine
                log.debug("kernel %s was already shut down", kernel_id, exc_info=True)

    async def shutdown_kernel(self, kernel_id, *args, **kwargs):
        try:
            return await super().shutdown_kernel(kernel_id, *args, **kwargs)
        finally:
            self.viewed.discard(kernel_id)
            self.loading.pop(kernel_id, None)
            self.loaded_at.pop(kernel_id, None)

    async def cull_kernels(self):
        # The culler only knows "idle, no connection", which is also what a kernel looks like in
        # a preheated pool, while its page streams, and while the page's scripts load before its
        # websocket opens (a slow page on a busy machine: the viewer got "This dashboard
        # failed"). Restart the idle clock of those; a kernel that had a viewer is culled as
        # before once they leave (if the close-shutdown did not get it first).
        now = utcnow()
        pooled = set()
        for pool in getattr(self, "_pools", {}).values():
            for task in pool:
                if task.done() and not task.cancelled() and task.exception() is None:
                    pooled.add(task.result().get("kernel_id"))
        connected = self._kernel_connections
        for kernel_id, kernel in list(self._kernels.items()):
            if kernel_id in pooled or self.loading.get(kernel_id) or connected.get(kernel_id, 0) > 0:
                kernel.last_activity = now
            elif kernel_id not in self.viewed:
                since = self.loaded_at.setdefault(kernel_id, now)
                if (now - since).total_seconds() < PAGE_GRACE_S:
                    kernel.last_activity = now
        await super().cull_kernels()

    def cwd_for_path(self, path, **kwargs):
        report = _report(path)
        if report in self.kernel_dirs:
            return self.kernel_dirs[report]
        return super().cwd_for_path(path, **kwargs)


def _report(path) -> str:
    """The report a kernel's Voila path (``<report>`` or ``<report>/<notebook>``) belongs to."""
    return str(path or "").replace(os.sep, "/").strip("/").split("/", 1)[0]


def _note_page_kernel(kernel_id: str) -> None:
    kernels = _PAGE.get()
    if kernels is not None:
        kernels.append(kernel_id)
