"""Execute one run (a notebook with one parameter set) with papermill: the job, its result, and
what went wrong.

:func:`execute` runs papermill in the calling process; :mod:`lab2land.isolate` calls it in a
child process of its own per run, time-limited. Papermill lets several failures through unmarked
(timeouts and kernel death escape as raw exceptions; ``sys.exit(0)`` mid-notebook counts as
success); :func:`classify` turns each into a :class:`RunError` with a reason a person can act on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nbformat

# How long nbclient waits, after a cell's reply, for the outputs still on their way (its default,
# 4 s, which papermill turns into a cell failure): a fast kernel printing thousands of outputs on
# a loaded machine is that far ahead of the client, and the cell "timed out after 4 seconds".
IOPUB_TIMEOUT_S = 60
START_RETRIES = 3  # kernel start-up races on small machines; cell failures are never retried
# Parallel kernels would all write IPython's one history.sqlite (lock waits, "database is
# locked"); a run needs no input history on disk. In-memory In/Out still work.
# Each kernel first runs kernel_startup.py (by path: the kernel need not import lab2land).
KERNEL_ARGUMENTS = ["--HistoryManager.enabled=False",
                    f"--IPKernelApp.exec_files={[str(Path(__file__).with_name('kernel_startup.py'))]!r}"]


@dataclass
class RunJob:
    """Everything a worker needs to execute one run; plain data so it pickles and serializes."""

    report: str
    variant: str
    version_id: str
    notebook: str  # absolute path
    cwd: str
    parameters: dict[str, Any]
    kernel: str | None = None
    cell_timeout: int | None = 600
    run_timeout: int = 1800
    preload: list[str] | None = None  # a warm kernel forked from a server with these imports; None: cold
    kernel_server: str | None = None  # that server's socket, set where the run starts


@dataclass
class RunError:
    """Why a run failed. ``kind`` is one of KINDS' keys."""

    kind: str
    summary: str
    cell_index: int | None = None
    ename: str = ""
    evalue: str = ""


KINDS = {
    "cell_error": "a cell raised an exception",
    "cell_timeout": "a cell ran longer than the report's timeout",
    "run_timeout": "the run took longer than the report's run_timeout",
    "kernel_died": "the kernel died",
    "no_kernel": "the kernel is not installed",
    "early_exit": "the notebook stopped before its last cell",
    "internal": "lab2land failed to run the notebook",
}


@dataclass
class RunResult:
    """The outcome of one run: status, timings, the executed notebook and, on failure, the error."""

    job: RunJob
    status: str  # "ok" or "failed"
    started: str
    finished: str
    duration_s: float
    notebook_json: str | None = None  # the executed (possibly partial) notebook
    error: RunError | None = None
    log_tail: str = ""
    attempts: int = 1
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _error_cell(nb: nbformat.NotebookNode) -> tuple[int | None, str, str]:
    """Index, exception name and value of the first cell that raised, if any."""
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return index, output.get("ename", ""), output.get("evalue", "")
    return None, "", ""


def _cell_status(cell) -> str | None:
    return cell.get("metadata", {}).get("papermill", {}).get("status")


def check_complete(nb: nbformat.NotebookNode) -> RunError | None:
    """Catch what papermill reports as success but is not: a cell that raised ``SystemExit``
    (``sys.exit(0)`` mid-notebook) or code cells that never ran."""
    index, ename, evalue = _error_cell(nb)
    if ename == "SystemExit":
        return RunError("early_exit", f"{where(nb, index)} called sys.exit({evalue}); the cells after it never ran",
                        index, ename, evalue)
    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    pending = [i for i, c in code if _cell_status(c) in ("pending", "running")]
    if pending:
        return RunError("early_exit", f"the notebook stopped early: {len(pending)} cells never ran, from "
                                      f"{where(nb, pending[0])}", pending[0])
    return None


def _running_cell(nb: nbformat.NotebookNode | None) -> int | None:
    """The cell that was running when the run stopped: marked running, else the last one started
    (papermill marks a timed-out cell "completed")."""
    if nb is None:
        return None
    started = None
    for index, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {}).get("papermill", {})
        if meta.get("status") == "running":
            return index
        if meta.get("start_time"):
            started = index
    return started


