"""Kernel plumbing for runs: a kernel manager whose client never sleeps through a message.

nbclient waits for a cell's reply with one long ``poll()`` on a zmq.asyncio socket. Under load
that poll can miss its wake-up (nbclient issue #312): the reply sits in the socket until the
cell's whole ``timeout`` expires, so a finished cell "takes" 600 s and a notebook without a
timeout hangs for ever. Polling in short slices re-checks the socket every second, so a missed
wake-up costs at most one slice.

The client is also ready sooner: jupyter_client's ``wait_for_ready`` ends with a flush of IOPub
that waits until 0.2 s pass without a message, and its kernel manager checks every 0.1 s whether a
kernel that was asked to shut down has exited: together about a third of a warm kernel's start
and stop. :meth:`SlicedKernelClient.wait_for_ready` waits instead for the message that ends the
kernel_info request on IOPub (which proves IOPub connected, as upstream's check does), and the
manager polls every 10 ms.

A run and its kernel also die with the publisher that started them (:func:`die_with`).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from queue import Empty

import psutil
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.manager import AsyncKernelManager
from traitlets import Type, default

from .kernel_ports import use_own_ports

SLICE_S = 1.0
INFO_REPLY_S = 1.0  # as jupyter_client: how long to wait for a kernel_info reply before asking again
IOPUB_CONNECT_S = 0.2  # as jupyter_client: no IOPub message this long after the reply: ask again
SHUTDOWN_POLL_S = 0.01
WATCH_S = 0.5  # how often a run checks that the process that started it is still alive


class SlicedChannel(AsyncZMQSocketChannel):
    """A channel whose ``get_msg(timeout)`` polls in slices of at most ``SLICE_S`` seconds."""

    async def get_msg(self, timeout: float | None = None):  # type: ignore[override]
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            step = SLICE_S if deadline is None else max(0.0, min(SLICE_S, deadline - time.monotonic()))
            try:
                return await super().get_msg(timeout=step)
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise


class SlicedKernelClient(AsyncKernelClient):
    shell_channel_class = Type(SlicedChannel)
    iopub_channel_class = Type(SlicedChannel)
    control_channel_class = Type(SlicedChannel)

    async def wait_for_ready(self, timeout: float | None = None) -> None:
        """Return once the kernel answered kernel_info and its IOPub messages reach us.

        As jupyter_client's: ask for kernel_info until a reply comes, and ask again when no IOPub
        message follows the reply within 0.2 s (IOPub not connected yet, its messages lost).
        Unlike it, done on the ``idle`` status that ends the request on IOPub (the kernel sends
        nothing more for it) instead of after 0.2 s without a message (still the rule for a
        kernel that sends no status). Raises RuntimeError if
        the kernel dies or ``timeout`` passes first, as jupyter_client does.
        """
        deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
        while True:
            request = self.kernel_info()
            with contextlib.suppress(TimeoutError):
                reply = await self._async_recv_reply(request, timeout=INFO_REPLY_S)
                if await self._iopub_reaches(request):
                    self._handle_kernel_info_reply(reply)
                    return
            if not await self._async_is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:.0f} seconds")

    async def _iopub_reaches(self, request: str) -> bool:
        """True once IOPub brings the ``idle`` status of ``request``, or falls silent for
        ``IOPUB_CONNECT_S`` after bringing something (a kernel that sends no status for it: what
        jupyter_client accepts); False if it brings nothing that long. The messages read are
        dropped, as jupyter_client's flush drops them."""
        seen = False
        while True:
            try:
                msg = await self.iopub_channel.get_msg(timeout=IOPUB_CONNECT_S)
            except Empty:
                return seen
            seen = True
            if (msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle"
                    and msg["parent_header"].get("msg_id") == request):
                return True


class RunKernelManager(AsyncKernelManager):
    """The kernel manager of every run (passed to papermill as ``kernel_manager_class``); its
    kernel binds its own ports (:mod:`lab2land.kernel_ports`)."""

    @default("client_factory")
    def _sliced_client(self):
        return SlicedKernelClient

    async def _async_pre_start_kernel(self, **kw):
        use_own_ports(self, kw)
        return await super()._async_pre_start_kernel(**kw)

    async def _async_finish_shutdown(self, waittime: float | None = None, pollinterval: float = 0.1,
                                     restart: bool = False) -> None:
        # jupyter_client checks whether the kernel has exited every 0.1 s: ~0.1 s of every run.
        await super()._async_finish_shutdown(waittime, min(pollinterval, SHUTDOWN_POLL_S), restart)


def _lives(process: psutil.Process | None) -> bool:
    try:  # is_running() also tells a reused pid apart; a zombie is dead, only not yet reaped
        return process is not None and process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def die_with(pid: int) -> None:
    """Stop this process, its kernel first, as soon as process ``pid`` (the publisher) is gone.

    A SIGKILLed publisher cleans nothing up, and a forked run's parent is the forkserver, which
    lives on while any run does: without this a run would go on for up to its ``run_timeout``,
    holding a kernel and writing to databases, for a build nobody waits for any more.
    """
    try:
        publisher: psutil.Process | None = psutil.Process(pid)
    except psutil.NoSuchProcess:
        publisher = None

    def watch() -> None:
        while _lives(publisher):
            time.sleep(WATCH_S)
        children = psutil.Process().children(recursive=True)
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        psutil.wait_procs(children, timeout=5)
        os._exit(1)

    threading.Thread(target=watch, name="lab2land-watchdog", daemon=True).start()
