"""Turn finished runs into published versions: manifest, page, atomic commit."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .checks import evaluate
from .config import Config
from .data import Snapshot
from .diff import diff_versions, published_notebook
from .execute import RunResult
from .metrics import extract
from .outputs import cap_outputs, without_scraps
from .plan import Run
from .provenance import package_versions
from .search import VERSION_TEXT, version_text_json
from .site import dashboard_path
from .store import Store, previous_complete, safe_file_name, write_atomic
from .version import MANIFEST_SCHEMA, Breach, Changes, Status, Version, VersionError

LOGS = Path(".lab2land") / "logs"  # per report: <version>.log of each run that failed


@dataclass
class Outcome:
    """What became of one run."""

    run: Run
    status: str  # a Status value, or "unchanged"
    version_id: str | None = None
    duration_s: float = 0.0
    summary: str = ""
    version: Version | None = None  # the version published (None for "unchanged")


def template_dirs(config: Config) -> list[Path] | None:
    """Project template overrides, searched before lab2land's own templates."""
    return [config.project_dir / config.site.templates] if config.site.templates else None


@dataclass
class Prepared:
    """A planned run with its version id, data snapshots and cache key."""

    run: Run
    version_id: str
    snapshots: list[Snapshot]
    key: str
    notebook_sha256: str
    source_error: str | None = None


