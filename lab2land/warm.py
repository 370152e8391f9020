"""The kernel fork server: a warm parent that forks a fresh ipykernel kernel for every run.

``python -m lab2land.warm SOCKET PRELOAD_JSON [kernels|runs]`` imports ipykernel and the modules
the planned notebooks import, warms what is safe to warm (plotly's first figure), then forks one child per
request on the Unix socket ``SOCKET``. Each child becomes an ordinary ipykernel kernel: its own
session and process group, the connection file (hence ports) the run's kernel manager wrote, the
run's working directory, environment and argv, and its stdout/stderr are the run's log (passed
over the socket as file descriptors).

The same server in the ``runs`` role forks run processes instead (lab2land.isolate, where a Dask
worker may not start multiprocessing children): it preloads papermill and lab2land's run code
instead of ipykernel, and each child runs one job, as ``python -m lab2land.isolate`` would, in
the requester's working directory and environment; the requester holds a pipe whose other end
only the child keeps open, so it sees the child end as a parent sees its own child end.

Forking is only safe from a process that never started an event loop, a zmq context or a Python
thread (ipykernel PRs #410/#1261 stalled on exactly that): the server checks this after its
imports and refuses to serve otherwise. Native BLAS worker threads (numpy's OpenBLAS starts some
at import) are shut down by OpenBLAS's own ``pthread_atfork`` handler before each fork.

The server lives as long as the process that started it: when that process exits (its end of
the server's stdin closes) the server kills its kernels and exits. It kills a kernel whose run
process is gone, so a run killed for its ``run_timeout`` takes its kernel with it, and each kernel
dies with the server (``PR_SET_PDEATHSIG`` on Linux). Standard library only at import time: this
module is the server's ``__main__``, and whatever it imports every kernel inherits.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import sys
import time

POLL_S = 0.1  # how often the server reaps kernels and checks their runs are alive
MAX_FDS = 2  # stdout and stderr of the run
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


# --- the server --------------------------------------------------------------------------------

def _preload(modules: list[str]) -> tuple[list[str], dict[str, str]]:
    """Import ``modules``; return those imported and, per module skipped, why."""
    import importlib
    import threading

    done, skipped = [], {}
    for name in modules:
        try:
            importlib.import_module(name)
        except BaseException as exc:  # noqa: BLE001 - a notebook's import may fail here as in its kernel
            skipped[name] = f"{type(exc).__name__}: {exc}"[:200]
            continue
        if threading.active_count() > 1:  # a module that starts a thread at import: no safe fork
            raise RuntimeError(f"importing {name!r} started a thread ({threading.enumerate()[-1].name})")
        done.append(name)
    return done, skipped


def _warm_up() -> None:
    """Pay first-use costs that leave no state a notebook can see (validators, templates)."""
    if "plotly.graph_objects" in sys.modules or "plotly.express" in sys.modules:
        import plotly.graph_objects as go

        # Building and serializing a figure loads plotly's validators (~0.7 s the first time).
        go.Figure(go.Scatter(x=[1], y=[1]), layout={"title": {"text": "warm"}}).to_json()
        # Showing the first figure imports plotly.io._renderers, which imports nbformat (whose
        # schema validators compile grammars: seconds). Those imports are made here; the
        # renderers module itself is not: it picks the renderer from the running shell, which
        # only the kernel has.
        import importlib

        for name in ("IPython.display", "nbformat", "plotly.io._base_renderers", "plotly.io._utils"):
            importlib.import_module(name)


def _fork_safe_problem() -> str | None:
    import threading

    if threading.active_count() > 1:
        return f"threads running: {', '.join(t.name for t in threading.enumerate())}"
    zmq = sys.modules.get("zmq")
    if zmq is not None and getattr(zmq.Context, "_instance", None) is not None:
        return "a zmq context exists"
    if "asyncio" in sys.modules:
        import asyncio

        try:
            asyncio.get_running_loop()
            return "an event loop is running"
        except RuntimeError:
            pass
    return None


def _import_ipykernel() -> None:
    # As ipykernel sets it, before matplotlib can read it: pyplot imported here picks the same
    # backend it would pick in the kernel.
    os.environ.setdefault("MPLBACKEND", INLINE_BACKEND)
    import ipykernel.ipkernel  # noqa: F401 - the kernel's own import cost, paid once
    import ipykernel.kernelapp  # noqa: F401

    with contextlib.suppress(ImportError):  # what a kernel imports as it starts (debugpy)
        import ipykernel.debugger  # noqa: F401


def serve(path: str, preload: list[str], role: str = "kernels") -> None:
    """Warm up, report readiness on stdout as one JSON line, then fork kernels (or, in the
    ``runs`` role, run processes) until stdin closes."""
    before = dict(os.environ)
    try:
        if role == "kernels":
            _import_ipykernel()
        done, skipped = _preload(preload)
        if role == "kernels":
            _warm_up()
        problem = _fork_safe_problem()
        if problem:
            raise RuntimeError(problem)
    except BaseException as exc:  # noqa: BLE001 - reported to the starter, which falls back to cold
        print(json.dumps({"ok": False, "reason": f"{type(exc).__name__}: {exc}"}), flush=True)
        return
    # Variables the imports set (ipykernel's debugger sets PYDEVD_USE_FRAME_EVAL): a kernel
    # that made the same imports would have them, so each child gets them too.
    set_by_imports = {k: v for k, v in os.environ.items() if before.get(k) != v}
    import gc

    gc.collect()
    gc.freeze()  # keep the preloaded objects out of the children's collections: pages stay shared
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    print(json.dumps({"ok": True, "pid": os.getpid(), "preloaded": done, "skipped": skipped}), flush=True)
    kernels: dict[int, int] = {}  # kernel pid -> pid of the run that asked for it
    become = _become_kernel if role == "kernels" else _become_run
    try:
        _loop(listener, kernels, set_by_imports, become)
    finally:
        for pid in kernels:
            _signal(pid, signal.SIGKILL)
        _reap(kernels, block=True)


def _loop(listener: socket.socket, kernels: dict[int, int], set_by_imports: dict[str, str], become) -> None:
    stdin = sys.stdin.fileno()
    while True:
        ready, _, _ = select.select([listener, stdin], [], [], POLL_S)
        if stdin in ready and not os.read(stdin, 1):  # the starter is gone
            return
        if listener in ready:
            conn, _ = listener.accept()
            with conn:
                _serve_one(conn, listener, kernels, set_by_imports, become)
        _reap(kernels)
        for pid, requester in list(kernels.items()):
            if not _alive(requester):  # its run was killed (run_timeout, a crash): so is it
                _signal(pid, signal.SIGKILL)


def _serve_one(conn: socket.socket, listener: socket.socket, kernels: dict[int, int],
               set_by_imports: dict[str, str], become) -> None:
    conn.settimeout(10)
    try:
        data, fds, _, _ = socket.recv_fds(conn, 1 << 20, MAX_FDS)
        request = json.loads(data)
        request["env"] = {**set_by_imports, **request["env"]}
    except (OSError, ValueError) as exc:
        print(f"lab2land.warm: bad request: {exc}", file=sys.stderr, flush=True)
        return
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        become(request, fds, conn, listener)  # never returns
    for fd in fds:
        os.close(fd)
    kernels[pid] = int(request["requester"])
    conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")


def _reap(kernels: dict[int, int], block: bool = False) -> None:
    deadline = time.monotonic() + 5
    while kernels:
        try:
            pid, _ = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            kernels.clear()
            return
        if pid == 0:
            return
        kernels.pop(pid, None)
        if block and time.monotonic() > deadline:
            return


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead, only not yet reaped by its parent
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return True


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


# --- the forked child --------------------------------------------------------------------------

def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _become_kernel(request: dict, fds: list[int], conn: socket.socket, listener: socket.socket) -> None:
    """In the forked child: turn into the run's kernel, as ``python -m ipykernel_launcher`` would."""
    code = 1
    try:
        server = os.getppid()
        os.setsid()  # its own process group, as jupyter_client's launcher gives a kernel
        _die_with_parent()
        if os.getppid() != server:  # the server died before the line above
            os._exit(1)
        conn.close()
        listener.close()
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        for target, fd in zip((1, 2), [*fds, devnull, devnull], strict=False):
            os.dup2(fd, target)  # never the server's stdout: that pipe is its starter's
        for fd in {devnull, *fds}:
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = [_launcher_path(request["launcher"]), *request["args"]]
        _reseed()
        from ipykernel.kernelapp import IPKernelApp

        app = IPKernelApp.instance()  # what IPKernelApp.launch_instance() does, plus two lines:
        # trait defaults that ipykernel read from the environment when the server imported it
        app.parent_handle = int(os.environ.get("JPY_PARENT_PID") or 0)
        app.interrupt = int(os.environ.get("JPY_INTERRUPT_EVENT") or 0)
        app.initialize()
        app.start()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - the traceback goes to the run's log
        import traceback

        traceback.print_exc()
    finally:
        import atexit

        atexit._run_exitfuncs()  # what the interpreter would run at a kernel's normal exit
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # never back into the server's stack


