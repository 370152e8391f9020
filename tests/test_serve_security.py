"""What a viewer of ``publish.py serve`` cannot do, checked against the running server."""

from __future__ import annotations

import http.client
import json
import sys
import time
import uuid

import psutil
import pytest
import requests
import websocket
from nbformat.v4 import new_code_cell, new_markdown_cell

from conftest import write_project
from serve_util import SITE, Server, config_data, grid_notebook, view, widgets_notebook

SECRET = "s3cret-detail-7f1c"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    folder = tmp_path_factory.mktemp("secure")
    failing = grid_notebook([
        new_markdown_cell("# Failing", metadata=view(0, 0, 12, 1)),
        new_code_cell(f"raise RuntimeError('{SECRET}')", metadata=view(0, 1, 6, 2)),
        new_code_cell("print('never shown')")])
    dying = grid_notebook([new_code_cell("print('before')"), new_code_cell("import os; os._exit(1)"),
                           new_code_cell("print('after')")])
    write_project(folder, {"widgets.ipynb": widgets_notebook(), "failing.ipynb": failing, "dying.ipynb": dying}, {
        "widgets": {"notebook": "widgets.ipynb", "title": "Widgets", "dashboard": True, "pool_size": 1},
        "failing": {"notebook": "failing.ipynb", "title": "Failing", "dashboard": True, "pool_size": 0,
                    "takes_parameters": False},
        "dying": {"notebook": "dying.ipynb", "title": "Dying", "dashboard": True, "pool_size": 0,
                  "takes_parameters": False},
    }, site=SITE)
    site = folder / "reports"
    (site / "widgets" / "v1").mkdir(parents=True)
    (site / "index.html").write_text("<!DOCTYPE html><title>Site</title><h1>Reports</h1>")
    (site / "widgets" / "v1" / "index.html").write_text("<p>version</p>")
    (site / "widgets" / "v1" / "widgets.ipynb").write_text("{}")
    (site / "widgets" / "v1" / "manifest.json").write_text("{}")
    (site / "helper.py").write_text("print('source')")
    (site / "data.csv").write_text("a,b\n1,2\n")
    (site / ".hidden.html").write_text("hidden")
    (folder / "secret.txt").write_text(SECRET)
    return folder


@pytest.fixture(scope="module")
def server(project):
    srv = Server(project)  # no --host: the default must be the loopback interface
    yield srv
    srv.stop()


