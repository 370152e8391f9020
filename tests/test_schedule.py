"""Schedules and ``build --due``, and the pieces that call it: the example crontab line (run for
real), the GitHub Actions workflow (its site-restore step run for real against a local server) and
the user docs.
"""

from __future__ import annotations

import functools
import http.server
import json
import re
import shutil
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from croniter import croniter

from conftest import ROOT, StartedRuns, logs_run, run_cli, runs_logged, write_notebook, write_project
from lab2land.build import build
from lab2land.cache import ALIASES, STATE, cron_expression, is_due, last_due, schedule_problem
from lab2land.config import ConfigError, ReportConfig, SourceConfig, load_config
from lab2land.store import MANIFEST, Store

UTC = UTC


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- schedule arithmetic -------------------------------------------------------------------------

@pytest.mark.parametrize("schedule, expression", [
    ("daily", "@daily"), (" Hourly ", "@hourly"), ("weekly", "@weekly"), ("0 6 * * *", "0 6 * * *")])
def test_aliases_expand_to_cron(schedule, expression):
    assert cron_expression(schedule) == expression and schedule_problem(schedule) is None


@pytest.mark.parametrize("schedule", ["every day", "61 * * * *", "0 6 * *", "", "@sometimes"])
def test_invalid_schedules_are_explained(schedule):
    problem = schedule_problem(schedule)
    assert problem and 'expected cron syntax like "0 6 * * *" or one of hourly, daily' in problem
    assert repr(schedule) in problem


def test_last_due_includes_the_exact_firing_moment():
    assert last_due("0 6 * * *", at("2025-03-10 06:00:00")) == at("2025-03-10 06:00:00")
    assert last_due("0 6 * * *", at("2025-03-10 05:59:59")) == at("2025-03-09 06:00:00")
    assert last_due("daily", at("2025-03-10 13:30:00")) == at("2025-03-10 00:00:00")
    assert last_due("hourly", at("2025-03-10 13:30:00")) == at("2025-03-10 13:00:00")


NOW = at("2025-03-10 07:00:00")


@pytest.mark.parametrize("schedule, last_good, checked, due", [
    (None, None, None, False),                                      # no schedule: never due
    ("0 6 * * *", None, None, True),                                # never published: due
    ("0 6 * * *", "2025-03-10T05:00:00+00:00", None, True),         # fired at 06:00 since
    ("0 6 * * *", "2025-03-10T06:00:30+00:00", None, False),        # published after it fired
    ("0 6 * * *", "2025-03-09T05:00:00+00:00", at("2025-03-10 06:05:00"), False),  # checked since
    ("0 6 * * *", "2025-03-09T05:00:00+00:00", at("2025-03-10 05:55:00"), True),   # checked before
    ("hourly", "2025-03-10T06:59:00", None, True),                  # naive times are UTC
    ("0 6 1 1 *", "2025-01-01T06:00:01+00:00", None, False),        # yearly, not yet again
    ("0 6 1 1 *", "2024-12-31T23:00:00+00:00", None, True),         # yearly, fired since
])
def test_is_due(schedule, last_good, checked, due):
    assert is_due(schedule, NOW, last_good, checked) is due


def test_config_rejects_a_bad_schedule_with_the_key(tmp_path):
    write_logging_notebook(tmp_path / "r.ipynb")
    write_project(tmp_path, reports={"r": {"notebook": "r.ipynb", "title": "R", "schedule": "at six"}})
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert info.value.problems == ["publish.toml: reports.r.schedule: expected cron syntax like \"0 6 * * *\" or "
                                   "one of hourly, daily, weekly, monthly, got 'at six'"]
    result = run_cli("build", "--due", project=tmp_path)
    assert result.returncode == 2 and "reports.r.schedule" in result.stderr


# --- build --due on real kernels ----------------------------------------------------------------

REPORTS = {
    # published long ago (the test backdates it): due
    "old": {"notebook": "nb/old.ipynb", "title": "Old", "schedule": "0 0 1 1 *"},
    # published just now, fires once a year: not due
    "fresh": {"notebook": "nb/fresh.ipynb", "title": "Fresh", "schedule": "0 0 1 1 *"},
    "never": {"notebook": "nb/never.ipynb", "title": "Never", "schedule": "hourly"},  # never published: due
    "manual": {"notebook": "nb/manual.ipynb", "title": "Manual"},  # no schedule: never run by --due
}


