"""Every route of ``publish.py serve --token``: nothing a viewer sees without the token, no 5xx.

The routes are read from the server application itself (``DashboardServer.init_handlers``), so a
route added later without a sample request here fails the test instead of going unchecked.
"""

from __future__ import annotations

import http.client
import re
import signal
import tempfile
from pathlib import Path

import pytest
import requests
import websocket
from nbformat.v4 import new_code_cell, new_notebook

from conftest import kernelspec, write_project
from lab2land import dashboards as dash
from lab2land.config import load_config
from lab2land.serve import DashboardServer, _voila_config
from serve_util import Server, config_data

TOKEN = "t0ken-endpoints-5e1f"
VIEWER_DATA = "viewer-data-9b2c"  # what the dashboard shows; only token holders may see it


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    nb = new_notebook(cells=[new_code_cell("n = 1", metadata={"tags": ["parameters"]}),
                             new_code_cell(f"print({VIEWER_DATA!r}, n)")])
    nb.metadata["kernelspec"] = kernelspec()
    folder = write_project(tmp_path_factory.mktemp("endpoints"), {"data.ipynb": nb}, {
        "data": {"notebook": "data.ipynb", "title": "Data", "dashboard": True, "pool_size": 1}},
        site={"title": "Endpoints"})
    site = folder / "reports"
    (site / "data").mkdir(parents=True)
    (site / "index.html").write_text(f"<!DOCTYPE html><title>Site</title><p>{VIEWER_DATA}</p>")
    (site / "data" / "index.html").write_text(f"<p>{VIEWER_DATA}</p>")
    return folder


@pytest.fixture(scope="module")
def server(project):
    srv = Server(project, token=TOKEN)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def routes(project) -> list[str]:
    """The URL patterns the server's application registers, read from a real (not started) app."""
    config = load_config(project)
    dashboards = {name: dash.Dashboard(**{**vars(d), "pool_size": 0}) for name, d in dash.collect(config).items()}
    runtime = Path(tempfile.mkdtemp(prefix="lab2land-routes-"))
    previous = signal.getsignal(signal.SIGTERM)  # Voila installs its own handler on initialize
    try:
        app = DashboardServer(config=_voila_config(dashboards, runtime, "127.0.0.1", 0, TOKEN),
                              dashboards=dashboards, runtime_dir=runtime, project=config)
        app.initialize([])
        app.connection_dir = str(runtime)
        app.init_settings()
        return [handler[0] for handler in app.init_handlers()]
    finally:
        signal.signal(signal.SIGTERM, previous)


# Sample requests per route pattern ({kernel} is a live kernel's id). A pattern missing here fails.
SAMPLES = {
    r"/voila/templates/(.*)": ["/voila/templates/lab/static/voila-style.js", "/voila/templates/%00",
                               "/voila/templates/lab/static/../../../../etc/passwd"],
    r"/api/kernels/{kernel_re}": ["/api/kernels/{kernel}", "/api/kernels/00000000-0000-0000-0000-000000000000"],
    r"/api/kernels/{kernel_re}/channels": ["ws:/api/kernels/{kernel}/channels"],
    r"/voila/static/(.*)": ["/voila/static/voila.js", "/voila/static/%00"],
    r"/lab2land/static/(.*)": ["/lab2land/static/plotly.min.js", "/lab2land/static/%00",
                               "/lab2land/static/widgets/.pinned.json", "/lab2land/static/../../publish.toml"],
    r"/voila/api/themes/(.*)": ["/voila/api/themes/@jupyterlab/theme-light-extension/index.css",
                                "/voila/api/themes/%00"],
    r"/voila/api/shutdown/(.*)": ["/voila/api/shutdown/{kernel}"],
    r"/voila/labextensions/(.*)": ["/voila/labextensions/@jupyter-widgets/jupyterlab-manager/package.json",
                                   "/voila/labextensions/%00"],
    r"/voila/query/{kernel_re}": ["ws:/voila/query/{kernel}"],
    r"/login": ["/login", "/login?next=%00"],
    r"/logout": ["/logout"],
    r"/dashboards/([^/]+)": ["/dashboards/data", "/dashboards/%00"],
    r"/dashboards/([^/]+)/": ["/dashboards/data/", "/dashboards/data/?n=2", "/dashboards/%00/",
                              "/dashboards/data/?n=%00", "/dashboards/data/?n=%ff"],
    r"/(.*)": ["/", "/index.html", "/data/", "/%00", "/logout", "/no/such/page", "/..%2f..%2fetc%2fpasswd",
               "/reports/../publish.toml"],
}
# Hand-listed too: Voila registers them and they leaked viewer data (the query string with the
# token) or answered 500 before; they must stay covered even if the app stops registering them.
ALWAYS = ["ws:/voila/query/{kernel}", "/logout", "/%00"]


