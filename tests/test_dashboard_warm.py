"""Warm dashboard kernels: ``serve`` forks each viewer's kernel from a warm fork server, yet every
viewer starts as clean as with a cold kernel.

Isolation: viewer A's widget changes everything its kernel can change (a global, pandas options,
a module attribute, ``os.environ``); viewer B, whose kernel is forked afterwards from the same
server, sees none of it, and starts exactly as a cold kernel starts (same folder, same
environment, same state). Shutting a kernel down never touches its server; ``serve`` killed or
stopped leaves no server and no kernel. Where forking does not apply, kernels start cold and
the server says why in one line.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import uuid

import psutil
import pytest
import requests
import websocket
from nbformat.v4 import new_code_cell, new_notebook

from conftest import kernelspec, process_gone, write_project
from serve_util import SITE, Server, config_data, kernel_message, kernel_widgets, widget_models

MARK = "LAB2LAND_TEST_MARK"  # set on serve: its kernels (cold or warm) must inherit it

START_STATE = """
import json, os, sys
import pandas as pd
import ipywidgets as w
start = {"pid": os.getpid(), "ppid": os.getppid(), "cwd": os.getcwd(), "mark": os.environ.get("LAB2LAND_TEST_MARK"),
         "leaked_global": "leaked_global" in globals(), "max_rows": pd.get_option("display.max_rows"),
         "module_attr": hasattr(pd, "lab2land_leak"), "env": os.environ.get("LAB2LAND_LEAK"),
         "tabnanny": "tabnanny" in sys.modules}
slider = w.IntSlider(value=n)
label = w.Label(value="start=" + json.dumps(start))

def change_everything(change):
    global leaked_global
    __import__("tabnanny")  # a module this kernel imports late (unseen by the preload, which reads imports)
    leaked_global = change.new
    pd.set_option("display.max_rows", 7)
    pd.lab2land_leak = True
    os.environ["LAB2LAND_LEAK"] = "1"
    label.value = "changed=" + json.dumps({"max_rows": pd.get_option("display.max_rows"),
                                           "leaked_global": "leaked_global" in globals()})

slider.observe(change_everything, "value")
display(slider, label)
"""


def state_notebook():
    nb = new_notebook(cells=[new_code_cell("n = 3", metadata={"tags": ["parameters"]}),
                             new_code_cell(START_STATE)])
    nb.metadata["kernelspec"] = kernelspec()
    return nb


def _project(folder, **site):
    return write_project(folder, {"nb/state.ipynb": state_notebook()}, {
        "state": {"notebook": "nb/state.ipynb", "title": "State", "dashboard": True, "pool_size": 0},
        "pooled": {"notebook": "nb/state.ipynb", "title": "Pooled", "dashboard": True, "pool_size": 1},
    }, site={**SITE, **site})


def _server(project, **env):
    return Server(project, env={MARK: "from-serve", "LAB2LAND_CLOSE_GRACE_SECONDS": "1",
                                "LAB2LAND_CULL_IDLE_SECONDS": "600", **env})


class Viewer:
    """A viewer of a dashboard: its page, then its kernel's websocket (as the page's script)."""

    def __init__(self, url: str, port: int):
        response = requests.get(url, timeout=120)
        assert response.status_code == 200 and "This dashboard failed" not in response.text
        self.kernel_id = config_data(response.text)["kernelId"]
        self.ws = websocket.create_connection(f"ws://127.0.0.1:{port}/api/kernels/{self.kernel_id}/channels",
                                              timeout=60)
        self.session = uuid.uuid4().hex
        state = kernel_widgets(self.ws, self.session)
        models = widget_models(state)
        self.slider, self.label = models["IntSliderModel"], models["LabelModel"]
        self.start = json.loads(state[self.label]["value"].removeprefix("start="))

    def change_everything(self) -> dict:
        """Move the slider; return what the kernel reports after its change."""
        self.ws.send(kernel_message("comm_msg", {"comm_id": self.slider, "data": {
            "method": "update", "state": {"value": 9}, "buffer_paths": []}}, self.session))
        while True:
            content = json.loads(self.ws.recv()).get("content") or {}
            value = ((content.get("data") or {}).get("state") or {}).get("value", "")
            if content.get("comm_id") == self.label and value.startswith("changed="):
                return json.loads(value.removeprefix("changed="))

    def leave(self) -> None:
        self.ws.close()


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    project = _project(tmp_path_factory.mktemp("warm"))
    srv = _server(project)
    assert srv.wait_kernels(1, timeout=120) == 1  # the pooled report's kernel
    yield srv, project
    srv.stop()


def _clean(start: dict) -> dict:
    """A kernel's start state without what differs between any two kernels (pid, parent)."""
    return {k: v for k, v in start.items() if k not in ("pid", "ppid")}


