"""Executors: the registry, and the Dask executor running real notebooks on a local cluster."""

from __future__ import annotations

import pytest

from conftest import code_notebook, write_project
from lab2land.build import build
from lab2land.config import ConfigError, load_config
from lab2land.executors import get_executor


def test_unknown_executor_lists_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown executor 'k8s' \(valid: dask, local\)"):
        get_executor("k8s")


def test_dask_executor_runs_fan_out_and_isolates_failures(tmp_path):
    nb = code_notebook("n = 1", "assert n != 2, 'two is not allowed'\nprint('n is', n)")
    write_project(tmp_path, {"nb.ipynb": nb},
                  {"r": {"notebook": "nb.ipynb", "title": "R", "parameters": [{"n": 1}, {"n": 2}, {"n": 3}]}},
                  site={"executor": "dask"})
    summary = build(load_config(tmp_path), jobs=2)
    status = {o.run.variant: o.status for o in summary.outcomes}
    assert status == {"1": "ok", "2": "failed", "3": "ok"}
    [failed] = summary.failed
    assert "AssertionError: two is not allowed" in failed.summary
    page = (tmp_path / "reports" / "r" / f"{[o for o in summary.outcomes if o.run.variant == '3'][0].version_id}"
            / "index.html").read_text()
    assert "n is 3" in page
