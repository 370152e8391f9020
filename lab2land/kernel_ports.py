"""Kernels that bind their own ports: no other process can take one between pick and bind.

jupyter_client picks a kernel's five ports by binding sockets to port 0 and closing them, writes
them into the connection file, and the kernel binds them when it gets there (a forked kernel a
few tenths of a second later, a cold one seconds later). In that window any process's outgoing
connection can be given one of those ports as its source port (the ephemeral range is the same);
the kernel then dies on ``Address already in use`` and its restarts, asked for "new random ports",
get the same ones again (jupyter_client's port cache keeps them across restarts), so a page that
waits for the kernel never finishes. Seen in CI under 20 concurrent viewers.

ipykernel has the way out built in: a port given as 0 in the connection file is bound to a free
port atomically (zmq's ``bind_to_random_port``), and the kernel writes the ports it bound back
into the file. So on a kernel's first start, before anything could connect to it, lab2land
writes its connection file with ports 0, waits until the kernel has written its own, and gives
those to the kernel manager (the provisioner's launch returns them, as the provisioner API
intends). A kernel that dies before binding keeps this for its next start: nothing connected to
it yet. A kernel that came up keeps its ports on restarts, as jupyter_client's own restarts do,
because a client may still be connected to them (Voila's, when a kernel dies mid-notebook).

Only for ipykernel over TCP; any other kernel gets jupyter_client's own behaviour.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from jupyter_client.connect import LocalPortCache
from jupyter_client.provisioning.local_provisioner import LocalProvisioner
from jupyter_core.paths import secure_write

PORT_NAMES = ("shell_port", "iopub_port", "stdin_port", "hb_port", "control_port")
BIND_TIMEOUT_S = 120.0  # a cold kernel on a loaded machine can take tens of seconds to get there
POLL_S = 0.02


def is_ipykernel_cmd(argv: list[str]) -> bool:
    """True for ``python -m ipykernel_launcher ...`` (and ``-m ipykernel``)."""
    return len(argv) >= 3 and argv[1] == "-m" and argv[2] in ("ipykernel_launcher", "ipykernel")


class OwnPortsProvisioner(LocalProvisioner):
    """A local provisioner whose ipykernel kernels bind their own ports on their first start.

    Subclasses that start the kernel process another way override :meth:`start_process`.
    """

    # True until a start of this kernel has reported the ports it bound
    ports_unbound: bool = True
    _own_ports: bool = False  # this start: the kernel binds ports of its own choosing

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        kwargs = await super().pre_launch(**kwargs)
        km = self.parent
        self._own_ports = bool(
            self.ports_unbound and km is not None and km.transport == "tcp" and is_ipykernel_cmd(kwargs["cmd"])
        )
        if self._own_ports:
            picked = [getattr(km, name) for name in PORT_NAMES]
            info = json.loads(Path(km.connection_file).read_text(encoding="utf-8"))
            _write(km.connection_file, {**info, **dict.fromkeys(PORT_NAMES, 0)})
            if self.ports_cached:  # the picks go back: no kernel will bind them
                for port in picked:
                    LocalPortCache.instance().return_port(port)
        return kwargs

    async def start_process(self, cmd: list[str], **kwargs: Any) -> None:
        """Start the kernel's process (``self.process``, ``pid``, ``pgid``, ``cwd``)."""
        await LocalProvisioner.launch_kernel(self, cmd, **kwargs)

    async def launch_kernel(self, cmd: list[str], **kwargs: Any):
        await self.start_process(cmd, **kwargs)
        if self._own_ports:
            await self._take_bound_ports()
        return self.connection_info

    async def _take_bound_ports(self) -> None:
        """Wait until the kernel wrote the ports it bound into its connection file; give them to
        the kernel manager. A kernel that dies first leaves them unset (the manager sees it dead)."""
        km = self.parent
        deadline = time.monotonic() + BIND_TIMEOUT_S
        while True:
            ports = _bound_ports(km.connection_file)
            if ports:
                for name, port in ports.items():
                    setattr(km, name, port)
                self.connection_info = km.get_connection_info()
                self.ports_unbound = False
                return
            if self.process is None or self.process.poll() is not None:
                return
            if time.monotonic() > deadline:
                await self.kill()
                raise RuntimeError(
                    f"kernel {self.kernel_id} did not bind its ports within "
                    f"{BIND_TIMEOUT_S:.0f} s (connection file {km.connection_file})"
                )
            await asyncio.sleep(POLL_S)


def _bound_ports(path: str) -> dict[str, int] | None:
    """The ports in the connection file at ``path`` once the kernel wrote them all, else None."""
    with contextlib.suppress(OSError, ValueError):  # not there or half written: not yet
        info = json.loads(Path(path).read_text(encoding="utf-8"))
        ports = {name: info.get(name) for name in PORT_NAMES}
        if all(isinstance(port, int) and port > 0 for port in ports.values()):
            return ports
    return None


def _write(path: str, info: dict) -> None:
    """Replace the connection file at ``path`` (readable by its owner only, as jupyter_client
    writes it)."""
    temporary = f"{path}.{os.getpid()}.tmp"
    with secure_write(temporary) as fh:
        json.dump(info, fh, indent=2)
    os.replace(temporary, path)


def use_own_ports(
    km, kw: dict, provisioner_class: type[OwnPortsProvisioner] = OwnPortsProvisioner, **attributes: Any
) -> None:
    """Give kernel manager ``km`` a ``provisioner_class`` before its first start, as
    ``KernelManager._async_pre_start_kernel`` would give it the configured one (call it there,
    before the base class). A kernel spec that names a provisioner of its own keeps it."""
    if km.provisioner is not None:  # a restart: the same provisioner again
        return
    if provisioner_class is OwnPortsProvisioner and (km.kernel_spec.metadata or {}).get("kernel_provisioner"):
        return
    km.kernel_id = km.kernel_id or kw.pop("kernel_id", None) or str(uuid.uuid4())
    provisioner = provisioner_class(kernel_id=km.kernel_id, kernel_spec=km.kernel_spec, parent=km)
    for name, value in attributes.items():
        setattr(provisioner, name, value)
    km.provisioner = provisioner
