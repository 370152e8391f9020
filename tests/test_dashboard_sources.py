"""Dashboards read the same data snapshots as the published reports, and a viewer cannot point a
source parameter at another file through the address."""

from __future__ import annotations

import pytest
import requests
from nbformat.v4 import new_code_cell

from conftest import write_project
from serve_util import SITE, Server, grid_notebook


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sources")
    (folder / "data").mkdir()
    (folder / "data" / "numbers.csv").write_text("n\n40\n1\n")
    nb = grid_notebook([
        new_code_cell('numbers = "no-such-file.csv"\nbonus = 1', metadata={"tags": ["parameters"]}),
        new_code_cell("values = [int(v) for v in open(numbers).read().split()[1:]]\n"
                      "print('total is', sum(values) + bonus)"),
    ])
    write_project(folder, {"sum.ipynb": nb},
                  {"sum": {"notebook": "sum.ipynb", "title": "Sum", "dashboard": True, "pool_size": 0,
                           "sources": ["numbers"]}},
                  site=SITE, sources={"numbers": {"path": "data/numbers.csv"}})
    (folder / "reports").mkdir()
    srv = Server(folder)
    yield srv
    srv.stop()


def test_dashboard_gets_the_source_snapshot_as_its_parameter(server):
    page = requests.get(server.url + "/dashboards/sum/", timeout=120)
    assert page.status_code == 200 and "total is 42" in page.text
    # Other parameters still come from the address.
    page = requests.get(server.url + "/dashboards/sum/", params={"bonus": "2"}, timeout=120)
    assert "total is 43" in page.text


def test_source_parameters_cannot_be_set_from_the_address(server):
    response = requests.get(server.url + "/dashboards/sum/", params={"numbers": "/etc/hostname"}, timeout=60)
    assert response.status_code == 400
    assert "query string numbers: filled by the server from [sources.numbers]" in response.text
