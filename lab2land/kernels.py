"""Kernel plumbing for runs: a kernel manager whose client never sleeps through a message.

nbclient waits for a cell's reply with one long ``poll()`` on a zmq.asyncio socket. Under load
that poll can miss its wake-up (nbclient issue #312): the reply sits in the socket until the
cell's whole ``timeout`` expires, so a finished cell "takes" 600 s and a notebook without a
timeout hangs for ever. Polling in short slices re-checks the socket every second, so a missed
wake-up costs at most one slice.

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


class RunKernelManager(AsyncKernelManager):
    """The kernel manager of every run (passed to papermill as ``kernel_manager_class``); its
    kernel binds its own ports (:mod:`lab2land.kernel_ports`)."""

    @default("client_factory")
    def _sliced_client(self):
        return SlicedKernelClient

    async def _async_pre_start_kernel(self, **kw):
        use_own_ports(self, kw)
        return await super()._async_pre_start_kernel(**kw)


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
