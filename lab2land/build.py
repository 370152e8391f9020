"""``build()``: the publish recipe, top to bottom.

plan runs → lock the site → execute (in parallel) → render and commit each version as it
finishes → rewrite history pages, latest pages and catalog → prune old versions.
"""

from __future__ import annotations

import hashlib
import platform
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Optional

import nbformat

from . import __version__
from .assets import install_assets
from .config import Config
from .cache import State, cache_key, environment_fingerprint, is_due
from .data import Snapshot, load_sources
from .execute import RunError, RunJob, RunResult
from .executors import get_executor
from .plan import Run, injected, plan_runs, variant_names
from .render import render_version, template_fingerprint
from .site import SiteWriter, dashboard_path
from .store import Store, latest_by_variant, version_stamp

STACK = ("papermill", "nbconvert", "nbclient", "nbformat", "ipykernel", "jupyter_client", "voila",
         "ipywidgets", "plotly", "pandas", "numpy", "scikit-learn", "sqlalchemy")


class Reporter:
    """Receives build events; the CLI shows them, the library stays silent by default."""

    def planned(self, runs: list[Run]) -> None: ...
    def started(self, run: Run) -> None: ...
    def finished(self, outcome: "Outcome") -> None: ...


@dataclass
class Outcome:
    """What became of one run."""

    run: Run
    status: str  # "ok", "failed" or "unchanged"
    version_id: Optional[str] = None
    duration_s: float = 0.0
    summary: str = ""


@dataclass
class BuildSummary:
    outcomes: list[Outcome] = field(default_factory=list)
    site_dir: Optional[Path] = None

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed"]


def package_versions() -> dict[str, str]:
    """Versions of the stack a version was built with (recorded in every manifest)."""
    found = {"python": platform.python_version(), "lab2land": __version__}
    for name in STACK:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def template_dirs(config: Config) -> Optional[list[Path]]:
    """Project template overrides, searched before lab2land's own templates."""
    return [config.project_dir / config.site.templates] if config.site.templates else None


@dataclass
class Prepared:
    """A planned run with its version id, data snapshots and cache key."""

    run: Run
    version_id: str
    snapshots: list[Snapshot]
    key: str
    source_error: Optional[str] = None


def _job(config: Config, prep: Prepared) -> RunJob:
    run, report = prep.run, config.reports[prep.run.report]
    sources = {s.name: s.path for s in prep.snapshots}
    return RunJob(report=run.report, variant=run.variant, version_id=prep.version_id, notebook=str(run.notebook),
                  cwd=str(run.notebook.parent),
                  parameters={**run.parameters, **sources, **injected(run, prep.version_id)},
                  kernel=run.kernel, cell_timeout=report.timeout, run_timeout=report.run_timeout)


class Publisher:
    """Turns finished runs into published versions."""

    def __init__(self, config: Config, store: Store):
        self.config, self.store = config, store
        self.packages = package_versions()
        self.templates = template_dirs(config)

    def manifest(self, prep: Prepared, result: RunResult) -> dict:
        run = prep.run
        report = self.config.reports[run.report]
        error = result.error.__dict__ if result.error else None
        return {
            "report": run.report, "title": report.title, "variant": run.variant, "variant_label": run.label,
            "version_id": result.job.version_id, "status": result.status, "parameters": run.parameters,
            "created": result.started, "started": result.started, "finished": result.finished,
            "duration_s": result.duration_s, "attempts": result.attempts,
            "notebook": report.notebook, "notebook_sha256": sha256(run.notebook), "kernel": run.kernel,
            "executed_notebook": run.notebook.name, "error": error,
            "log_tail": result.log_tail or None, "packages": self.packages, "lab2land_version": __version__,
            "sources": [s.record() for s in prep.snapshots], "cache_key": prep.key,
        }

    def page_context(self, run: Run, manifest: dict) -> dict:
        report = self.config.reports[run.report]
        return {
            "site_title": self.config.site.title,
            "report": {"name": run.report, "title": report.title, "description": report.description,
                       "tags": report.tags},
            "version": {"id": manifest["version_id"], "variant": run.variant, "variant_label": run.label,
                        "status": manifest["status"], "parameters": run.parameters, "created": manifest["created"],
                        "duration_s": manifest["duration_s"], "error": manifest["error"],
                        "data_taken": min((s["loaded"] for s in manifest["sources"]), default=None)},
            "provenance": {"notebook": report.notebook, "notebook_sha256": manifest["notebook_sha256"],
                           "kernel": run.kernel, "lab2land_version": __version__, "sources": manifest["sources"],
                           "packages": self.packages},
            "links": {"site": "../../index.html", "history": "../index.html",
                      "latest": f"../latest/{run.variant}.html", "notebook": run.notebook.name,
                      "dashboard": f"../../{dashboard_path(run.report)}" if report.dashboard else None,
                      "versions_js": "../versions.js"},
            "assets": "../../assets/",
        }

    def publish(self, prep: Prepared, result: RunResult) -> Outcome:
        """Render ``result`` and commit it as a new version (a failed run becomes a failed version)."""
        run = prep.run
        manifest = self.manifest(prep, result)
        nb = nbformat.reads(result.notebook_json, as_version=4) if result.notebook_json else nbformat.v4.new_notebook()
        report = self.config.reports[run.report]
        try:
            page = render_version(nb, self.page_context(run, manifest), show_code=report.show_code,
                                  layout=report.layout, template_dirs=self.templates)
        except Exception as exc:  # a rendering bug must not lose the run: keep it as a failed version
            manifest["status"] = "failed"
            manifest["error"] = {"kind": "render", "summary": f"rendering failed: {type(exc).__name__}: {exc}",
                                 "cell_index": None, "ename": type(exc).__name__, "evalue": str(exc)}
            page = render_version(nbformat.v4.new_notebook(), self.page_context(run, manifest),
                                  template_dirs=self.templates)
        files = {"index.html": page, run.notebook.name: nbformat.writes(nb)}
        self.store.commit_version(run.report, manifest["version_id"], files, manifest)
        summary = (manifest["error"] or {}).get("summary", "")
        return Outcome(run, manifest["status"], manifest["version_id"], result.duration_s, summary)


