"""Warm kernels for runs: which runs may fork from a warm parent, the fork servers, and the
kernel manager that gets its kernel from one. A second kind of server forks the runs' own
processes where multiprocessing may not (daemonic Dask workers; see :mod:`lab2land.isolate`).

A run's kernel manager writes the connection file and builds the launch command exactly as
jupyter_client does; only the launch differs: instead of ``Popen`` it asks the fork server of
:mod:`lab2land.warm` for a child, which becomes an ordinary ipykernel kernel. papermill and
nbclient talk to it as to any kernel. Where forking is not safe or possible the run gets a cold
kernel, as before, and the build says why in one line.
"""

from __future__ import annotations

import ast
import asyncio
import atexit
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .kernel_ports import OwnPortsProvisioner, is_ipykernel_cmd, use_own_ports
from .kernels import RunKernelManager

START_TIMEOUT_S = 180  # imports on a busy 2-core machine
# Modules that start threads or event loops when imported (a fork after them is unsafe) or hold
# process-wide resources: the kernel imports them itself.
NEVER_PRELOAD = frozenset({"__future__", "distributed", "dask.distributed", "ray", "pyspark", "torch",
                           "tensorflow", "jax", "multiprocessing", "concurrent.futures", "asyncio",
                           "threading", "IPython", "ipywidgets"})


@dataclass
class WarmSettings:
    """``[site] warm_kernels`` and ``[site] preload``, as the executor needs them."""

    enabled: bool = True
    preload: list[str] = field(default_factory=list)


# --- which runs, and what to preload ------------------------------------------------------------

def platform_problem() -> str | None:
    """Why this platform cannot fork kernels, or None."""
    if os.name != "posix" or not hasattr(os, "fork"):
        return f"this platform ({sys.platform}) cannot fork"
    if sys.platform == "darwin":
        return "forking is unsafe on macOS (system frameworks are not fork-safe)"
    if not hasattr(socket, "send_fds"):
        return "this Python cannot pass file descriptors over sockets"
    return None


