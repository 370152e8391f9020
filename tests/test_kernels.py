"""The run kernel manager: its channels poll in slices, so a missed wake-up cannot stall a cell
until its timeout (nbclient #312), and real timeouts still hold."""

from __future__ import annotations

import time
from queue import Empty

import pytest

from conftest import run_in_own_loop
from lab2land.kernels import SLICE_S, RunKernelManager, SlicedChannel


def test_sliced_channels_honour_timeouts_and_deliver_replies():
    async def scenario():
        km = RunKernelManager(kernel_name="python3")
        await km.start_kernel()
        kc = km.client()
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=60)
            assert isinstance(kc.shell_channel, SlicedChannel) and isinstance(kc.iopub_channel, SlicedChannel)
            clock = time.monotonic()
            with pytest.raises(Empty):
                await kc.shell_channel.get_msg(timeout=SLICE_S * 2.5)
            waited = time.monotonic() - clock
            assert SLICE_S * 2.5 <= waited < SLICE_S * 2.5 + 1.5
            msg_id = kc.execute("import time; time.sleep(1.5); x = 41 + 1")
            reply = await kc.shell_channel.get_msg(timeout=30)  # arrives in a later slice
            assert reply["parent_header"]["msg_id"] == msg_id and reply["content"]["status"] == "ok"
        finally:
            kc.stop_channels()
            await km.shutdown_kernel(now=True)

    run_in_own_loop(scenario())
