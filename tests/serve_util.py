"""Helpers for the ``publish.py serve`` tests: grid-layout notebooks and a real server subprocess
(projects are written with ``conftest.write_project``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import nbformat
import psutil
import requests
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from conftest import ROOT, free_port, kernelspec, start_cli

SITE = {"title": "Serve test"}


def view(col, row, width, height, hidden=False) -> dict:
    """Cell metadata in voila-gridstack's format."""
    return {"extensions": {"jupyter_dashboards": {"views": {"grid_default": {
        "col": col, "row": row, "width": width, "height": height, "hidden": hidden}}}}}


def grid_notebook(cells: list, columns: int = 12, cell_height: int = 60) -> nbformat.NotebookNode:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = kernelspec()
    nb.metadata["extensions"] = {"jupyter_dashboards": {"activeView": "grid_default", "views": {"grid_default": {
        "name": "grid", "type": "grid", "maxColumns": columns, "cellMargin": 10, "defaultCellHeight": cell_height}}}}
    return nb


def widgets_notebook() -> nbformat.NotebookNode:
    """Title, slider, label and plotly figure laid out on the grid; one flowing cell; a parameter."""
    return grid_notebook([
        new_code_cell("n = 3\nlabel = 'flowing text'", metadata={"tags": ["parameters"]}),
        new_markdown_cell("# Widgets demo", metadata=view(0, 0, 12, 1)),
        new_code_cell(
            "import ipywidgets as w\n"
            "slider = w.IntSlider(value=n, min=0, max=10, description='n')\n"
            "square = w.Label(value=f'square={n * n}')\n"
            "slider.observe(lambda ch: setattr(square, 'value', f'square={ch.new * ch.new}'), 'value')\n"
            "slider", metadata=view(0, 1, 4, 2)),
        new_code_cell("square", metadata=view(4, 1, 8, 2)),
        new_code_cell("import plotly.graph_objects as go\n"
                      "go.Figure(go.Bar(x=['a', 'b', 'c'], y=[1, n, 2]))", metadata=view(0, 3, 6, 6)),
        new_code_cell("x = 1  # no output: not shown", metadata=view(6, 3, 6, 2)),
        new_code_cell("print(label, n)"),
    ])


class Server:
    """``publish.py serve`` running as a subprocess on a free port."""

    def __init__(self, project: Path, *, token: str | None = None, env: dict | None = None,
                 host: str | None = None):
        self.port = free_port()
        self.host = host
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = project / f"serve-{self.port}.log"
        args = ["serve", "--port", str(self.port)]
        if host:  # None: the command's default
            args += ["--host", host]
        if token:
            args += ["--token", token]
        full_env = {**os.environ, "LAB2LAND_CULL_IDLE_SECONDS": "10", "LAB2LAND_CULL_INTERVAL_SECONDS": "2",
                    **(env or {})}
        if "LAB2LAND_TOKEN" not in (env or {}):
            full_env.pop("LAB2LAND_TOKEN", None)  # the tests decide whether a token is set
        self.log = open(self.log_path, "w")  # noqa: SIM115  (the server writes to it until stop() closes it)
        self.proc = start_cli(*args, project=project, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                              env=full_env)
        self._wait_up()

    def _wait_up(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited with {self.proc.returncode}:\n{self.log_path.read_text()}")
            try:
                requests.get(self.url + "/voila/static/voila.js", timeout=2)
                return
            except requests.ConnectionError:
                time.sleep(0.2)
        raise RuntimeError(f"serve did not come up:\n{self.log_path.read_text()}")

    def kernels(self) -> list[psutil.Process]:
        """The kernel processes the server started: cold ones and those its fork servers forked."""
        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        return [p for p in children if _is_kernel(p)]

    def fork_servers(self) -> list[psutil.Process]:
        """The warm fork servers (``python -m lab2land.warm``) the server started."""
        try:
            children = psutil.Process(self.proc.pid).children()
        except psutil.NoSuchProcess:
            return []
        return [p for p in children if _is_fork_server(p)]

    def wait_kernels(self, count: int, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.kernels()) == count:
                return count
            time.sleep(0.5)
        return len(self.kernels())

    def wait_pool_filled(self, report: str, timeout: float = 60) -> bool:
        """True once Voila logged ``report``'s pool as filled: its kernels are started *and*
        registered for the notebook (a kernel process shows up before that, and a page asked for
        in between gets a kernel of its own instead of a pooled one)."""
        line = f"Kernel pool of {report}/index.ipynb is filled"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if line in self.log_path.read_text():
                return True
            time.sleep(0.2)
        return False

    def stop(self, sig=signal.SIGINT, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def _is_kernel(proc: psutil.Process) -> bool:
    """A cold kernel (``python -m ipykernel_launcher``) or a forked one: a fork server's child,
    which shows its server's command line (a fork does not exec)."""
    try:
        return "ipykernel_launcher" in " ".join(proc.cmdline()) or _is_fork_server(proc.parent())
    except psutil.Error:
        return False


def _is_fork_server(proc: psutil.Process | None) -> bool:
    try:
        return proc is not None and proc.cmdline()[1:3] == ["-m", "lab2land.warm"]
    except psutil.Error:
        return False


def config_data(html_text: str) -> dict:
    """The ``jupyter-config-data`` JSON of a Voila page (kernel id, base url)."""
    start = html_text.index('id="jupyter-config-data"')
    body = html_text[html_text.index(">", start) + 1:html_text.index("</script>", start)]
    return json.loads(body)


def kernel_message(msg_type: str, content: dict, session: str) -> str:
    """A shell-channel message as a browser sends it over the kernel websocket."""
    header = {"msg_id": uuid.uuid4().hex, "msg_type": msg_type, "session": session, "username": "test",
              "version": "5.3", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    return json.dumps({"header": header, "parent_header": {}, "metadata": {}, "content": content,
                       "channel": "shell", "buffers": []})


def kernel_widgets(ws, session: str, timeout: float = 60) -> dict[str, dict]:
    """model id -> full state of every widget in the kernel behind ``ws`` (a kernel websocket),
    asked for as a widget front end does: a ``comm_info_request`` for the widget comms, then a
    ``request_state`` of each (the page's own widget state may be painted as HTML only)."""
    ws.send(kernel_message("comm_info_request", {"target_name": "jupyter.widget"}, session))
    comms: list[str] | None = None
    states: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    while comms is None or len(states) < len(comms):
        if time.monotonic() > deadline:
            raise TimeoutError(f"widget state of {comms} not received, got {list(states)}")
        msg = json.loads(ws.recv())
        kind, content = msg["header"]["msg_type"], msg.get("content") or {}
        if kind == "comm_info_reply" and comms is None:
            comms = list(content.get("comms") or {})
            for comm_id in comms:
                ws.send(kernel_message("comm_msg", {"comm_id": comm_id, "data": {"method": "request_state"}},
                                       session))
        elif kind == "comm_msg" and (content.get("data") or {}).get("method") == "update":
            states[content["comm_id"]] = content["data"]["state"]
    return states


def widget_models(states: dict[str, dict]) -> dict[str, str]:
    """model name -> model id, from :func:`kernel_widgets`."""
    return {state["_model_name"]: model_id for model_id, state in states.items()}