def _raw_get(server, path: str, headers: dict | None = None) -> int:
    """GET with the path sent exactly as written (no client-side normalisation)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.putrequest("GET", path, skip_accept_encoding=True)
    for key, value in (headers or {}).items():
        conn.putheader(key, value)
    conn.endheaders()
    response = conn.getresponse()
    body = response.read().decode("utf-8", "replace")
    conn.close()
    assert SECRET not in body and "a,b" not in body
    return response.status


def _message(msg_type: str, content: dict, session: str) -> str:
    return json.dumps({"header": {"msg_id": uuid.uuid4().hex, "msg_type": msg_type, "session": session,
                                  "username": "viewer", "version": "5.3", "date": ""},
                       "parent_header": {}, "metadata": {}, "content": content, "channel": "shell", "buffers": []})


def test_default_bind_is_loopback(server):
    listening = [c for c in psutil.Process(server.proc.pid).net_connections(kind="tcp")
                 if c.status == psutil.CONN_LISTEN]
    assert listening and {c.laddr.ip for c in listening} <= {"127.0.0.1"}


def test_execute_request_over_kernel_websocket_is_ignored(server, project):
    marker = project / "executed.txt"
    page = requests.get(server.url + "/dashboards/widgets/", timeout=60).text
    kernel_id = config_data(page)["kernelId"]
    ws = websocket.create_connection(f"ws://127.0.0.1:{server.port}/api/kernels/{kernel_id}/channels", timeout=20)
    session = uuid.uuid4().hex
    code = f"open({str(marker)!r}, 'w').write('pwned')"
    ws.send(_message("execute_request", {"code": code, "silent": False, "store_history": False,
                                         "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
                     session))
    ws.send(_message("kernel_info_request", {}, session))  # allowed: proves the channel works
    replies, deadline = [], time.monotonic() + 20
    while time.monotonic() < deadline and "kernel_info_reply" not in replies:
        replies.append(json.loads(ws.recv())["header"]["msg_type"])
    ws.close()
    time.sleep(1)
    assert "kernel_info_reply" in replies
    assert "execute_reply" not in replies and "execute_input" not in replies
    assert not marker.exists()


def test_sources_are_stripped(server):
    page = requests.get(server.url + "/dashboards/widgets/", timeout=60).text
    assert "slider.observe" not in page and "import plotly" not in page and "n = 3" not in page


def test_failing_notebook_shows_a_notice_not_a_traceback(server):
    response = requests.get(server.url + "/dashboards/failing/", timeout=60)
    assert response.status_code == 200
    assert "This dashboard failed" in response.text
    assert SECRET not in response.text and "Traceback" not in response.text and "RuntimeError" not in response.text
    assert "never shown" not in response.text


def test_dead_kernel_does_not_stop_the_server(server):
    response = requests.get(server.url + "/dashboards/dying/", timeout=90)
    assert "This dashboard failed" in response.text
    assert server.proc.poll() is None
    other = requests.get(server.url + "/dashboards/widgets/", timeout=60)
    assert other.status_code == 200 and "square=9" in other.text


@pytest.mark.parametrize("path", [
    "/widgets/v1/widgets.ipynb", "/helper.py", "/data.csv", "/publish.toml", "/.hidden.html",
    "/../publish.toml", "/%2e%2e/publish.toml", "/%2e%2e%2fpublish.toml", "/..%2fsecret.txt",
    "/widgets/%2e%2e/%2e%2e/secret.txt", "//etc/passwd", "/%2fetc%2fpasswd", "/voila/files/widgets.ipynb",
    "/voila/static/%2e%2e/%2e%2e/%2e%2e/secret.txt", "/voila/templates/lab/static/%2e%2e/%2e%2e/conf.json",
    "/voila/render/widgets.ipynb", "/voila/tree", "/voila/api/contents/", "/api/kernels", "/api/contents",
    "/dashboards/..%2f..%2fsecret.txt/", "/dashboards/%2e%2e/",
    "/api/kernels/00000000-0000-0000-0000-000000000000/channels",
])
def test_private_files_and_traversal_are_refused(server, path):
    assert _raw_get(server, path) in (400, 403, 404)


def test_site_files_are_served(server):
    assert _raw_get(server, "/") == 200
    assert _raw_get(server, "/widgets/v1/") == 200
    assert _raw_get(server, "/widgets/v1/manifest.json") == 200


def test_invalid_query_is_a_400_listing_the_problems(server):
    response = requests.get(server.url + "/dashboards/widgets/", params={"nope": "1", "n": "<script>x"}, timeout=30)
    assert response.status_code == 400
    assert "nope" in response.text and "&lt;script&gt;x" in response.text and "<script>x" not in response.text
    assert "Traceback" not in response.text


def test_unknown_dashboard_is_404(server):
    response = requests.get(server.url + "/dashboards/<b>nope</b>/", timeout=30)
    assert response.status_code == 404 and "<b>nope" not in response.text


def test_token_protects_site_dashboards_and_kernels(project, tmp_path):
    srv = Server(project, host="0.0.0.0", env={"LAB2LAND_TOKEN": "tok-123"})
    try:
        for path in ("/", "/widgets/v1/", "/dashboards/widgets/"):
            response = requests.get(srv.url + path, allow_redirects=False, timeout=30)
            assert response.status_code in (302, 403), path
            assert "Reports" not in response.text and "square" not in response.text
        session = requests.Session()
        assert session.get(srv.url + "/?token=tok-123", timeout=30).status_code == 200
        page = session.get(srv.url + "/dashboards/widgets/", timeout=60)
        assert page.status_code == 200
        kernel_id = config_data(page.text)["kernelId"]
        with pytest.raises(websocket.WebSocketBadStatusException):
            websocket.create_connection(f"ws://127.0.0.1:{srv.port}/api/kernels/{kernel_id}/channels", timeout=10)
    finally:
        srv.stop()


def _stream(url: str, deadline_s: float) -> str:
    """The whole page at ``url``, or what came of it by ``deadline_s``: Voila sends keep-alives
    every few seconds, so a read timeout never fires on a page that never finishes."""
    end = time.monotonic() + deadline_s
    body = b""
    with requests.get(url, stream=True, timeout=30) as response:
        for chunk in response.iter_content(chunk_size=None):
            body += chunk
            if time.monotonic() > end:
                pytest.fail(f"{url} still streaming after {deadline_s:.0f} s: ...{body[-300:]!r}")
    return body.decode("utf-8", "replace")


def test_a_kernel_that_dies_before_it_replies_ends_the_page_with_a_notice(tmp_path):
    """A kernel that never comes up (here its kernel spec exits at once; in CI a port taken under
    it did the same) made Voila's page task die with an error nobody read, and the page streamed
    keep-alives for ever: the viewer must get the failure notice, the server must stay up."""
    kernels = tmp_path / "jupyter" / "kernels" / "broken"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-c", "import sys; sys.exit(3)", "{connection_file}"],
        "display_name": "Broken", "language": "python"}))
    project = write_project(tmp_path / "p", {"broken.ipynb": grid_notebook([new_code_cell("print('hi')")]),
                                             "widgets.ipynb": widgets_notebook()}, {
        "broken": {"notebook": "broken.ipynb", "title": "Broken", "dashboard": True, "pool_size": 0,
                   "takes_parameters": False, "kernel": "broken"},
        "widgets": {"notebook": "widgets.ipynb", "title": "Widgets", "dashboard": True, "pool_size": 0},
    }, site=SITE)
    srv = Server(project, env={"JUPYTER_PATH": str(tmp_path / "jupyter")})
    try:
        text = _stream(srv.url + "/dashboards/broken/", 180)
        assert "This dashboard failed" in text and "Traceback" not in text
        assert srv.proc.poll() is None
        other = requests.get(srv.url + "/dashboards/widgets/", timeout=60)
        assert other.status_code == 200 and "square=9" in other.text
    finally:
        srv.stop()