def write_logging_notebook(path: Path, extra: str = "") -> Path:
    """A notebook that logs each run, as its file name, to ``runs.log``; then runs ``extra``."""
    return write_notebook(path, "label = ''", logs_run(path.stem, extra))


def backdate(project: Path, report: str, years: int = 2) -> None:
    """Make ``report``'s versions and its last check look ``years`` old."""
    then = datetime.now(UTC) - timedelta(days=365 * years)
    for manifest_path in (project / "reports" / report).glob(f"2*/{MANIFEST}"):
        manifest = json.loads(manifest_path.read_text())
        manifest["created"] = manifest["started"] = then.isoformat(timespec="seconds")
        manifest_path.write_text(json.dumps(manifest))
    state = json.loads((project / STATE).read_text())
    state["checked"] = {k: (then.isoformat(timespec="seconds") if k.startswith(f"{report}/") else v)
                        for k, v in state["checked"].items()}
    (project / STATE).write_text(json.dumps(state))


@pytest.fixture(scope="module")
def scheduled(tmp_path_factory) -> Path:
    """``old`` and ``fresh`` published once (two kernels), then ``old`` made two years old."""
    project = tmp_path_factory.mktemp("schedule") / "project"
    for name in ("old", "fresh", "never", "manual"):
        write_logging_notebook(project / "nb" / f"{name}.ipynb")
    write_project(project, reports=REPORTS)
    summary = build(load_config(project), reports=["old", "fresh"], jobs=2)
    assert [o.status for o in summary.outcomes] == ["ok", "ok"], [o.summary for o in summary.outcomes]
    backdate(project, "old")
    return project


@pytest.fixture
def project(scheduled, tmp_path) -> Path:
    return Path(shutil.copytree(scheduled, tmp_path / "project"))


def test_due_selects_only_reports_whose_schedule_fired(project):
    recorder = StartedRuns()
    summary = build(load_config(project), due=True, reporter=recorder)
    statuses = {o.run.report: o.status for o in summary.outcomes}
    # `old` is due but nothing changed: the cache answers, no kernel starts.
    assert statuses == {"old": "unchanged", "never": "ok"}, [o.summary for o in summary.outcomes]
    assert recorder.started_runs == ["never"]
    assert sorted(runs_logged(project / "nb")) == ["fresh", "never", "old"]  # the fixture ran old and fresh
    store = Store(project / "reports")
    assert store.versions("manual") == [] and len(store.versions("fresh")) == 1 and len(store.versions("old")) == 1

    # Called again right away (as cron does every few minutes): nothing is due, nothing runs.
    recorder = StartedRuns()
    again = build(load_config(project), due=True, reporter=recorder)
    assert recorder.started_runs == [] and {o.status for o in again.outcomes} <= {"unchanged"}
    state = json.loads((project / STATE).read_text())
    assert datetime.fromisoformat(state["checked"]["old/default"]) > datetime.now(UTC) - timedelta(minutes=5)


def test_crontab_line_runs_due_reports(project):
    """The example crontab's build line, run by a shell as cron would, in a copy of the project."""
    line = next(text for text in (ROOT / "deploy" / "crontab.example").read_text().splitlines()
                if text.strip() and not text.startswith("#") and "build --due" in text)
    fields = line.split(None, 5)
    assert croniter.is_valid(" ".join(fields[:5])) and croniter(" ".join(fields[:5])).get_next() > 0
    (project / ".venv").symlink_to(ROOT / ".venv")  # the line runs the project's .venv/bin/python
    shutil.copy(ROOT / "publish.py", project / "publish.py")
    write_logging_notebook(project / "nb" / "old.ipynb", extra="print('changed')")  # due and changed: runs
    command = fields[5].replace("/srv/acme-reports", str(project)).replace("/tmp/acme-reports.lock",
                                                                          str(project / "cron.lock"))
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=300)
    log = (project / "cron.log").read_text()
    assert result.returncode == 0, log
    assert re.search(r"old ok", log) and re.search(r"never ok", log) and "fresh" not in log and "manual" not in log
    store = Store(project / "reports")
    assert len(store.versions("old")) == 2 and len(store.versions("never")) == 1
    assert len(store.versions("fresh")) == 1 and store.versions("manual") == []


