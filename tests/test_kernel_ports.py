"""A kernel binds its own ports, so no other process can take one between pick and bind.

Found by the 20-viewer load test and the unsafe-paint test in CI, where pages never finished:
jupyter_client picks a kernel's ports by binding and closing sockets, writes them into the
connection file, and the kernel binds them a moment (cold: seconds) later. Any process's
outgoing connection may get one of those ports as its source port meanwhile; the kernel then
dies on ``Address already in use``, and the restarter's "new random ports" restarts reuse the
same cached ports. Here a real socket takes a picked port in that window, for every kind of
kernel lab2land starts (a build's run, cold or forked; a dashboard's, cold or forked): the kernel
must come up on ports of its own, and the manager must know them.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from conftest import run_in_own_loop
from lab2land.forked import WarmKernelManager, server_for, stop_servers
from lab2land.kernels import RunKernelManager
from lab2land.serve_warm import ForkingKernelManager

PORTS = ("shell_port", "iopub_port", "stdin_port", "hb_port", "control_port")


def _managers() -> dict[str, type]:
    class RunCold(RunKernelManager):
        pass

    class RunForked(WarmKernelManager):
        pass

    class DashboardCold(ForkingKernelManager):
        pass

    class DashboardForked(ForkingKernelManager):
        fork_preload = ["json"]

    return {
        "run-cold": RunCold,
        "run-forked": RunForked,
        "dashboard-cold": DashboardCold,
        "dashboard-forked": DashboardForked,
    }


def _squatting(base: type, squatters: list[socket.socket], taken: list[int]) -> type:
    """``base`` whose kernel finds its picked shell port taken when it starts."""

    class Squatted(base):
        async def _async_launch_kernel(self, kernel_cmd, **kw):
            squatter = socket.socket()
            squatter.bind((self.ip, self.shell_port))  # the port written in its connection file
            squatter.listen()
            squatters.append(squatter)
            taken.append(self.shell_port)
            return await super()._async_launch_kernel(kernel_cmd, **kw)

    return Squatted


async def _square(km) -> tuple[str, str]:
    """Run ``print(7 * 7)`` in the kernel; its reply status and what it printed."""
    client = km.client()
    client.start_channels()
    printed: list[str] = []

    def output(msg: dict) -> None:
        if msg["msg_type"] == "stream":
            printed.append(msg["content"]["text"])

    try:
        await client.wait_for_ready(timeout=60)
        reply = await client.execute_interactive("print(7 * 7)", timeout=30, output_hook=output)
    finally:
        client.stop_channels()
    return reply["content"]["status"], "".join(printed)


@pytest.fixture
def fork_server_path():
    path, why_not = server_for("python3", ["json"])
    assert path, why_not
    yield path
    stop_servers()


@pytest.mark.parametrize("kind", ["run-cold", "run-forked", "dashboard-cold", "dashboard-forked"])
def test_a_kernel_whose_picked_port_was_taken_comes_up_on_ports_of_its_own(kind, fork_server_path):
    squatters: list[socket.socket] = []
    taken: list[int] = []
    manager = _squatting(_managers()[kind], squatters, taken)
    if kind == "run-forked":
        manager.fork_server = fork_server_path

    async def scenario():
        km = manager(kernel_name="python3")
        await km.start_kernel()
        try:
            reply = await _square(km)
            ports = {name: getattr(km, name) for name in PORTS}
            on_file = json.loads(Path(km.connection_file).read_text())
            return reply, ports, on_file, getattr(km, "forked", None), km.provisioner
        finally:
            await km.shutdown_kernel(now=True)

    try:
        reply, ports, on_file, forked, provisioner = run_in_own_loop(scenario(), timeout=180)
    finally:
        for squatter in squatters:
            squatter.close()
    assert reply == ("ok", "49\n")
    assert ports["shell_port"] != taken[0]
    assert all(ports.values()), ports
    assert {name: on_file[name] for name in PORTS} == ports  # what the kernel bound is what clients use
    if kind.startswith("dashboard"):
        assert forked is (kind == "dashboard-forked")
    if kind == "run-forked":
        assert provisioner.warm


@pytest.mark.parametrize("kind", ["run-cold", "dashboard-forked"])
def test_a_restarted_kernel_keeps_its_ports_for_connected_clients(kind, fork_server_path):
    """Voila's client stays connected across a restart (a kernel dying mid-notebook): the
    restarted kernel binds the ports it had, as jupyter_client's own restarts do."""
    manager = _managers()[kind]

    async def scenario():
        km = manager(kernel_name="python3")
        await km.start_kernel()
        try:
            before = {name: getattr(km, name) for name in PORTS}
            await km.restart_kernel(now=True)
            reply = await _square(km)
            return before, {name: getattr(km, name) for name in PORTS}, reply
        finally:
            await km.shutdown_kernel(now=True)

    before, after, reply = run_in_own_loop(scenario(), timeout=180)
    assert before == after
    assert reply == ("ok", "49\n")
