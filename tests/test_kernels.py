"""The run kernel manager: its channels poll in slices, so a missed wake-up cannot stall a cell
until its timeout (nbclient #312), and real timeouts still hold."""

from __future__ import annotations

import time
from queue import Empty

import psutil
import pytest

from conftest import run_in_own_loop
from lab2land.kernels import SLICE_S, RunKernelManager, SlicedChannel
from lab2land.serve_warm import ForkingKernelManager


@pytest.mark.parametrize("manager", [RunKernelManager, ForkingKernelManager], ids=["run", "dashboard"])
def test_sliced_channels_honour_timeouts_and_deliver_replies(manager):
    # Builds' runs and Voila's dashboard cells both wait for replies through these channels.
    async def scenario():
        km = manager(kernel_name="python3")
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


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
def test_a_ready_client_has_no_stale_iopub_and_a_kernel_shuts_down_on_request(warm):
    """The client's own ready-wait (done on the kernel_info request's idle status, not after
    0.2 s of silence) leaves nothing on IOPub for the first cell, as jupyter_client's flush does;
    the manager's 10 ms exit check still sees a graceful exit (no SIGTERM, no SIGKILL)."""
    from lab2land import forked

    manager = RunKernelManager
    if warm:
        path, why_not = forked.server_for("python3", ["json"])
        assert path, why_not
        manager = forked.warm_manager(path)

    async def scenario():
        km = manager(kernel_name="python3")
        await km.start_kernel()
        kc = km.client()
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=60)
            with pytest.raises(Empty):
                await kc.iopub_channel.get_msg(timeout=0.5)
            reply = await kc.execute_interactive("print(6 * 7)", timeout=30)
            assert reply["content"]["status"] == "ok"
            pid = km.provisioner.pid
        finally:
            kc.stop_channels()
            await km.shutdown_kernel()
        return pid, km._shutdown_status.name

    try:
        pid, how = run_in_own_loop(scenario())
    finally:
        forked.stop_servers()
    assert how == "ShutdownRequest"
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