def _prepare(config: Config, store: Store, runs: list[Run], stamp: str) -> list[Prepared]:
    """Allocate version ids, load each needed source once, and compute every run's cache key."""
    snapshots, errors = load_sources(config, {s for run in runs for s in config.reports[run.report].sources})
    template, environment = template_fingerprint(template_dirs(config)), environment_fingerprint()
    prepared = []
    for run in runs:
        sources = config.reports[run.report].sources
        failed = [f"source {s!r} failed: {errors[s]}" for s in sources if s in errors]
        used = [snapshots[s] for s in sources if s in snapshots]
        key = cache_key(notebook_sha256=sha256(run.notebook), parameters=run.parameters,
                        snapshots={s.name: s.hash for s in used}, kernel=run.kernel, template=template,
                        environment=environment)
        version_id = store.allocate_id(run.report, stamp, run.variant if run.multi else None)
        prepared.append(Prepared(run, version_id, used, key, "; ".join(failed) or None))
    return prepared


def _unchanged(prep: Prepared, versions: list[dict]) -> Optional[dict]:
    """The newest good version of this run's parameter set if it was built with the same key."""
    newest = next((m for m in versions if m.get("variant") == prep.run.variant), None)
    if newest and newest.get("status") == "ok" and newest.get("cache_key") == prep.key:
        return newest
    return None


def _due_runs(config: Config, store: Store, state: State, runs: list[Run], now: datetime) -> list[Run]:
    due = []
    latest_of = {name: latest_by_variant(store.versions(name)) for name in {run.report for run in runs}}
    for run in runs:
        latest = latest_of[run.report].get(run.variant)
        if is_due(config.reports[run.report].schedule, now, latest and latest.get("created"),
                  state.checked(run.report, run.variant)):
            due.append(run)
    return due


def _source_failure(prep: Prepared, job: RunJob) -> RunResult:
    """A run that cannot start because a source it reads failed to load."""
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return RunResult(job, "failed", now, now, 0.0, error=RunError("source", prep.source_error))


def build(config: Config, *, reports: Optional[list[str]] = None, overrides: Optional[dict[str, str]] = None,
          jobs: Optional[int] = None, force: bool = False, due: bool = False,
          reporter: Optional[Reporter] = None) -> BuildSummary:
    """Execute and publish the selected reports (all by default); see the module docstring.

    Args:
        config: The loaded project.
        reports: Names of reports to build (default: all).
        overrides: ``-p name=value`` text values for the selected reports.
        jobs: Runs at once (default: ``[site] jobs`` or the CPU count).
        force: Re-run even when nothing changed.
        due: Only reports whose ``schedule`` fired since they were last published or checked.
        reporter: Receives progress events.

    Raises:
        ConfigError: bad config or parameters, before any kernel starts.
        PublishLocked: another publish of the same site did not finish in time.
    """
    reporter = reporter or Reporter()
    runs = plan_runs(config, reports, overrides)
    executor = get_executor(config.site.executor, jobs=jobs or config.site.jobs, scheduler=config.site.scheduler)
    store, state = Store(config.output_dir), State(config.project_dir)
    summary = BuildSummary(site_dir=config.output_dir)
    now = datetime.now(timezone.utc)
    with store.lock():
        store.clean_staging()
        if due:
            runs = _due_runs(config, store, state, runs, now)
        install_assets(config.output_dir)
        publisher = Publisher(config, store)
        prepared = _prepare(config, store, runs, version_stamp(now))
        reporter.planned(runs)
        to_run: dict[tuple[str, str], Prepared] = {}
        # Read each report's manifests once, not once per run (100 variants: 100 reads, not 10,000).
        published = {name: store.versions(name) for name in {prep.run.report for prep in prepared}}
        for prep in prepared:
            state.mark_checked(prep.run.report, prep.run.variant, now)
            same = None if force else _unchanged(prep, published[prep.run.report])
            if same is not None:
                outcome = Outcome(prep.run, "unchanged", same["version_id"], 0.0, "nothing changed")
            elif prep.source_error:
                outcome = publisher.publish(prep, _source_failure(prep, _job(config, prep)))
            else:
                to_run[(prep.run.report, prep.version_id)] = prep
                continue
            summary.outcomes.append(outcome)
            reporter.finished(outcome)
        jobs_ = [_job(config, prep) for prep in to_run.values()]
        for result in executor.map(jobs_, on_start=lambda job: reporter.started(to_run[(job.report, job.version_id)].run)):
            outcome = publisher.publish(to_run[(result.job.report, result.job.version_id)], result)
            summary.outcomes.append(outcome)
            reporter.finished(outcome)
        state.save()
        if any(o.status != "unchanged" for o in summary.outcomes) or not (config.output_dir / "index.html").exists():
            write_site(config, store)
        store.clean_staging()
    return summary


def write_site(config: Config, store: Store) -> dict:
    """Rewrite the site pages and catalog from the versions on disk, after pruning old ones."""
    if config.site.keep:
        for name in config.reports:
            store.prune(name, config.site.keep)
    variants = {}
    for name, report in config.reports.items():
        sets = report.parameter_sets()
        variants[name] = [(key, label, params) for (key, label), params in zip(variant_names(sets), sets)]
    return SiteWriter(config, variants, template_dirs(config)).write()
