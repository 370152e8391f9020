"""``build()``: the publish recipe, top to bottom.

plan runs → lock the site → clear what a killed publish left → load data snapshots and compute
cache keys → publish what needs no kernel (unchanged, failed sources) → execute the rest in
parallel, committing each version as it finishes → prune old versions → rewrite history pages,
latest pages and catalog whenever they no longer match the versions on disk.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from . import provenance
from .assets import install_assets
from .cache import STATE, State, cache_key, environment_fingerprint, is_due
from .config import Config, ReportConfig
from .data import load_sources
from .execute import RunError, RunJob, RunResult
from .executors import Executor, get_executor
from .forked import WarmSettings
from .images import images_digest
from .pins import read_pins
from .plan import Run, injected, plan_runs
from .publisher import Outcome, Prepared, Publisher, template_dirs
from .site import SiteWriter, remove_temporaries, report_keys, site_key
from .store import LOCK_WAIT_S, Store, latest_by_variant, version_stamp
from .templating import template_fingerprint
from .version import Version


class Reporter:
    """Receives build events; the CLI shows them, the library stays silent by default."""

    def planned(self, runs: list[Run]) -> None: ...
    def started(self, run: Run) -> None: ...
    def finished(self, outcome: Outcome) -> None: ...


@dataclass
class BuildSummary:
    outcomes: list[Outcome] = field(default_factory=list)
    site_dir: Path | None = None
    notes: list[str] = field(default_factory=list)  # e.g. new versions a pin keeps from being latest

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def degraded(self) -> list[Outcome]:
        """Runs that finished but breached a check of their report."""
        return [o for o in self.outcomes if o.status == "degraded"]


def _job(config: Config, prep: Prepared) -> RunJob:
    run, report = prep.run, config.reports[prep.run.report]
    sources = {s.name: s.path for s in prep.snapshots}
    return RunJob(report=run.report, variant=run.variant, version_id=prep.version_id, notebook=str(run.notebook),
                  cwd=str(run.notebook.parent),
                  parameters={**run.parameters, **sources, **injected(run, prep.version_id)},
                  kernel=run.kernel, cell_timeout=report.timeout, run_timeout=report.run_timeout)


PAGE_OPTIONS = ("show_code", "layout", "publish_notebook")  # what a report's version holds depends on


def page_options(report: ReportConfig) -> dict:
    """The report's page options that are not at their defaults (part of its runs' keys)."""
    fields = type(report).model_fields
    return {name: getattr(report, name) for name in PAGE_OPTIONS if getattr(report, name) != fields[name].default}


def _prepare(config: Config, store: Store, runs: list[Run], stamp: str) -> list[Prepared]:
    """Allocate version ids, load each needed source once, and compute every run's cache key."""
    snapshots, errors = load_sources(config, {s for run in runs for s in config.reports[run.report].sources})
    template, environment = template_fingerprint(template_dirs(config)), environment_fingerprint()
    digests = {nb: hashlib.sha256(nb.read_bytes()).hexdigest() for nb in {run.notebook for run in runs}}
    pictures = {nb: images_digest(nb) for nb in digests}
    prepared = []
    for run in runs:
        sources = config.reports[run.report].sources
        failed = [f"source {s!r} failed: {errors[s]}" for s in sources if s in errors]
        used = [snapshots[s] for s in sources if s in snapshots]
        key = cache_key(notebook_sha256=digests[run.notebook], parameters=run.parameters,
                        snapshots={s.name: s.hash for s in used}, kernel=run.kernel, template=template,
                        environment=environment, images=pictures[run.notebook],
                        page=page_options(config.reports[run.report]))
        version_id = store.allocate_id(run.report, stamp, run.variant if run.multi else None)
        prepared.append(Prepared(run, version_id, used, key, digests[run.notebook], "; ".join(failed) or None))
    return prepared


def _unchanged(prep: Prepared, versions: list[Version]) -> Version | None:
    """The newest version of this run's parameter set if it ran to the end (ok, or degraded: the
    same inputs breach the same checks again) with the same key."""
    newest = next((v for v in versions if v.variant == prep.run.variant), None)
    if newest and newest.complete and newest.cache_key == prep.key:
        return newest
    return None


def _due_runs(config: Config, published: dict[str, list[Version]], state: State, runs: list[Run],
              now: datetime) -> list[Run]:
    due = []
    latest_of = {name: latest_by_variant(versions, config.reports[name].promote_degraded)
                 for name, versions in published.items()}
    for run in runs:
        latest = latest_of[run.report].get(run.variant)
        if is_due(config.reports[run.report].schedule, now, latest and latest.created,
                  state.checked(run.report, run.variant)):
            due.append(run)
    return due