# --- GitHub Actions workflow ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load((ROOT / ".github" / "workflows" / "publish.yml").read_text())


def steps(job: dict) -> list[dict]:
    return job["steps"]


def test_workflow_builds_due_reports_on_a_schedule_and_deploys_to_pages(workflow):
    triggers = workflow[True]  # YAML reads the key `on` as True
    [schedule] = triggers["schedule"]
    assert croniter.is_valid(schedule["cron"]) and "workflow_dispatch" in triggers
    build_job, deploy_job = workflow["jobs"]["build"], workflow["jobs"]["deploy"]
    runs = "\n".join(s.get("run", "") for s in steps(build_job))
    assert "publish.py build" in runs and "--due" in runs
    uses = [s.get("uses", "") for s in steps(build_job)]
    assert any(u.startswith("actions/upload-pages-artifact@") for u in uses)
    assert [s for s in steps(build_job) if s.get("uses", "").startswith("actions/upload-pages-artifact")][0][
        "with"]["path"] == "reports"
    assert deploy_job["needs"] == "build" and deploy_job["environment"]["name"] == "github-pages"
    assert deploy_job["permissions"]["pages"] == "write" and deploy_job["permissions"]["id-token"] == "write"
    assert any(s.get("uses", "").startswith("actions/deploy-pages@") for s in steps(deploy_job))
    # History survives: the site and the cache state are restored before the build and saved after.
    restore = next(s for s in steps(build_job) if s.get("uses", "").startswith("actions/cache/restore@"))
    save = next(s for s in steps(build_job) if s.get("uses", "").startswith("actions/cache/save@"))
    for step in (restore, save):
        assert {"reports", ".lab2land"} <= set(step["with"]["path"].split())
    order = [s.get("id") or s.get("uses") or s.get("name") for s in steps(build_job)]
    assert order.index("restore") < order.index("build") < order.index(save["uses"])


def serve_folder(folder: Path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_workflow_restores_history_from_the_deployed_site(scheduled, tmp_path, workflow):
    """The workflow's fallback step, run for real against the built site served on loopback: it
    brings back every version, and the next build keeps them and rewrites the site pages."""
    step = next(s for s in steps(workflow["jobs"]["build"]) if " restore " in s.get("run", ""))
    assert step["run"].split(" restore ")[1].strip() == '"${{ steps.pages.outputs.base_url }}"'
    new = tmp_path / "runner"
    shutil.copytree(scheduled, new, ignore=shutil.ignore_patterns("reports", ".lab2land"))
    server = serve_folder(scheduled / "reports")
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        done = run_cli("restore", url, project=new, timeout=120)
        again = run_cli("restore", url, project=new, timeout=120)
    finally:
        server.shutdown()
    assert done.returncode == 0 and "restored 2 version(s)" in done.stderr, done.stdout + done.stderr
    assert again.returncode == 0 and "restored 0 version(s)" in again.stderr and "2 already here" in again.stderr
    original = Store(scheduled / "reports")
    restored = Store(new / "reports")
    for report in ("old", "fresh"):
        assert [v.version_id for v in restored.versions(report)] == \
            [v.version_id for v in original.versions(report)]
    summary = build(load_config(new), reports=["fresh"])  # nothing changed: the restored version counts
    assert [o.status for o in summary.outcomes] == ["unchanged"]
    catalog = json.loads((new / "reports" / "catalog.json").read_text())
    assert catalog["reports"]["old"]["variants"]["default"]["latest"] == original.versions("old")[0].version_id


# --- docs ----------------------------------------------------------------------------------------

def test_docs_cover_every_source_and_schedule_setting():
    docs = (ROOT / "docs" / "data-and-schedules.md").read_text()
    for key in SourceConfig.model_fields:
        assert f"`{key}`" in docs, f"docs/data-and-schedules.md does not document sources key `{key}`"
    for key in ("sources", "schedule"):
        assert key in ReportConfig.model_fields and f"`{key}`" in docs
    for alias in ALIASES:
        assert f'"{alias}"' in docs or f"`{alias}`" in docs
    for text in ("--due", "--force", "demo-data --advance 1d", "crontab.example", "publish.yml", "UTC"):
        assert text in docs, f"docs/data-and-schedules.md does not mention {text}"
