"""Dashboards: the notebooks Voila runs for ``serve``, one per report with ``dashboard = true``.

Voila runs a notebook file as it is, so each dashboard is *prepared*: the report's parameters
are injected after its ``parameters`` cell (papermill's way, as for the static reports), the
report's kernel is set, and the grid layout is computed (``lab2land.grid.annotate``). The
prepared notebooks live in a private runtime folder that Voila uses as its root; the kernels
still run in the original notebook's folder so relative data paths work.

The default parameter set is prepared once at start-up (its kernels can be preheated). A
request with query parameters gets its own prepared notebook, keyed by the validated values:
a preheated kernel has already run the default parameters, so it cannot serve those.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from papermill.parameterize import parameterize_notebook

from lab2land import dashboard_paint, grid
from lab2land.config import Config
from lab2land.data import load_sources
from lab2land.params import NotebookParam, ParameterError, resolve_parameters
from lab2land.plan import plan_runs
from lab2land.store import write_atomic

log = logging.getLogger("lab2land.dashboards")
DEFAULT_NAME = "index.ipynb"
# Distinct query-parameter notebooks kept per dashboard; older ones are deleted (they are
# small, but a crawler trying many values should not fill the disk).
MAX_QUERY_NOTEBOOKS = 64


@dataclass
class Dashboard:
    """One report's dashboard."""

    report: str
    title: str
    notebook: Path  # the source notebook
    kernel: str | None
    takes_parameters: bool
    pool_size: int
    defaults: dict[str, Any]
    declared: dict[str, NotebookParam] | None = field(default=None, repr=False)
    sources: frozenset[str] = frozenset()  # parameters filled from [sources]: never from a query
    timeout: int | None = 600  # the report's cell timeout, seconds (None: no limit)

    @property
    def cwd(self) -> Path:
        """Where the dashboard's kernels run: beside the source notebook."""
        return self.notebook.parent

    @property
    def default_path(self) -> str:
        """The prepared default notebook, relative to the runtime folder."""
        return f"{self.report}/{DEFAULT_NAME}"


def collect(config: Config) -> dict[str, Dashboard]:
    """The dashboards of a project, validated exactly like a build (parameters, kernel).

    Each source a dashboard reads is loaded into a snapshot now, as a build would, and its path
    becomes the parameter of the same name: the dashboard shows the data the reports show.

    Raises:
        ConfigError: listing every problem, before any kernel starts.
    """
    names = [name for name, report in config.reports.items() if report.dashboard]
    runs = {}
    for run in plan_runs(config, names) if names else []:
        runs.setdefault(run.report, run)  # a dashboard opens on the report's first parameter set
    snapshots, errors = load_sources(config, {s for name in runs for s in config.reports[name].sources})
    for source, error in errors.items():
        # The server still starts: the dashboard runs with the notebook's own defaults and, if
        # those don't work either, shows "this dashboard failed" like any failing notebook.
        log.error("source %r failed, dashboards reading it use the notebook's defaults: %s", source, error)
    dashboards = {}
    for name, run in runs.items():
        report = config.reports[name]
        data = {s: snapshots[s].path for s in report.sources if s in snapshots}
        dashboards[name] = Dashboard(name, report.title, run.notebook, run.kernel, report.takes_parameters,
                                     report.pool_size, {**run.parameters, **data},
                                     run.declared if report.takes_parameters else None, frozenset(report.sources),
                                     report.timeout)
    return dashboards


def prepare(dashboard: Dashboard, values: dict[str, Any]) -> nbformat.NotebookNode:
    """The notebook Voila runs: parameters injected, kernel set, grid layout computed."""
    nb = nbformat.read(dashboard.notebook, as_version=4)
    if dashboard.kernel:
        nb.metadata.setdefault("kernelspec", {})["name"] = dashboard.kernel
    # The template decides; a notebook asking for voila-gridstack's template must not switch.
    nb.metadata.pop("voila", None)
    for cell in nb.cells:
        cell.metadata.setdefault("tags", [])  # papermill's parameterizer expects these keys
    nb.metadata.setdefault("papermill", {})
    if values:
        nb = parameterize_notebook(nb, values, report_mode=False)
    # Cells shown by the static pages' rule (lab2land.cell_tags): a dashboard shows outputs only.
    nb = grid.annotate(nb, drop_empty=False, outputs_only=True)
    nb.metadata.lab2land["dashboard"] = {"report": dashboard.report, "title": dashboard.title}
    for cell in nb.cells:
        cell.metadata.lab2land["timeout"] = dashboard.timeout  # read by cell_timeout()
    # Last, hidden: the widget state the page paints before the kernel connects.
    dashboard_paint.add_state_cell(nb, dashboard.timeout)
    return nb


def cell_timeout(cell: dict) -> int | None:
    """Seconds a dashboard cell may run: its report's ``timeout`` (Voila's executor asks per cell)."""
    return ((cell.get("metadata") or {}).get("lab2land") or {}).get("timeout")


def write_default(dashboard: Dashboard, runtime_dir: Path) -> str:
    """Prepare the default notebook in ``runtime_dir``; return its Voila path."""
    write_atomic(runtime_dir / dashboard.default_path, nbformat.writes(prepare(dashboard, dashboard.defaults)))
    return dashboard.default_path


def parse_query(dashboard: Dashboard, arguments: dict[str, list[bytes]]) -> dict[str, Any]:
    """Validate query-string parameters (``?region=north&top=5``) like the CLI's ``-p``.

    Returns:
        The parameters to run with: the report's defaults updated with the coerced values.

    Raises:
        ParameterError: listing every unknown name, repeated name and badly typed value.
    """
    texts, problems = {}, []
    for name, raw in arguments.items():
        if len(raw) != 1:
            problems.append(f"query string {name}: given {len(raw)} times; give each parameter once")
            continue
        if name in dashboard.sources:
            # A path parameter set by a viewer could make the notebook read any file on the server.
            problems.append(f"query string {name}: filled by the server from [sources.{name}]; "
                            f"it cannot be set from the address")
            continue
        try:
            texts[name] = raw[0].decode("utf-8")
        except UnicodeDecodeError:
            problems.append(f"query string {name}: value is not valid UTF-8")
    try:
        values = resolve_parameters(dashboard.report, dashboard.notebook, texts, declared=dashboard.declared,
                                    from_text=True, origin="query string",
                                    takes_parameters=dashboard.takes_parameters)
    except ParameterError as exc:
        problems.extend(exc.problems)
    if problems:
        raise ParameterError(problems)
    return {**dashboard.defaults, **values}


def write_variant(dashboard: Dashboard, values: dict[str, Any], runtime_dir: Path) -> str:
    """Prepare (or reuse) the notebook for non-default parameters; return its Voila path."""
    if values == dashboard.defaults:
        return dashboard.default_path
    key = hashlib.sha256(json.dumps(values, sort_keys=True, default=repr).encode()).hexdigest()[:20]
    relative = f"{dashboard.report}/q-{key}.ipynb"
    path = runtime_dir / relative
    if not path.exists():
        write_atomic(path, nbformat.writes(prepare(dashboard, values)))
        _prune(path.parent)
    return relative


def _prune(folder: Path) -> None:
    variants = sorted(folder.glob("q-*.ipynb"), key=lambda p: p.stat().st_mtime)
    for old in variants[:-MAX_QUERY_NOTEBOOKS]:
        old.unlink(missing_ok=True)