def _source_failure(prep: Prepared, job: RunJob) -> RunResult:
    """A run that cannot start because a source it reads failed to load."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    return RunResult(job, "failed", now, now, 0.0, error=RunError("source", prep.source_error))


def build(config: Config, *, reports: list[str] | None = None, overrides: dict[str, str] | None = None,
          jobs: int | None = None, force: bool = False, due: bool = False,
          reporter: Reporter | None = None, wait_s: float = LOCK_WAIT_S) -> BuildSummary:
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
    executor = get_executor(config.site.executor, jobs=jobs or config.site.jobs, scheduler=config.site.scheduler,
                            warm=WarmSettings(config.site.warm_kernels, config.site.preload))
    executor.warm_up(sorted({(run.kernel, run.notebook) for run in runs}))  # while data loads
    provenance.prefetch()  # what the first publish needs, while the first runs execute
    store = Store(config.output_dir)
    summary = BuildSummary(site_dir=config.output_dir)
    with store.lock(wait_s):
        # Only now: a build that waited for another must keep that one's --due marks (the state
        # is saved whole) and stamp its versions after that one's.
        state, now = State(config.project_dir), datetime.now(UTC)
        clean_leftovers(config, store)
        # Each report's manifests, read once (100 variants: 100 reads, not 10,000).
        published = {name: store.versions(name) for name in {run.report for run in runs}}
        if due:
            runs = _due_runs(config, published, state, runs, now)
        install_assets(config.output_dir)
        prepared = _prepare(config, store, runs, version_stamp(now))
        reporter.planned(runs)
        publisher = Publisher(config, store, published)
        to_run = _settle(prepared, publisher, published, force, summary, reporter)
        _execute(config, executor, to_run, publisher, summary, reporter)
        for prep in prepared:
            state.mark_checked(prep.run.report, prep.run.variant, now)
        write_site_if_stale(config, store, state)
        summary.notes += _pinned_notes(store, summary.outcomes)
        summary.notes += _code_still_published(config, store, sorted(published))
        state.save()
        store.clean_staging()
    from .notify import notify_build

    # Versions and pages are in place and the lock is released: a slow or dead notification
    # target delays only this command, never the next publish, and cannot lose a version.
    notify_build(config, summary.outcomes, published)
    return summary


def _pinned_notes(store: Store, outcomes: list[Outcome]) -> list[str]:
    """What the build summary says about variants whose latest a pin holds."""
    notes, pins = [], {}
    for outcome in outcomes:
        if outcome.version is None or not outcome.version.complete:
            continue
        report = outcome.run.report
        pin = (pins.setdefault(report, read_pins(store, report))).get(outcome.run.variant)
        if pin and pin.version != outcome.version_id:
            notes.append(f"{outcome.run.name}: published {outcome.version_id}, but latest stays pinned to "
                         f"{pin.version}{f' by {pin.by}' if pin.by else ''} (`lab2land unpin {report}` releases it)")
    return notes


def _code_still_published(config: Config, store: Store, reports: list[str]) -> list[str]:
    """What the build summary says about built reports with ``publish_notebook = false`` whose
    earlier versions (published before it was turned off, and not pruned) still hold their
    executed notebook."""
    notes = []
    for report in reports:
        if config.reports[report].publish_notebook:
            continue
        holding = [v.version_id for v in store.versions(report) if v.executed_notebook]
        if holding:
            listed = ", ".join(holding[:3]) + (f" and {len(holding) - 3} more" if len(holding) > 3 else "")
            notes.append(f"{report}: publish_notebook = false, but {len(holding)} earlier version(s) still hold "
                         f"their executed notebook (with its code): {listed}. Builds never change a published "
                         f"version: to take that code off the site, delete those folders from "
                         f"{config.output_dir / report} and run `lab2land repair`")
    return notes


def _settle(prepared: list[Prepared], publisher: Publisher, published: dict[str, list[Version]], force: bool,
            summary: BuildSummary, reporter: Reporter) -> list[Prepared]:
    """Decide the runs that need no kernel (unchanged, or a source failed); return the rest."""
    to_run = []
    for prep in prepared:
        same = None if force else _unchanged(prep, published[prep.run.report])
        if same is not None:
            outcome = Outcome(prep.run, "unchanged", same.version_id, 0.0, "nothing changed")
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


def clean_leftovers(config: Config, store: Store) -> None:
    """Remove what a killed publish left: staging and the temporaries of atomic writes (call it
    holding the lock). Published versions are never touched."""
    store.clean_staging()
    remove_temporaries(config.output_dir, config.reports, (config.project_dir / STATE).parent)


def write_site_if_stale(config: Config, store: Store, state: State) -> None:
    """Rewrite the site unless the pages on disk were written from this config, these templates
    and exactly the version folders on disk now.

    Comparing with the versions on disk, not with what this build published, is what makes a
    publish killed between its commits and the site write harmless: the next build finds the
    committed versions "unchanged", but not listed, and writes the pages that list them.
    """
    pages = [config.output_dir / "index.html", config.output_dir / "catalog.json"]
    if state.data.get("site") != site_key(config, store, template_dirs(config)) or not all(p.exists() for p in pages):
        write_site(config, store, state)


def write_site(config: Config, store: Store, state: State, *, prune: bool = True, everything: bool = False) -> dict:
    """Rewrite the catalog and index, and the pages of every report whose versions, pins, config
    or templates changed (all of them with ``everything``), after pruning old versions unless
    ``prune`` is false; then record in ``state`` what the pages were written from."""
    if prune:
        for name, report in config.reports.items():
            keep = report.keep or config.site.keep
            if keep:
                pinned = frozenset(pin.version for pin in read_pins(store, name).values())
                store.prune(name, keep, protect=pinned)
    dirs = template_dirs(config)
    keys, written = report_keys(config, store, dirs), state.data.get("pages", {})
    changed = [name for name in config.reports if everything or written.get(name) != keys[name]
               or not (store.report_dir(name) / "index.html").exists()]
    catalog = SiteWriter(config, dirs).write(changed)
    # Recorded after the pages are in place, and from the listing after pruning: a kill before
    # this line leaves the old keys, so the next build writes the pages again.
    state.data["pages"] = keys
    state.data["site"] = site_key(config, store, dirs, keys)  # the listing has not changed since `keys`
    return catalog