def kernel_problem(kernel: str) -> str | None:
    """Why kernel ``kernel`` cannot be forked from a parent in this environment, or None."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(kernel)
    except NoSuchKernel:
        return f"kernel {kernel!r} is not installed"
    if spec.language.lower() != "python":
        return f"kernel {kernel!r} is a {spec.language} kernel, not Python"
    argv = spec.argv
    if not is_ipykernel_cmd(argv):
        return f"kernel {kernel!r} does not start with `python -m ipykernel_launcher` ({' '.join(argv[:3])})"
    if not same_python(argv[0]):
        return f"kernel {kernel!r} runs {argv[0]}, not this environment's Python ({sys.executable})"
    if any(name.startswith("PYTHON") for name in spec.env):
        return f"kernel {kernel!r} sets {', '.join(n for n in spec.env if n.startswith('PYTHON'))} for its interpreter"
    return None


def same_python(executable: str) -> bool:
    # jupyter_client runs "python", "python3" and "python3.X" as sys.executable.
    if executable in ("python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])):
        return True
    with contextlib.suppress(OSError):
        return os.path.samefile(executable, sys.executable)
    return False


def _magic_free(source: str) -> str:
    """A code cell without IPython syntax (magics, shell escapes), so ``ast`` can read it."""
    if source.lstrip().startswith("%%"):
        return ""
    return "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!", "?")))


def notebook_imports(path: Path) -> set[str]:
    """Absolute module names the notebook's code cells import (``from a.b import c`` gives
    ``a.b`` and ``a.b.c``, which may be a submodule). Cells that do not parse are skipped."""
    import nbformat

    found: set[str] = set()
    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(_magic_free(cell.source))
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names if alias.name != "*")
    return found


def _local(name: str, folders: set[Path]) -> bool:
    """A module the notebook's folder provides: the server does not see that folder, so it must
    not import an installed module of the same name in its place."""
    top = name.split(".")[0]
    return any((f / f"{top}.py").exists() or (f / top).is_dir() for f in folders)


def preload_for(notebooks: list[Path], extra: list[str]) -> list[str]:
    """What a fork server for these notebooks imports: their imports and ``extra``, minus local
    modules and modules that are unsafe before a fork."""
    folders = {nb.parent for nb in notebooks}
    names = set(extra)
    for nb in notebooks:
        names |= notebook_imports(nb)
    keep = [n for n in names if n not in NEVER_PRELOAD and n.split(".")[0] not in NEVER_PRELOAD
            and not _local(n, folders)]
    return sorted(keep)


# --- fork servers ---------------------------------------------------------------------------------

class Server:
    """One running fork server (``python -m lab2land.warm``), owned by this process; ``role`` is
    what it forks: ``"kernels"`` or ``"runs"``."""

    def __init__(self, preload: list[str], role: str = "kernels"):
        self.role = role
        self.folder = tempfile.mkdtemp(prefix="lab2land-warm-")  # mode 0700: only we may connect
        self.path = os.path.join(self.folder, "fork.sock")
        self.log = os.path.join(self.folder, "server.log")
        self.preload = list(preload)
        self.proc: subprocess.Popen | None = None
        self.info: dict = {}

    def start(self) -> str | None:
        """Start it and wait until it is warm; return why it failed, or None."""
        with open(self.log, "ab") as log:
            # Its stdin is how it knows we are alive (EOF when we exit, however we exit); its own
            # session keeps a terminal's Ctrl-C for the publisher, which then stops it.
            # Started in its own empty folder, which -m puts first on sys.path: nothing in the
            # publisher's folder can shadow a module the server imports (see lab2land.warm.main).
            os.mkdir(os.path.join(self.folder, "cwd"))
            env = {k: v for k, v in os.environ.items() if k != "PYTHONSAFEPATH"}
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "lab2land.warm", self.path, json.dumps(self.preload), self.role],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, start_new_session=True,
                cwd=os.path.join(self.folder, "cwd"), env=env)
        line = _read_line(self.proc.stdout, START_TIMEOUT_S)
        try:
            self.info = json.loads(line) if line else {"ok": False, "reason": "it exited while starting"}
        except ValueError:
            self.info = {"ok": False, "reason": f"unexpected output {line[:80]!r}"}
        if not self.info.get("ok"):
            self.stop()
            return self.info.get("reason") or "unknown failure"
        return None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """Stop it: it kills the kernels it still has."""
        if self.proc is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc.stdout.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        with contextlib.suppress(OSError):
            os.unlink(self.log)
        for folder in (os.path.join(self.folder, "cwd"), self.folder):
            with contextlib.suppress(OSError):
                os.rmdir(folder)


def _read_line(stream, timeout: float) -> str:
    result: list[bytes] = []
    reader = threading.Thread(target=lambda: result.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return result[0].decode("utf-8", "replace").strip() if result else ""


_SERVERS: dict[tuple, Server | str] = {}
_SERVERS_LOCK = threading.Lock()


def server_for(kernel: str, preload: list[str]) -> tuple[str | None, str | None]:
    """The socket of this process's fork server for ``kernel`` and ``preload`` (started on first
    use), or None and why not. A server that cannot start is not tried again."""
    problem = platform_problem() or kernel_problem(kernel)
    if problem:
        return None, problem
    def start() -> tuple[Server, str | None]:
        server = Server(preload)
        failure = server.start()
        if failure and failure.startswith("RuntimeError: importing "):  # a module started a thread
            bad = failure.split("'")[1]
            server = Server([p for p in preload if p != bad and not p.startswith(bad + ".")])
            failure = server.start()
        return server, failure

    return _running((kernel, sys.executable, tuple(preload)), start, "the fork server")


def _running(key: tuple, start: Callable[[], tuple[Server, str | None]], what: str) -> tuple[str | None, str | None]:
    """The socket of the server cached under ``key``, started by ``start`` (which returns it and
    why it failed, or None) if there is none or it died; or None and why not."""
    with _SERVERS_LOCK:
        server = _SERVERS.get(key)
        if isinstance(server, Server) and not server.alive:
            server.stop()
            server = None
        if server is None:
            server, failure = start()
            _SERVERS[key] = f"{what} did not start: {failure}" if failure else server
            server = _SERVERS[key]
    return (server.path, None) if isinstance(server, Server) else (None, server)


# What a run process imports before it runs papermill (lab2land.isolate: execute, forked, kernels);
# lab2land.lean first, before anything imports nbformat.
RUN_PRELOAD = ["lab2land.lean", "lab2land.isolate", "papermill", "papermill.engines", "nbclient.client",
               "jupyter_client.manager", "jupyter_client.asynchronous.client", "nbclient.exceptions",
               "papermill.exceptions"]


def run_server() -> tuple[str | None, str | None]:
    """The socket of this process's fork server for run processes (started on first use), or
    None and why not."""
    problem = platform_problem()
    if problem:
        return None, problem
    def start() -> tuple[Server, str | None]:
        server = Server(RUN_PRELOAD, role="runs")
        return server, server.start()

    return _running(("runs", sys.executable), start, "the run fork server")


def stop_servers() -> None:
    """Stop every fork server this process started (their kernels die with them)."""
    with _SERVERS_LOCK:
        for server in _SERVERS.values():
            if isinstance(server, Server):
                server.stop()
        _SERVERS.clear()


atexit.register(stop_servers)


# --- the kernel manager side --------------------------------------------------------------------

def request_kernel(path: str, cmd: list[str], env: dict[str, str], cwd: str) -> int:
    """Ask the fork server at ``path`` for a kernel running ``cmd``; return its pid. Its stdout
    and stderr are this process's (the run's log)."""
    request = {"launcher": cmd[2], "args": cmd[3:], "env": env, "cwd": cwd}
    return ask_server(path, request, [1, 2])


def ask_server(path: str, request: dict, fds: list[int]) -> int:
    """Send ``request`` and the descriptors ``fds`` to the fork server at ``path``; return the pid
    of the child it forked. The child dies with this process (the server kills it when we are gone)."""
    request = {**request, "requester": os.getpid()}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(30)
        conn.connect(path)
        socket.send_fds(conn, [json.dumps(request).encode()], fds)
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = conn.recv(4096)
            if not chunk:
                raise ConnectionError("the fork server closed the connection without forking")
            reply += chunk
    return int(json.loads(reply)["pid"])


class ForkedProcess:
    """The part of ``Popen`` a provisioner uses, for a kernel that is the fork server's child."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            from .warm import _alive

            if not _alive(self.pid):
                self.returncode = -signal.SIGKILL  # the server reaps it and knows more; nobody asks
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout)
            time.sleep(0.02)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class ForkProvisioner(OwnPortsProvisioner):
    """Starts the kernel by asking a fork server; falls back to ``Popen`` if it cannot. Either
    way the kernel binds its own ports on its first start (:mod:`lab2land.kernel_ports`)."""

    server_path: str = ""
    warm: bool = False

    async def start_process(self, cmd: list[str], **kwargs) -> None:
        env = dict(kwargs.get("env") or os.environ)
        env["JPY_PARENT_PID"] = str(os.getpid())  # as jupyter_client's launcher sets it
        cwd = str(kwargs.get("cwd") or os.getcwd())
        try:
            if not is_ipykernel_cmd(cmd):
                raise ValueError(f"not an ipykernel command: {cmd[:3]}")
            pid = await asyncio.get_running_loop().run_in_executor(
                None, request_kernel, self.server_path, cmd, env, cwd)
        except (OSError, ValueError) as exc:  # the server is gone: this run gets a cold kernel
            print(f"lab2land: no warm kernel ({type(exc).__name__}: {exc}); starting a cold one",
                  file=sys.stderr, flush=True)
            await super().start_process(cmd, **kwargs)
            return
        self.warm = True
        self.process = ForkedProcess(pid)
        self.pid = self.pgid = pid  # the child called setsid(): its pid is its group
        self.cwd = cwd


class WarmKernelManager(RunKernelManager):
    """A run's kernel manager whose kernel is forked by the server at ``fork_server``."""

    fork_server: str = ""

    async def _async_pre_start_kernel(self, **kw):
        use_own_ports(self, kw, ForkProvisioner, server_path=self.fork_server)
        return await super()._async_pre_start_kernel(**kw)


def warm_manager(path: str) -> type[WarmKernelManager]:
    """A kernel manager class (papermill takes a class) bound to the fork server at ``path``."""
    return type("BoundWarmKernelManager", (WarmKernelManager,), {"fork_server": path})
