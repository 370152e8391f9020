"""Warm kernels: each run's kernel is forked from a warm parent, yet starts as clean as a cold one.

Isolation: run A changes everything a notebook can change in its process (globals, pandas
options, plotly's default template, matplotlib rcParams, os.environ, sys.path, the working
directory, sys.modules); run B, forked afterwards from the same server, sees none of it and
sees exactly what a cold kernel sees. Equality: the demo project and the corpus notebooks that
publish give the same cell outputs warm and cold. Failures (cell timeout, run timeout, kernel
death) kill the run's kernel, never the server. Fallbacks to cold kernels say why, in one line.

matplotlib is not part of the project's environment; set ``LAB2LAND_TEST_MATPLOTLIB`` to a folder
holding it (``pip install --target DIR matplotlib``) to include it in the isolation and inline
figure checks.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import psutil
import pytest

from conftest import code_notebook, demo_project, process_gone, run_cli, save_notebook, start_cli, write_project
from lab2land import forked
from lab2land.build import build
from lab2land.config import load_config
from lab2land.execute import RunJob
from lab2land.isolate import run_isolated

MPL = os.environ.get("LAB2LAND_TEST_MATPLOTLIB")
PRELOAD = ["json", "pandas", "plotly.express", "plotly.io"] + (["matplotlib", "matplotlib.pyplot"] if MPL else [])

CHANGE_EVERYTHING = """
import os, sys, colorsys
import pandas as pd, plotly.io as pio
secret_global = 42
pd.set_option("display.max_rows", 7)
pio.templates.default = "plotly_dark"
os.environ["LAB2LAND_LEAK"] = "1"
sys.path.append("/leaked/path")
os.chdir("/")
if HAVE_MPL:
    import matplotlib
    matplotlib.rcParams["lines.linewidth"] = 9.0