def _samples_for(pattern: str) -> list[str]:
    key = re.sub(r"\(\?P<kernel_id>[^)]*\)", "{kernel_re}", pattern)
    assert key in SAMPLES, f"route {pattern!r} has no sample request in SAMPLES: add one"
    return SAMPLES[key]


def _viewer_session(server) -> tuple[requests.Session, str]:
    """A signed-in viewer who opened the dashboard with the token: returns the kernel it got."""
    viewer = requests.Session()
    page = viewer.get(f"{server.url}/dashboards/data/?token={TOKEN}", timeout=90)
    assert page.status_code == 200 and VIEWER_DATA in page.text
    return viewer, config_data(page.text)["kernelId"]


def _get(server, path: str, cookies: dict | None = None) -> tuple[int, str]:
    """GET ``path`` exactly as written (no client-side normalisation of ``%00`` or ``..``)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    conn.putrequest("GET", path, skip_accept_encoding=True)
    if cookies:
        conn.putheader("Cookie", "; ".join(f"{k}={v}" for k, v in cookies.items()))
    conn.endheaders()
    response = conn.getresponse()
    body = response.read().decode("utf-8", "replace")
    conn.close()
    return response.status, body


def _ws(server, path: str, cookies: dict | None = None) -> tuple[int, str]:
    """Open a websocket, read what it sends within a short wait: (101 or the refusal's status, text)."""
    headers = [f"Cookie: {'; '.join(f'{k}={v}' for k, v in (cookies or {}).items())}"] if cookies else []
    try:
        ws = websocket.create_connection(f"ws://127.0.0.1:{server.port}{path}", timeout=3, header=headers,
                                         redirect_limit=0)
    except websocket.WebSocketBadStatusException as exc:
        return exc.status_code, ""
    except websocket.WebSocketException as exc:  # a redirect (to /login): no websocket either
        assert "Redirect" in str(exc), exc
        return 302, ""
    received = []
    try:
        while len(received) < 20:
            received.append(str(ws.recv()))
    except (websocket.WebSocketTimeoutException, websocket.WebSocketConnectionClosedException):
        pass
    finally:
        ws.close()
    return 101, "".join(received)


def _request(server, sample: str, kernel: str, cookies: dict | None) -> tuple[int, str]:
    sample = sample.replace("{kernel}", kernel)
    if sample.startswith("ws:"):
        return _ws(server, sample[3:], cookies)
    return _get(server, sample, cookies)


def test_every_route_has_a_sample(routes):
    assert routes, "the application registers no routes"
    for pattern in routes:
        _samples_for(pattern)


def test_without_the_token_no_viewer_data_and_no_5xx(server, routes):
    viewer, kernel = _viewer_session(server)
    samples = {s for pattern in routes for s in _samples_for(pattern)} | set(ALWAYS)
    problems = []
    for sample in sorted(samples):
        status, body = _request(server, sample, kernel, cookies=None)
        if status >= 500:
            problems.append(f"{sample}: {status}")
        for secret in (TOKEN, VIEWER_DATA):
            if secret in body:
                problems.append(f"{sample}: answers {secret!r} without the token")
        if sample.startswith("ws:") and status == 101:
            problems.append(f"{sample}: websocket opened without the token")
    assert not problems, "\n".join(problems)
    assert len(samples) >= 25


def test_with_the_token_no_5xx(server, routes):
    viewer, kernel = _viewer_session(server)
    samples = {s for pattern in routes for s in _samples_for(pattern)} | set(ALWAYS)
    problems = []
    for sample in sorted(samples):
        status, _body = _request(server, sample, kernel, cookies=viewer.cookies.get_dict())
        if status >= 500:
            problems.append(f"{sample}: {status}")
    assert not problems, "\n".join(problems)
    # The signed-in viewer's dashboard and kernel still work: the walk did not just refuse everything.
    assert _get(server, "/dashboards/data/", viewer.cookies.get_dict())[0] == 200
    assert _ws(server, f"/api/kernels/{kernel}/channels", viewer.cookies.get_dict())[0] == 101


@pytest.mark.parametrize("path", ["/logout", "/%00", "/dashboards/%00/", "/voila/templates/%00"])
def test_odd_paths_answer_4xx(server, path):
    viewer, _kernel = _viewer_session(server)
    status, body = _get(server, path, viewer.cookies.get_dict())
    assert 400 <= status < 500, (path, status)
    assert "Traceback" not in body