def _become_run(request: dict, fds: list[int], conn: socket.socket, listener: socket.socket) -> None:
    """In the forked child: run one job (``lab2land.isolate``), holding ``fds`` (the requester's
    end-of-run pipe) open until it exits."""
    code = 1
    try:
        server = os.getppid()
        _die_with_parent()
        if os.getppid() != server:
            os._exit(1)
        conn.close()
        listener.close()
        devnull = os.open(os.devnull, os.O_RDWR)
        for target in (0, 1, 2):  # never the server's stdout; the run opens its own log
            os.dup2(devnull, target)
        os.close(devnull)
        for fd in fds:
            os.set_inheritable(fd, False)  # the run's kernels must not hold it: only this process
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        from lab2land.isolate import child_from_request

        child_from_request(request)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - the traceback goes to the run's log, if it has one by now
        import traceback

        traceback.print_exc()
    finally:
        import atexit

        atexit._run_exitfuncs()
        os._exit(code)


def _launcher_path(module: str) -> str:
    """``sys.argv[0]`` of ``python -m module``: the path of the module's file."""
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec.submodule_search_locations:  # a package runs its __main__
        spec = importlib.util.find_spec(f"{module}.__main__")
    return spec.origin


def _reseed() -> None:
    """Fresh random state, as a new interpreter has (``random`` reseeds itself after fork)."""
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed()


def main(argv: list[str]) -> None:
    """``python -m lab2land.warm SOCKET PRELOAD_JSON [ROLE]``, run from an empty folder.

    Not ``-P``: the flag would be inherited by the kernels, and IPython then leaves the
    notebook's folder off ``sys.path``. The folder ``-m`` put first is dropped instead.
    """
    if sys.path and os.path.realpath(sys.path[0]) == os.path.realpath(os.getcwd()):
        del sys.path[0]
    serve(argv[0], json.loads(argv[1]), *argv[2:3])


if __name__ == "__main__":
    main(sys.argv[1:])