def where(nb: nbformat.NotebookNode | None, index: int | None) -> str:
    """Name a cell so a person can find it: its position counted from 1 (as readers count, in
    the executed notebook) and its first line of code."""
    if index is None:
        return "before any cell ran"
    if nb is None or index >= len(nb.cells):
        return f"cell {index + 1}"
    first = next((line.strip() for line in nb.cells[index].source.splitlines() if line.strip()), "")
    return f"cell {index + 1} ({first[:60]!r})" if first else f"cell {index + 1}"


def classify(exc: BaseException, nb: nbformat.NotebookNode | None, job: RunJob) -> RunError:
    """Turn an exception from papermill/nbclient into a RunError naming the cell and the cause."""
    from jupyter_client.kernelspec import NoSuchKernel
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        index, ename, evalue = _error_cell(nb) if nb is not None else (None, exc.ename, exc.evalue)
        return RunError("cell_error", f"{where(nb, index)} raised {exc.ename}: {exc.evalue}".strip(),
                        index, exc.ename, exc.evalue)
    if isinstance(exc, NoSuchKernel):
        return RunError("no_kernel", f"no kernel named {exc.name!r} is installed; set `kernel = \"python3\"` "
                                     f"in [reports.{job.report}] or install that kernel")
    if isinstance(exc, CellTimeoutError):
        index = _running_cell(nb)
        return RunError("cell_timeout", f"{where(nb, index)} ran longer than {job.cell_timeout} s (the "
                                        f"report's `timeout`)", index, "CellTimeoutError", str(exc).splitlines()[0])
    if isinstance(exc, DeadKernelError):
        index = _running_cell(nb)
        return RunError("kernel_died", f"the kernel died while running {where(nb, index)} "
                                       f"(out of memory, or the process was killed)", index, "DeadKernelError")
    return RunError("internal", f"{type(exc).__name__}: {exc}", _running_cell(nb), type(exc).__name__, str(exc))


def _is_start_failure(exc: BaseException, nb: nbformat.NotebookNode | None) -> bool:
    # Only kernel start-up is retried: no cell may have run yet.
    started = nb is not None and any(_cell_status(c) not in (None, "pending") for c in nb.cells)
    return isinstance(exc, (RuntimeError, TimeoutError)) and not started


def _read_nb(path: Path) -> nbformat.NotebookNode | None:
    """The executed notebook without papermill's error banners (our pages show their own)."""
    try:
        nb = nbformat.read(str(path), as_version=4)
    except Exception:  # absent or half-written: papermill was killed mid-write
        return None
    nb.cells = [c for c in nb.cells if "papermill-error-cell-tag" not in c.get("metadata", {}).get("tags", [])]
    return nb


def execute(job: RunJob, output: Path) -> RunResult:
    """Run ``job`` with papermill in this process, writing the executed notebook to ``output``."""
    import papermill

    from .kernels import RunKernelManager
    from .run_engine import ENGINE

    manager = RunKernelManager
    if job.kernel_server:
        from .forked import warm_manager

        manager = warm_manager(job.kernel_server)
    started, clock = _now(), time.monotonic()
    error, attempts = None, 0
    for attempts in range(1, START_RETRIES + 1):
        try:
            papermill.execute_notebook(
                job.notebook, str(output), parameters=job.parameters, kernel_name=job.kernel,
                cwd=job.cwd, execution_timeout=job.cell_timeout, progress_bar=False, log_output=False,
                kernel_manager_class=manager, extra_arguments=KERNEL_ARGUMENTS, iopub_timeout=IOPUB_TIMEOUT_S,
                engine_name=ENGINE)
            error = None
        except Exception as exc:  # classified below; nothing escapes a run unexplained
            nb = _read_nb(output)
            if attempts < START_RETRIES and _is_start_failure(exc, nb):
                time.sleep(2 ** (attempts - 1))
                continue
            error = classify(exc, nb, job)
        break
    nb = _read_nb(output)
    if error is None and nb is not None:
        error = check_complete(nb)
    duration = round(time.monotonic() - clock, 3)
    return RunResult(job, "failed" if error else "ok", started, _now(), duration,
                     nbformat.writes(nb) if nb is not None else None, error, attempts=attempts,
                     extra=_timings(nb, duration))


def _timings(nb: nbformat.NotebookNode | None, duration: float) -> dict:
    """Where a run's time went: its cells (papermill's per-cell durations) and the rest (kernel
    start-up and shutdown, reading and writing the notebook)."""
    cells = sum(c.get("metadata", {}).get("papermill", {}).get("duration") or 0 for c in nb.cells) if nb else 0
    return {"cells_s": round(cells, 3), "kernel_s": round(max(duration - cells, 0.0), 3)}