def test_a_viewer_sees_nothing_an_earlier_viewer_changed(warm):
    srv, project = warm
    [server] = srv.fork_servers()
    url = srv.url + "/dashboards/state/"
    a = Viewer(url, srv.port)
    try:
        assert a.start["ppid"] == server.pid  # forked by the fork server, not started by serve
        assert a.change_everything() == {"max_rows": 7, "leaked_global": True}  # A's kernel did change
        b = Viewer(url, srv.port)  # forked after A's change, from the same server
        try:
            assert b.start["ppid"] == server.pid and b.start["pid"] != a.start["pid"]
            clean = {"cwd": str(project / "nb"), "mark": "from-serve", "leaked_global": False, "max_rows": 60,
                     "module_attr": False, "env": None, "tabnanny": False}
            assert _clean(a.start) == clean
            assert _clean(b.start) == clean
            # Each kernel is its own process, the one the server counts as its viewer's kernel.
            assert {a.start["pid"], b.start["pid"]} <= {k.pid for k in srv.kernels()}
        finally:
            b.leave()
    finally:
        a.leave()


def test_a_closed_viewers_kernel_goes_and_its_fork_server_stays(warm):
    srv, _project_dir = warm
    [server] = srv.fork_servers()
    a = Viewer(srv.url + "/dashboards/state/?n=4", srv.port)
    assert psutil.Process(a.start["pid"]).ppid() == server.pid
    a.leave()
    assert process_gone(a.start["pid"], 20)
    assert server.is_running() and srv.fork_servers() == [server]
    b = Viewer(srv.url + "/dashboards/pooled/", srv.port)  # the preheated kernel, forked too
    try:
        assert b.start["ppid"] == server.pid
    finally:
        b.leave()
    assert process_gone(b.start["pid"], 20) and server.is_running()
    # The pool refills from the same server (the viewers' kernels are gone).
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(srv.kernels()) != 1:
        time.sleep(0.25)
    assert [k.ppid() for k in srv.kernels()] == [server.pid]


def test_cold_kernels_start_in_the_same_state_and_say_why(tmp_path, warm):
    """``[site] warm_kernels = false``: cold kernels (serve's own children), one note, same state."""
    srv = _server(_project(tmp_path, warm_kernels=False))
    try:
        viewer = Viewer(srv.url + "/dashboards/state/", srv.port)
        try:
            assert viewer.start["ppid"] == srv.proc.pid and srv.fork_servers() == []
            assert "ipykernel_launcher" in " ".join(psutil.Process(viewer.start["pid"]).cmdline())
            warm_viewer = Viewer(warm[0].url + "/dashboards/state/", warm[0].port)
            warm_viewer.leave()
            cold, forked = _clean(viewer.start), _clean(warm_viewer.start)
            assert cold == {**forked, "cwd": str(tmp_path / "nb")}
        finally:
            viewer.leave()
    finally:
        srv.stop()
    notes = [line for line in srv.log_path.read_text().splitlines() if "cold" in line and line.startswith("note:")]
    assert notes == ["note: cold dashboard kernels: [site] warm_kernels = false"]


def test_a_kernel_that_is_not_this_environments_ipykernel_starts_cold(tmp_path):
    kernels = tmp_path / "jupyter" / "kernels" / "wrapped"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": ["/usr/bin/env", sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Wrapped", "language": "python"}))
    project = _project(tmp_path / "p")
    text = (project / "publish.toml").read_text().replace('title = "State"', 'title = "State"\nkernel = "wrapped"')
    (project / "publish.toml").write_text(text)
    srv = _server(project, JUPYTER_PATH=str(tmp_path / "jupyter"))
    try:
        viewer = Viewer(srv.url + "/dashboards/state/", srv.port)
        viewer.leave()
        assert viewer.start["ppid"] == srv.proc.pid  # started by serve itself: cold
        pooled = Viewer(srv.url + "/dashboards/pooled/", srv.port)
        pooled.leave()
        assert [p.pid for p in srv.fork_servers()] == [pooled.start["ppid"]]  # python3: still warm
    finally:
        srv.stop()
    notes = [line for line in srv.log_path.read_text().splitlines() if line.startswith("note: cold")]
    assert len(notes) == 1 and "dashboard(s) state:" in notes[0], notes
    assert "kernel 'wrapped' does not start with `python -m ipykernel_launcher`" in notes[0]


def _marked(mark: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and proc.environ().get(MARK) == mark:
                found.append(proc)
        except psutil.Error:
            continue
    return found


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL, signal.SIGINT])
def test_stopping_or_killing_serve_leaves_no_fork_server_or_kernel(tmp_path, sig):
    mark = f"serve-{os.getpid()}-{sig}-{uuid.uuid4().hex[:6]}"
    srv = _server(_project(tmp_path), **{MARK: mark})
    try:
        assert srv.wait_kernels(1, timeout=120) == 1
        viewer = Viewer(srv.url + "/dashboards/state/", srv.port)  # a viewer's kernel, connected
        servers, kernels = srv.fork_servers(), srv.kernels()
        assert len(servers) == 1 and len(kernels) == 2 and {k.ppid() for k in kernels} == {servers[0].pid}
        pids = [p.pid for p in servers + kernels]
        srv.proc.send_signal(sig)
        srv.proc.wait(60)
        viewer.ws.close()
        assert all(process_gone(pid, 15) for pid in pids), [p for p in pids if psutil.pid_exists(p)]
        deadline = time.monotonic() + 15
        while (left := _marked(mark)) and time.monotonic() < deadline:
            time.sleep(0.2)
        for proc in left:
            proc.kill()
        assert not left, [" ".join(p.cmdline()) for p in left]
    finally:
        srv.stop()