class Publisher:
    """Turns finished runs into published versions."""

    def __init__(self, config: Config, store: Store, published: dict[str, list[Version]] | None = None):
        self.config, self.store = config, store
        self.templates = template_dirs(config)
        # Each report's versions, newest first (the build's own reading, when it has one).
        self.versions: dict[str, list[Version]] = published if published is not None else {}
        # Longest first, so that a project inside the home folder shows as "<project>".
        folders = {str(config.project_dir): "<project>", sys.prefix: "<python>", sys.base_prefix: "<python>",
                   str(Path.home()): "~"}
        self.private_folders = sorted(((f, s) for f, s in folders.items() if len(f) > 1), key=lambda fs: -len(fs[0]))

    def new_version(self, prep: Prepared, result: RunResult) -> Version:
        """The version ``result`` becomes (its status may still turn degraded or failed)."""
        run = prep.run
        report = self.config.reports[run.report]
        error = {k: self._public(v) for k, v in result.error.__dict__.items()} if result.error else None
        return Version.model_validate({
            "schema": MANIFEST_SCHEMA,
            "report": run.report, "title": report.title, "variant": run.variant, "variant_label": run.label,
            "version_id": result.job.version_id, "status": result.status, "parameters": run.parameters,
            "created": result.started, "started": result.started, "finished": result.finished,
            "duration_s": result.duration_s, "attempts": result.attempts,
            "notebook": report.notebook, "notebook_sha256": prep.notebook_sha256, "kernel": run.kernel,
            "executed_notebook": safe_file_name(run.notebook.name) if report.publish_notebook else "", "error": error,
            "lab2land_version": __version__,
            "sources": [s.record(self.config.project_dir) for s in prep.snapshots], "cache_key": prep.key,
        })

    def _published(self, report: str) -> list[Version]:
        """The report's versions, newest first: read once per build, then kept up to date."""
        if report not in self.versions:
            self.versions[report] = self.store.versions(report)
        return self.versions[report]

    def _changes(self, run: Run, version: Version, nb) -> dict[str, str]:
        """``changes.html``: what changed since the variant's previous complete version (none
        for a failed run, whose outputs stop early, or for a variant's first version)."""
        from .render import render_site_page

        previous = previous_complete(self._published(run.report), run.variant)
        if previous is None or not version.complete:
            return {}
        # Without the previous executed notebook (publish_notebook = false) outputs cannot be
        # compared: compare parameters, data and metrics only, not every output as new.
        old_nb = (published_notebook(self.config.output_dir, run.report, previous)
                  if previous.executed_notebook else None)
        found = diff_versions(run.report, previous, version, old_nb or {"cells": []}, nb if old_nb else {"cells": []})
        version.previous = previous.version_id
        version.changes = Changes(parameters=len(found.parameters), data=len(found.snapshots),
                                  metrics=len(found.metrics), outputs=len(found.cells))
        report = self.config.reports[run.report]
        page = render_site_page("changes.html.j2", {
            "site": {"title": self.config.site.title}, "generated": version.finished, "assets": "../../assets/",
            "site_url": "../../index.html", "history_url": "../index.html",
            "previous_url": f"../{previous.folder}/index.html", "report": {"title": report.title},
            "diff": found,
        }, template_dirs=self.templates)
        return {"changes.html": page}

    @staticmethod
    def _judge(version: Version, nb, report) -> None:
        """Record the run's metrics in the version and check them: a run that breaches a check
        of its report becomes ``degraded``."""
        metrics = extract(nb.cells)
        version.metrics = {name: m.to_json() for name, m in metrics.items()}
        version.breaches = []
        if version.status is Status.OK and report.checks:
            version.breaches = [Breach.model_validate(b.to_json()) for b in evaluate(report.checks, metrics)]
            if version.breaches:
                version.status = Status.DEGRADED

    def _public(self, value):
        """``value`` as readers may see it: no folder of the build machine (the project, the
        Python installation, the home folder) appears in a manifest or a page."""
        if not isinstance(value, str):
            return value
        for folder, shown in self.private_folders:
            value = value.replace(folder, shown)
        return value

    def keep_log(self, run: Run, version_id: str, result: RunResult) -> None:
        """A failed run's error and log, unredacted (tracebacks, paths), stay with the operator in
        ``.lab2land/logs/``, beside the site and never in it."""
        if result.error is None:
            return
        text = f"{run.name} {version_id}: {result.error.kind}: {result.error.summary}\n{result.log_tail or ''}"
        write_atomic(self.config.project_dir / LOGS / run.report / f"{version_id}.log", text.rstrip() + "\n")

    def page_context(self, run: Run, version: Version) -> dict:
        report = self.config.reports[run.report]
        return {
            "site_title": self.config.site.title,
            "report": {"name": run.report, "title": report.title, "description": report.description,
                       "tags": report.tags},
            "version": {"id": version.version_id, "variant": run.variant, "variant_label": run.label,
                        "status": version.status.value, "parameters": run.parameters, "created": version.created,
                        "duration_s": version.duration_s,
                        "error": version.error.model_dump() if version.error else None,
                        "data_taken": version.data_taken, "metrics": version.metrics,
                        "breaches": [b.model_dump() for b in version.breaches],
                        "promoted": report.promote_degraded},
            "provenance": {"notebook": report.notebook, "notebook_sha256": version.notebook_sha256,
                           "kernel": run.kernel, "lab2land_version": __version__,
                           "sources": [s.model_dump() for s in version.sources],
                           "packages": version.packages},
            "links": {"site": "../../index.html", "history": "../index.html",
                      "latest": f"../latest/{run.variant}.html",
                      "notebook": safe_file_name(run.notebook.name) if report.publish_notebook else None,
                      "dashboard": f"../../{dashboard_path(run.report)}" if report.dashboard else None,
                      "versions_js": "../versions.js",
                      "changes": "changes.html" if version.previous else None},
            "assets": "../../assets/",
        }

    def publish(self, prep: Prepared, result: RunResult) -> Outcome:
        """Render ``result`` and commit it as a new version (a failed run becomes a failed version)."""
        import nbformat

        from .render import render_version  # nbconvert loads only when something is published

        run = prep.run
        version = self.new_version(prep, result)
        nb = nbformat.reads(result.notebook_json, as_version=4) if result.notebook_json else nbformat.v4.new_notebook()
        report = self.config.reports[run.report]
        version.packages = package_versions(nb)  # what this notebook imported (lab2land.provenance)
        self._judge(version, nb, report)
        changes = self._changes(run, version, nb)
        shown = cap_outputs(without_scraps(nb), self.config.site.max_output_mb)
        try:
            page = render_version(shown, self.page_context(run, version), show_code=report.show_code,
                                  layout=report.layout, template_dirs=self.templates,
                                  notebook_dir=run.notebook.parent)
        except Exception as exc:  # a rendering bug must not lose the run: keep it as a failed version
            version.status = Status.FAILED
            version.error = VersionError(kind="render", summary=f"rendering failed: {type(exc).__name__}: {exc}",
                                         ename=type(exc).__name__, evalue=str(exc))
            version.previous, version.changes, changes = None, None, {}
            page = render_version(nbformat.v4.new_notebook(), self.page_context(run, version),
                                  template_dirs=self.templates)
        files = {"index.html": page, **changes, VERSION_TEXT: version_text_json(nb)}  # its text, for site search
        if report.publish_notebook:  # false: the executed notebook (and its code) stays off the site
            # As the run wrote it: nbformat.writes would validate it all again (~40 ms a run).
            files[safe_file_name(run.notebook.name)] = result.notebook_json or nbformat.writes(nb)
        self.keep_log(run, version.version_id, result)
        self.store.commit_version(version, files)
        self._published(run.report).insert(0, version)
        return Outcome(run, version.status.value, version.version_id, result.duration_s, version.summary, version)
