"""What a run process (the papermill side of a run, forked by the run fork server) starts with.

It is forked with the command line's own module already imported: multiprocessing re-runs the
parent's main script (``publish.py``, the ``lab2land`` script) in every child, and that script
imports ``lab2land.cli``. And it skips jsonschema's optional "iri" format checker, as the command
line does (see :mod:`lab2land.lean`), while a kernel, cold or warm, keeps it (test_warm_kernels).
"""

from __future__ import annotations

import sys

import nbformat

from conftest import code_notebook, save_notebook
from lab2land.execute import RunJob
from lab2land.isolate import forkserver_context, run_isolated


def _report_modules(queue) -> None:
    queue.put({"cli": "lab2land.cli" in sys.modules, "iri": repr(sys.modules.get("rfc3987_syntax", "absent"))})


def test_a_run_process_starts_with_the_cli_imported_and_without_the_iri_checker():
    ctx = forkserver_context()
    queue = ctx.Queue()
    child = ctx.Process(target=_report_modules, args=(queue,))
    child.start()
    try:
        seen = queue.get(timeout=60)
    finally:
        child.join(10)
    # pytest's main (pytest.__main__) is not re-run in children: lab2land.cli is there because
    # the fork server preloaded it.
    assert seen == {"cli": True, "iri": "None"}


def test_a_run_killed_at_its_run_timeout_keeps_its_outputs_so_far_and_names_the_running_cell(tmp_path):
    """The run engine's cheap saves (lab2land.run_engine) still leave, at every cell, a notebook
    the publisher can read after a kill: valid, with the outputs so far, the running cell marked."""
    nb_path = save_notebook(code_notebook("n = 1", "print('first output', n)", "import time; time.sleep(120)"),
                            tmp_path / "slow.ipynb")
    job = RunJob(report="r", variant="default", version_id="v1", notebook=str(nb_path), cwd=str(tmp_path),
                 parameters={"n": 7}, kernel="python3", run_timeout=8)
    result = run_isolated(job)
    assert not result.ok and result.error.kind == "run_timeout", result.error
    # cell 4 of the executed notebook: papermill's injected parameters are cell 2
    assert "stopped while running cell 4 ('import time; time.sleep(120)')" in result.error.summary
    nb = nbformat.reads(result.notebook_json, as_version=4)
    nbformat.validate(nb)
    printed = [o.get("text", "") for c in nb.cells for o in c.get("outputs", [])]
    assert "first output 7\n" in printed