"""

STATE = """
import json, os, sys
import pandas as pd, plotly.io as pio
state = {
    "global": "secret_global" in globals(), "max_rows": pd.get_option("display.max_rows"),
    "template": pio.templates.default, "env": os.environ.get("LAB2LAND_LEAK"),
    "path": "/leaked/path" in sys.path, "cwd": os.getcwd(), "colorsys": "colorsys" in sys.modules,
    "linewidth": __import__("matplotlib").rcParams["lines.linewidth"] if HAVE_MPL else None,
    "ppid": os.getppid(), "pid": os.getpid(),
}
print(json.dumps(state))
"""


@pytest.fixture(autouse=True)
def matplotlib_path(monkeypatch):
    if MPL:  # the run, its fork server and its kernels inherit it
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [MPL, os.environ.get("PYTHONPATH")])))
    yield
    forked.stop_servers()


def _job(notebook: Path, *, warm: bool = True, **keys) -> RunJob:
    return RunJob(report="r", variant="default", version_id="v1", notebook=str(notebook), cwd=str(notebook.parent),
                  parameters={"HAVE_MPL": bool(MPL)}, kernel="python3", preload=PRELOAD if warm else None, **keys)


def _printed(result) -> list[str]:
    nb = nbformat.reads(result.notebook_json, as_version=4)
    return [o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "stream"]


def _server_pid() -> int:
    servers = [s for s in forked._SERVERS.values() if isinstance(s, forked.Server)]
    assert len(servers) == 1, forked._SERVERS
    return servers[0].proc.pid


def test_a_run_sees_nothing_an_earlier_run_from_the_same_server_changed(tmp_path):
    a = save_notebook(code_notebook("HAVE_MPL = False", CHANGE_EVERYTHING, STATE), tmp_path / "a" / "a.ipynb")
    b = save_notebook(code_notebook("HAVE_MPL = False", STATE), tmp_path / "b" / "b.ipynb")
    cold_b = json.loads(_printed(run_isolated(_job(b, warm=False)))[-1])
    result_a = run_isolated(_job(a))
    result_b = run_isolated(_job(b))
    assert result_a.ok and result_b.ok, (result_a.error, result_b.error)
    assert result_a.extra["kernel"] == result_b.extra["kernel"] == "warm"
    state_a, state_b = (json.loads(_printed(r)[-1]) for r in (result_a, result_b))
    server = _server_pid()
    # Both kernels are children of the one warm server, and different processes.
    assert state_a["ppid"] == state_b["ppid"] == server and state_a["pid"] != state_b["pid"]
    # A really changed its process ...
    assert state_a == {**state_a, "global": True, "max_rows": 7, "template": "plotly_dark", "env": "1",
                       "path": True, "cwd": "/", "colorsys": True}
    if MPL:
        assert state_a["linewidth"] == 9.0
    # ... and B sees none of it: it sees what a cold kernel sees.
    volatile = ("ppid", "pid")
    assert {k: v for k, v in state_b.items() if k not in volatile} == \
        {k: v for k, v in cold_b.items() if k not in volatile}
    assert state_b["max_rows"] == 60 and state_b["template"] == "plotly" and state_b["cwd"] == str(b.parent)
    assert not state_b["global"] and state_b["env"] is None and not state_b["path"] and not state_b["colorsys"]


def test_kernel_process_looks_like_a_cold_one(tmp_path):
    """argv, sys.path (the notebook's folder importable), environment, threads, random state,
    optional modules (jsonschema's iri checker, which lab2land's own processes skip)."""
    (tmp_path / "helper_mod.py").write_text("VALUE = 'local module'\n")
    probe = """
import json, os, sys, threading, random
import helper_mod, nbformat
print(json.dumps({"argv0": sys.argv[0], "path": sys.path, "env": sorted(os.environ),
                  "threads": sorted(t.name.split(" ")[0].rstrip("-0123456789") for t in threading.enumerate()),
                  "helper": helper_mod.VALUE, "safe_path": sys.flags.safe_path,
                  "iri_checker": sys.modules.get("rfc3987_syntax") is not None}))
print(random.random())
"""
    nb = save_notebook(code_notebook("HAVE_MPL = False", probe), tmp_path / "probe.ipynb")
    cold = run_isolated(_job(nb, warm=False))
    warm = [run_isolated(_job(nb)) for _ in range(2)]
    assert cold.ok and all(w.ok for w in warm), (cold.error, [w.error for w in warm])
    assert all(w.extra["kernel"] == "warm" for w in warm)
    (cold_state, _), *warm_printed = ["".join(_printed(r)).splitlines() for r in (cold, *warm)]
    for state, _ in warm_printed:
        assert json.loads(state) == json.loads(cold_state)
    # The trims of lab2land's own processes (lab2land.lean) stay out of kernels.
    assert json.loads(cold_state)["iri_checker"] is True
    # Two forks of one parent do not share a random sequence.
    assert warm_printed[0][1] != warm_printed[1][1]


@pytest.mark.skipif(not MPL, reason="set LAB2LAND_TEST_MATPLOTLIB to a folder holding matplotlib")
def test_matplotlib_inline_figures_render_when_pyplot_was_preloaded(tmp_path):
    nb = save_notebook(code_notebook("HAVE_MPL = True", "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])"),
                       tmp_path / "mpl.ipynb")
    for warm in (False, True):
        result = run_isolated(_job(nb, warm=warm))
        assert result.ok, result.error
        outputs = nbformat.reads(result.notebook_json, as_version=4).cells[-1].outputs
        assert any("image/png" in o.get("data", {}) for o in outputs), (warm, outputs)


# --- failures kill the kernel, never the server -------------------------------------------------

def _kernel_pid(result) -> int:
    return int(next(t for t in _printed(result) if t.startswith("kernel ")).split()[1])


@pytest.mark.parametrize(("cells", "keys", "kind"), [
    (["import time; time.sleep(60)"], {"cell_timeout": 2}, "cell_timeout"),
    (["import time; time.sleep(60)"], {"run_timeout": 6}, "run_timeout"),
    (["import os, signal; os.kill(os.getpid(), signal.SIGKILL)"], {}, "kernel_died"),
])
def test_failures_kill_the_kernel_not_the_server(tmp_path, cells, keys, kind):
    first = "import os, sys; print('kernel', os.getpid()); sys.stdout.flush()"
    nb = save_notebook(code_notebook("HAVE_MPL = False", first, *cells), tmp_path / "fails.ipynb")
    result = run_isolated(_job(nb, **keys))
    assert result.extra["kernel"] == "warm"
    assert not result.ok and result.error.kind == kind, result.error
    server = psutil.Process(_server_pid())
    if result.notebook_json and any(t.startswith("kernel ") for t in _printed(result)):
        assert process_gone(_kernel_pid(result)), "the failed run's kernel is still alive"
    assert server.is_running() and server.status() != psutil.STATUS_ZOMBIE
    # The server goes on serving: the next run gets a warm kernel from it.
    again = run_isolated(_job(save_notebook(code_notebook("HAVE_MPL = False", first), tmp_path / "ok.ipynb")))
    assert again.ok and again.extra["kernel"] == "warm" and _server_pid() == server.pid


def test_a_kernel_request_to_a_dead_server_gets_a_cold_kernel(tmp_path):
    nb = save_notebook(code_notebook("HAVE_MPL = False", "print('ran')"), tmp_path / "nb.ipynb")
    assert run_isolated(_job(nb)).extra["kernel"] == "warm"
    path, _ = forked.server_for("python3", PRELOAD)
    psutil.Process(_server_pid()).kill()
    result = run_isolated(_job(nb, kernel_server=path))  # the socket of a server that is gone
    assert result.ok and _printed(result) == ["ran\n"], (result.error, result.log_tail)


# --- what gets preloaded ------------------------------------------------------------------------

def test_preload_reads_imports_and_leaves_out_local_and_unsafe_modules(tmp_path):
    (tmp_path / "mylib.py").write_text("")
    nb = save_notebook(code_notebook("n = 1", "%matplotlib inline\nimport pandas as pd, mylib\n"
                                              "from plotly import express as px\nfrom sklearn.linear_model import X",
                                     "import threading\nfrom . import rel\nimport dask.distributed",
                                     "this is not python"), tmp_path / "nb.ipynb")
    got = forked.preload_for([nb], ["scipy"])
    assert got == ["pandas", "plotly", "plotly.express", "scipy", "sklearn.linear_model", "sklearn.linear_model.X"]


# --- builds: same outputs warm and cold; fallbacks say why ---------------------------------------

VOLATILE = [re.compile(p) for p in (r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?",
                                    r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b",
                                    r"\b0x[0-9a-f]{6,}\b", r"\d{8}T\d{6}Z",
                                    r"\bT_[0-9a-f]{5}(?![0-9a-f])")]  # pandas Styler's random table id


def _normal(value):
    if isinstance(value, str):
        for pattern in VOLATILE:
            value = pattern.sub("<volatile>", value)
        return value
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items() if k not in ("model_id", "uid")}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def _outputs(site: Path) -> dict[tuple[str, str], list]:
    """Per report and variant, each code cell's outputs (without execution metadata)."""
    found = {}
    for manifest in site.glob("*/*/manifest.json"):
        meta = json.loads(manifest.read_text())
        nb = nbformat.read(str(manifest.parent / meta["executed_notebook"]), as_version=4)
        found[(meta["report"], meta["variant"])] = (meta["status"], [
            [_normal({k: v for k, v in o.items() if k != "execution_count"}) for o in c.outputs]
            for c in nb.cells if c.cell_type == "code"])
    return found


def _build_both(project: Path) -> tuple[dict, dict]:
    """The project built warm into site-warm/ and cold into site-cold/: their outputs."""
    results = []
    for warm in (True, False):
        config = load_config(project)
        config.site.warm_kernels, config.site.output = warm, f"site-{'warm' if warm else 'cold'}"
        assert build(config, jobs=2, force=True).outcomes
        results.append(_outputs(config.output_dir))
    return results[0], results[1]


@pytest.mark.slow
def test_demo_notebooks_give_the_same_outputs_warm_and_cold(tmp_path):
    warm, cold = _build_both(demo_project(tmp_path / "demo"))
    assert warm and set(warm) == set(cold)
    for key in warm:
        assert warm[key] == cold[key], key


@pytest.mark.slow
def test_corpus_notebooks_that_publish_give_the_same_outputs_warm_and_cold(tmp_path, corpus):
    from test_corpus_publish import PUBLISHES, _project, _report

    project = _project(tmp_path / "corpus", corpus, {n: _report(nb, **k) for n, (nb, k, _) in PUBLISHES.items()})
    warm, cold = _build_both(project)
    assert set(warm) == set(cold) == {(n, "default") for n in PUBLISHES}
    for key in warm:
        assert warm[key][0] == "ok" and warm[key] == cold[key], key


def test_warm_kernels_false_builds_cold_and_says_so(tmp_path):
    project = write_project(tmp_path, {"nb.ipynb": code_notebook("n = 1", "print(n)")},
                            {"r": {"notebook": "nb.ipynb", "title": "R"}}, site={"warm_kernels": False})
    proc = run_cli("build", project=project)
    assert proc.returncode == 0, proc.stderr
    notes = [line for line in (proc.stdout + proc.stderr).splitlines() if "cold kernels" in line]
    assert notes == ["note: cold kernels: [site] warm_kernels = false"]


def test_a_kernelspec_that_is_not_this_environments_ipykernel_runs_cold(tmp_path, monkeypatch):
    """A kernel started through a wrapper (argv is not `python -m ipykernel_launcher`) and a
    non-Python kernel fall back to cold kernels with a note; the first still runs."""
    kernels = tmp_path / "jupyter" / "kernels"
    for name, spec in {
        "wrapped": {"argv": ["/usr/bin/env", sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                    "display_name": "Wrapped", "language": "python"},
        "other": {"argv": ["other-kernel", "{connection_file}"], "display_name": "Other", "language": "R"},
    }.items():
        (kernels / name).mkdir(parents=True)
        (kernels / name / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    assert "is a R kernel, not Python" in forked.kernel_problem("other")
    project = write_project(tmp_path / "p", {"nb.ipynb": code_notebook("n = 1", "print('wrapped ran')")},
                            {"r": {"notebook": "nb.ipynb", "title": "R", "kernel": "wrapped"}})
    proc = run_cli("build", project=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    notes = [line for line in proc.stderr.splitlines() if line.startswith("note: cold kernels")]
    assert len(notes) == 1 and "kernel 'wrapped' does not start with `python -m ipykernel_launcher`" in notes[0]
    page = next((project / "reports" / "r").glob("2*/index.html"))
    assert "wrapped ran" in page.read_text()


def test_platforms_without_a_safe_fork_are_refused(monkeypatch):
    assert forked.platform_problem() is None  # Linux, here
    monkeypatch.setattr(sys, "platform", "darwin")
    assert "macOS" in forked.platform_problem()


# --- a killed or interrupted publisher leaves nothing behind ------------------------------------

def _marked(mark: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and proc.environ().get("LAB2LAND_WARM_MARK") == mark:
                found.append(proc)
        except psutil.Error:
            continue
    return found


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_a_killed_or_interrupted_publisher_leaves_no_server_or_kernel(tmp_path, sig):
    marker = tmp_path / "kernel.json"
    who = (f"import json, os, psutil\nopen({str(marker)!r}, 'w').write(json.dumps("
           "{'kernel': os.getpid(), 'server': os.getppid(), "
           "'server_cmd': psutil.Process(os.getppid()).cmdline()}) + '\\n')")
    project = write_project(tmp_path / "p", {"nb.ipynb": code_notebook("n = 1", who, "import time; time.sleep(120)")},
                            {"r": {"notebook": "nb.ipynb", "title": "R"}})
    mark = f"warm-{os.getpid()}-{sig}"
    proc = start_cli("build", project=project, env={**os.environ, "LAB2LAND_WARM_MARK": mark},
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (marker.exists() and marker.read_text().endswith("\n")) and time.monotonic() < deadline:
        assert proc.poll() is None, "the build ended before its kernel ran"
        time.sleep(0.1)
    who = json.loads(marker.read_text())
    assert "lab2land.warm" in who["server_cmd"]  # the kernel is a warm one
    proc.send_signal(sig)
    proc.wait(60)
    assert process_gone(who["kernel"], 15) and process_gone(who["server"], 15)
    deadline = time.monotonic() + 15
    while (left := _marked(mark)) and time.monotonic() < deadline:
        time.sleep(0.2)
    for p in left:
        p.kill()
    assert not left, [" ".join(p.cmdline()) for p in left]
