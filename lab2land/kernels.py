"""Kernel plumbing for runs: a kernel manager whose client never sleeps through a message.

nbclient waits for a cell's reply with one long ``poll()`` on a zmq.asyncio socket. Under load
that poll can miss its wake-up (nbclient issue #312): the reply sits in the socket until the
cell's whole ``timeout`` expires, so a finished cell "takes" 600 s and a notebook without a
timeout hangs for ever. Polling in short slices re-checks the socket every second, so a missed
wake-up costs at most one slice.
"""

from __future__ import annotations

import time
from queue import Empty

from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.manager import AsyncKernelManager
from traitlets import Type, default

SLICE_S = 1.0


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
    """The kernel manager of every run (passed to papermill as ``kernel_manager_class``)."""

    @default("client_factory")
    def _sliced_client(self):
        return SlicedKernelClient
