"""Turn finished runs into published versions: manifest, page, atomic commit."""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Optional

from . import __version__
from .config import Config
from .data import Snapshot
from .execute import RunResult
from .outputs import cap_outputs
from .plan import Run
from .site import dashboard_path
from .store import Store, write_atomic

LOGS = Path(".lab2land") / "logs"  # per report: <version>.log of each run that failed

STACK = ("papermill", "nbconvert", "nbclient", "nbformat", "ipykernel", "jupyter_client", "voila",
         "ipywidgets", "plotly", "pandas", "numpy", "scikit-learn", "sqlalchemy")


@dataclass
class Outcome:
    """What became of one run."""

    run: Run
    status: str  # "ok", "failed" or "unchanged"
    version_id: Optional[str] = None
    duration_s: float = 0.0
    summary: str = ""


def package_versions() -> dict[str, str]:
    """Versions of the stack a version was built with (recorded in every manifest)."""
    found = {"python": platform.python_version(), "lab2land": __version__}
    for name in STACK:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


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
    notebook_sha256: str
    source_error: Optional[str] = None


class Publisher:
    """Turns finished runs into published versions."""

    def __init__(self, config: Config, store: Store):
        self.config, self.store = config, store
        self.packages = package_versions()
        self.templates = template_dirs(config)
        # Longest first, so that a project inside the home folder shows as "<project>".
        folders = {str(config.project_dir): "<project>", sys.prefix: "<python>", sys.base_prefix: "<python>",
                   str(Path.home()): "~"}
        self.private_folders = sorted(((f, s) for f, s in folders.items() if len(f) > 1), key=lambda fs: -len(fs[0]))

    def manifest(self, prep: Prepared, result: RunResult) -> dict:
        run = prep.run
        report = self.config.reports[run.report]
        error = {k: self._public(v) for k, v in result.error.__dict__.items()} if result.error else None
        return {
            "report": run.report, "title": report.title, "variant": run.variant, "variant_label": run.label,
            "version_id": result.job.version_id, "status": result.status, "parameters": run.parameters,
            "created": result.started, "started": result.started, "finished": result.finished,
            "duration_s": result.duration_s, "attempts": result.attempts,
            "notebook": report.notebook, "notebook_sha256": prep.notebook_sha256, "kernel": run.kernel,
            "executed_notebook": run.notebook.name, "error": error,
            "packages": self.packages, "lab2land_version": __version__,
            "sources": [s.record(self.config.project_dir) for s in prep.snapshots], "cache_key": prep.key,
        }

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
        import nbformat

        from .render import render_version  # nbconvert loads only when something is published

        run = prep.run
        manifest = self.manifest(prep, result)
        nb = nbformat.reads(result.notebook_json, as_version=4) if result.notebook_json else nbformat.v4.new_notebook()
        report = self.config.reports[run.report]
        shown = cap_outputs(nb, self.config.site.max_output_mb)
        try:
            page = render_version(shown, self.page_context(run, manifest), show_code=report.show_code,
                                  layout=report.layout, template_dirs=self.templates)
        except Exception as exc:  # a rendering bug must not lose the run: keep it as a failed version
            manifest["status"] = "failed"
            manifest["error"] = {"kind": "render", "summary": f"rendering failed: {type(exc).__name__}: {exc}",
                                 "cell_index": None, "ename": type(exc).__name__, "evalue": str(exc)}
            page = render_version(nbformat.v4.new_notebook(), self.page_context(run, manifest),
                                  template_dirs=self.templates)
        files = {"index.html": page, run.notebook.name: nbformat.writes(nb)}
        self.keep_log(run, manifest["version_id"], result)
        self.store.commit_version(run.report, manifest["version_id"], files, manifest)
        summary = (manifest["error"] or {}).get("summary", "")
        return Outcome(run, manifest["status"], manifest["version_id"], result.duration_s, summary)
