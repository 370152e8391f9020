"""``build()``: the publish recipe, top to bottom.

plan runs → lock the site → load data snapshots and compute cache keys → publish what needs
no kernel (unchanged, failed sources) → execute the rest in parallel, committing each version as
it finishes → rewrite history pages, latest pages and catalog → prune old versions.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from .assets import install_assets
from .cache import State, cache_key, environment_fingerprint, is_due
from .config import Config
from .data import load_sources
from .execute import RunError, RunJob, RunResult
from .executors import Executor, get_executor
from .plan import Run, injected, plan_runs
from .publisher import Outcome, Prepared, Publisher, template_dirs
from .templating import template_fingerprint
from .site import SiteWriter
from .store import LOCK_WAIT_S, Store, latest_by_variant, version_stamp


class Reporter:
    """Receives build events; the CLI shows them, the library stays silent by default."""

    def planned(self, runs: list[Run]) -> None: ...
    def started(self, run: Run) -> None: ...
    def finished(self, outcome: "Outcome") -> None: ...


@dataclass
class BuildSummary:
    outcomes: list[Outcome] = field(default_factory=list)
    site_dir: Optional[Path] = None

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed"]


def _job(config: Config, prep: Prepared) -> RunJob:
    run, report = prep.run, config.reports[prep.run.report]
    sources = {s.name: s.path for s in prep.snapshots}
    return RunJob(report=run.report, variant=run.variant, version_id=prep.version_id, notebook=str(run.notebook),
                  cwd=str(run.notebook.parent),
                  parameters={**run.parameters, **sources, **injected(run, prep.version_id)},
                  kernel=run.kernel, cell_timeout=report.timeout, run_timeout=report.run_timeout)


def _prepare(config: Config, store: Store, runs: list[Run], stamp: str) -> list[Prepared]:
    """Allocate version ids, load each needed source once, and compute every run's cache key."""
    snapshots, errors = load_sources(config, {s for run in runs for s in config.reports[run.report].sources})
    template, environment = template_fingerprint(template_dirs(config)), environment_fingerprint()
    digests = {nb: hashlib.sha256(nb.read_bytes()).hexdigest() for nb in {run.notebook for run in runs}}
    prepared = []
    for run in runs:
        sources = config.reports[run.report].sources
        failed = [f"source {s!r} failed: {errors[s]}" for s in sources if s in errors]
        used = [snapshots[s] for s in sources if s in snapshots]
        key = cache_key(notebook_sha256=digests[run.notebook], parameters=run.parameters,
                        snapshots={s.name: s.hash for s in used}, kernel=run.kernel, template=template,
                        environment=environment)
        version_id = store.allocate_id(run.report, stamp, run.variant if run.multi else None)
        prepared.append(Prepared(run, version_id, used, key, digests[run.notebook], "; ".join(failed) or None))
    return prepared


def _unchanged(prep: Prepared, versions: list[dict]) -> Optional[dict]:
    """The newest good version of this run's parameter set if it was built with the same key."""
    newest = next((m for m in versions if m.get("variant") == prep.run.variant), None)
    if newest and newest.get("status") == "ok" and newest.get("cache_key") == prep.key:
        return newest
    return None


def _due_runs(config: Config, published: dict[str, list[dict]], state: State, runs: list[Run],
              now: datetime) -> list[Run]:
    due = []
    latest_of = {name: latest_by_variant(versions) for name, versions in published.items()}
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
          reporter: Optional[Reporter] = None, wait_s: float = LOCK_WAIT_S) -> BuildSummary:
    """Execute and publish the selected reports (all by default); see the module docstring.

    Args:
        config: The loaded project.
        reports: Names of reports to build (default: all).
        overrides: ``-p name=value`` text values for the selected reports.
        jobs: Runs at once (default: ``[site] jobs`` or the CPU count).
        force: Re-run even when nothing changed.
        due: Only reports whose ``schedule`` fired since they were last published or checked.
        reporter: Receives progress events.
        wait_s: How long to wait for another publish of the same site to finish.

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
    with store.lock(wait_s):
        store.clean_staging()
        # Each report's manifests, read once (100 variants: 100 reads, not 10,000).
        published = {name: store.versions(name) for name in {run.report for run in runs}}
        if due:
            runs = _due_runs(config, published, state, runs, now)
        install_assets(config.output_dir)
        prepared = _prepare(config, store, runs, version_stamp(now))
        reporter.planned(runs)
        publisher = Publisher(config, store)
        to_run = _settle(prepared, publisher, published, force, summary, reporter)
        _execute(config, executor, to_run, publisher, summary, reporter)
        for prep in prepared:
            state.mark_checked(prep.run.report, prep.run.variant, now)
        _write_site_if_changed(config, store, state, summary)
        state.save()
        store.clean_staging()
    return summary


def _settle(prepared: list[Prepared], publisher: Publisher, published: dict[str, list[dict]], force: bool,
            summary: BuildSummary, reporter: Reporter) -> list[Prepared]:
    """Decide the runs that need no kernel (unchanged, or a source failed); return the rest."""
    to_run = []
    for prep in prepared:
        same = None if force else _unchanged(prep, published[prep.run.report])
        if same is not None:
            outcome = Outcome(prep.run, "unchanged", same["version_id"], 0.0, "nothing changed")
        elif prep.source_error:
            outcome = publisher.publish(prep, _source_failure(prep, _job(publisher.config, prep)))
        else:
            to_run.append(prep)
            continue
        summary.outcomes.append(outcome)
        reporter.finished(outcome)
    return to_run


def _execute(config: Config, executor: Executor, to_run: list[Prepared], publisher: Publisher,
             summary: BuildSummary, reporter: Reporter) -> None:
    """Run the jobs in parallel and publish each version as soon as its run finishes."""
    by_key = {(prep.run.report, prep.version_id): prep for prep in to_run}
    jobs = [_job(config, prep) for prep in to_run]
    for result in executor.map(jobs, on_start=lambda job: reporter.started(by_key[(job.report, job.version_id)].run)):
        outcome = publisher.publish(by_key[(result.job.report, result.job.version_id)], result)
        summary.outcomes.append(outcome)
        reporter.finished(outcome)


def _site_key(config: Config) -> str:
    # What the site pages show besides the versions themselves: the config and the templates.
    payload = config.model_dump_json() + template_fingerprint(template_dirs(config))
    return hashlib.sha256(payload.encode()).hexdigest()


def _write_site_if_changed(config: Config, store: Store, state: State, summary: BuildSummary) -> None:
    key = _site_key(config)
    if (any(o.status != "unchanged" for o in summary.outcomes) or state.data.get("site") != key
            or not (config.output_dir / "index.html").exists()):
        write_site(config, store)
        state.data["site"] = key


def write_site(config: Config, store: Store) -> dict:
    """Rewrite the site pages and catalog from the versions on disk, after pruning old ones."""
    if config.site.keep:
        for name in config.reports:
            store.prune(name, config.site.keep)
    return SiteWriter(config, template_dirs(config)).write()
