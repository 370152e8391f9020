"""What a run process (the papermill side of a run, forked by the run fork server) starts with.

It is forked with the command line's own module already imported: multiprocessing re-runs the
parent's main script (``publish.py``, the ``lab2land`` script) in every child, and that script
imports ``lab2land.cli``. And it skips jsonschema's optional "iri" format checker, as the command
line does (see :mod:`lab2land.lean`), while a kernel, cold or warm, keeps it (test_warm_kernels).
"""

from __future__ import annotations

import sys

from lab2land.isolate import forkserver_context


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
