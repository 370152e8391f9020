"""The rebuild cache, for real: tiny notebooks on real kernels reading real SQLite sources.

Each notebook appends a line to ``runs.log`` beside it every time a kernel executes it, so "no
kernel started" is checked three ways: no ``started`` event, no new version folder, and no new
line in the log.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import tomllib
from datetime import date
from pathlib import Path

import nbformat
import pytest
from nbformat import NotebookNode, v4

from conftest import ROOT, StartedRuns, code_notebook, logs_run, run_cli, runs_logged, save_notebook, write_project
from lab2land import demo
from lab2land.build import build
from lab2land.cache import cache_key
from lab2land.config import load_config
from lab2land.store import Store

SALES_SQL = "select day, region, amount from sales order by day, region"
SOURCES = {
    "sales": {"url": "sqlite:///data/shop.sqlite", "sql": SALES_SQL, "columns": {"day": "str", "amount": "float"}},
    "regions": {"url": "sqlite:///data/shop.sqlite", "sql": "select name from regions order by name"},
}
REPORTS = {
    "revenue": {"notebook": "nb/revenue.ipynb", "title": "Revenue", "sources": ["sales"]},
    "regions": {"notebook": "nb/regions.ipynb", "title": "Regions", "sources": ["regions"]},
    "hello": {"notebook": "nb/hello.ipynb", "title": "Hello", "parameters": {"greeting": "hi"}},
}


def logging_notebook(name: str, parameters: str, body: str = "") -> NotebookNode:
    """A tiny notebook that logs each execution, as ``name``, to ``runs.log`` in its folder."""
    return code_notebook(parameters, logs_run(name, body))


def make_project(root: Path) -> Path:
    (root / "data").mkdir(parents=True)
    with sqlite3.connect(root / "data" / "shop.sqlite") as db:
        db.execute("create table sales (day text, region text, amount real)")
        db.executemany("insert into sales values (?, ?, ?)",
                       [("2025-01-01", "north", 10.5), ("2025-01-01", "south", 7.0), ("2025-01-02", "north", 3.0)])
        db.execute("create table regions (name text)")
        db.executemany("insert into regions values (?)", [("north",), ("south",)])
    notebooks = {
        "nb/revenue.ipynb": logging_notebook(
            "revenue", "sales = ''", "print(sum(float(l.split(',')[2]) for l in open(sales).read().splitlines()[1:]))"),
        "nb/regions.ipynb": logging_notebook("regions", "regions = ''", "print(open(regions).read())"),
        "nb/hello.ipynb": logging_notebook("hello", "greeting = 'hello'", "print(greeting)"),
    }
    return write_project(root, notebooks, REPORTS, site={"title": "Cache test"}, sources=SOURCES)


def version_dirs(project: Path) -> set[str]:
    return {f"{p.parent.name}/{p.name}" for p in (project / "reports").glob("*/2*") if p.is_dir()}


class Statuses(dict):
    """Outcome status by report; its repr also shows why runs failed (for assertion messages)."""

    def __repr__(self) -> str:
        return f"{dict(self)!r} {self.why!r}" if self.why else repr(dict(self))


def rebuild(project: Path, **kwargs):
    """Build again and return (statuses by report, reports whose kernel started, new version folders)."""
    before, log_before = version_dirs(project), runs_logged(project / "nb")
    recorder = StartedRuns()
    summary = build(load_config(project), reporter=recorder, jobs=2, **kwargs)
    ran = runs_logged(project / "nb")[len(log_before):]
    statuses = Statuses((o.run.report, o.status) for o in summary.outcomes)
    statuses.why = {o.run.report: o.summary for o in summary.outcomes if o.status == "failed"}
    statuses.notes = summary.notes
    assert sorted(ran) == sorted(recorder.started_runs), f"runs.log and started events disagree: {statuses!r}"
    return statuses, sorted(recorder.started_runs), version_dirs(project) - before


def update(project: Path, sql: str, *args) -> None:
    with sqlite3.connect(project / "data" / "shop.sqlite") as db:
        db.execute(sql, args)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """The project after one cold build (three kernels)."""
    project = make_project(tmp_path_factory.mktemp("cache") / "project")
    statuses, started, new = rebuild(project)
    assert statuses == {"revenue": "ok", "regions": "ok", "hello": "ok"}
    assert started == ["hello", "regions", "revenue"] and len(new) == 3
    return project


@pytest.fixture
def project(built, tmp_path) -> Path:
    """A private copy of the built project for one test to change."""
    return Path(shutil.copytree(built, tmp_path / "project"))


def test_second_build_with_nothing_changed_starts_no_kernel(project):
    statuses, started, new = rebuild(project)
    assert statuses == {"revenue": "unchanged", "regions": "unchanged", "hello": "unchanged"}
    assert started == [] and new == set()


def test_changed_row_reruns_only_the_report_reading_it(project):
    update(project, "update sales set amount = 11.5 where day = '2025-01-01' and region = 'north'")
    statuses, started, new = rebuild(project)
    assert statuses == {"revenue": "ok", "regions": "unchanged", "hello": "unchanged"}
    assert started == ["revenue"] and [v.split("/")[0] for v in new] == ["revenue"]
    # The new version records the new snapshot; the old one keeps its own.
    newest, previous = Store(project / "reports").versions("revenue")[:2]
    assert newest.sources[0].hash != previous.sources[0].hash
    assert newest.sources[0].rows == 3 and newest.sources[0].name == "sales"


def test_write_outside_the_query_changes_nothing(project):
    """Rows the query does not select (another table, a filtered-out column) do not re-run anything."""
    update(project, "create table lead_scores (run_id text, score real)")
    update(project, "insert into lead_scores values ('x', 0.5)")
    update(project, "alter table sales add column note text")
    update(project, "update sales set note = 'checked'")
    statuses, started, _ = rebuild(project)
    assert set(statuses.values()) == {"unchanged"} and started == []


def test_changed_parameter_reruns_that_report(project):
    toml = project / "publish.toml"
    toml.write_text(toml.read_text().replace('greeting = "hi"', 'greeting = "hey"'))
    statuses, started, _ = rebuild(project)
    assert statuses == {"revenue": "unchanged", "regions": "unchanged", "hello": "ok"} and started == ["hello"]
    # A -p override is a parameter change too, for the selected report only.
    statuses, started, _ = rebuild(project, reports=["hello"], overrides={"greeting": "yo"})
    assert statuses == {"hello": "ok"} and started == ["hello"]
    statuses, started, _ = rebuild(project, reports=["hello"], overrides={"greeting": "yo"})
    assert statuses == {"hello": "unchanged"} and started == []


def test_changed_notebook_reruns_that_report(project):
    nb_path = project / "nb" / "regions.ipynb"
    nb = nbformat.read(str(nb_path), as_version=4)
    nb.cells.append(v4.new_markdown_cell("A new explanation."))
    save_notebook(nb, nb_path)
    statuses, started, _ = rebuild(project)
    assert statuses == {"revenue": "unchanged", "regions": "ok", "hello": "unchanged"} and started == ["regions"]


def test_force_reruns_even_when_nothing_changed(project):
    statuses, started, new = rebuild(project, reports=["hello"], force=True)
    assert statuses == {"hello": "ok"} and started == ["hello"] and len(new) == 1


def test_failed_newest_version_is_retried_not_treated_as_unchanged(project):
    """A run that failed is never "unchanged": fixing the data re-runs it; the good version stays latest."""
    update(project, "alter table sales rename column amount to amt")
    statuses, started, _ = rebuild(project, reports=["revenue"])
    assert statuses == {"revenue": "failed"} and started == []  # the source failed: no kernel at all
    latest = (project / "reports" / "revenue" / "latest" / "default.html")
    good = sorted(p.name for p in (project / "reports" / "revenue").glob("2*"))[0]
    if latest.exists():
        assert good in latest.read_text()
    update(project, "alter table sales rename column amt to amount")
    statuses, started, _ = rebuild(project, reports=["revenue"])
    assert statuses == {"revenue": "ok"} and started == ["revenue"]


@pytest.mark.parametrize(("option", "value"), [("publish_notebook", False), ("show_code", True), ("layout", "grid")])
def test_a_changed_page_option_republishes_that_report(project, option, value):
    """Found trying it as a new user would: setting ``publish_notebook = false`` (or showing the
    code) and building again said "unchanged", and the site kept showing what the user had just
    turned off. The run's page depends on these options, so they are part of its key."""
    config = project / "publish.toml"
    literal = {False: "false", True: "true"}.get(value, f'"{value}"')
    config.write_text(config.read_text().replace('title = "Hello"', f'title = "Hello"\n{option} = {literal}'))
    statuses, started, new = rebuild(project)
    assert statuses == {"revenue": "unchanged", "regions": "unchanged", "hello": "ok"} and started == ["hello"]
    [version] = [project / "reports" / name for name in new]
    page = (version / "index.html").read_text()
    if option == "publish_notebook":
        assert not list(version.glob("*.ipynb")) and not re.findall(r'href="[^"]*\.ipynb"', page)
    elif option == "show_code":
        assert "runs.log" in page  # the cell's code (outputs never show it)
    statuses, started, new = rebuild(project)  # and then it is unchanged again
    assert statuses["hello"] == "unchanged" and started == [] and not new
    if option == "publish_notebook":  # the version published before still holds it: said, and how to fix it
        [note] = statuses.notes
        assert note.startswith("hello: publish_notebook = false, but 1 earlier version(s)")
        [old] = [p.parent for p in (project / "reports" / "hello").glob("*/*.ipynb")]
        assert old.name in note and "lab2land repair" in note
        shutil.rmtree(old)  # as the note says
        assert run_cli("repair", project=project, timeout=120).returncode == 0
        statuses, started, _ = rebuild(project)
        assert started == [] and statuses.notes == []
        assert not list((project / "reports" / "hello").rglob("*.ipynb"))


KEY_PARTS = dict(notebook_sha256="n" * 64, parameters={"a": 1, "b": [1, 2]}, snapshots={"s": "h" * 64},
                 kernel="python3", template="t", environment="e")


@pytest.mark.parametrize("part, value", [
    ("notebook_sha256", "m" * 64), ("parameters", {"a": 2, "b": [1, 2]}), ("parameters", {"a": 1, "b": [2, 1]}),
    ("snapshots", {"s": "g" * 64}), ("snapshots", {"s": "h" * 64, "t": "h" * 64}), ("kernel", "ir"),
    ("template", "u"), ("environment", "f"),
])
def test_every_part_of_the_key_changes_it(part, value):
    assert cache_key(**{**KEY_PARTS, part: value}) != cache_key(**KEY_PARTS)


def test_key_ignores_dict_order_and_is_stable():
    reordered = {**KEY_PARTS, "parameters": {"b": [1, 2], "a": 1}}
    assert cache_key(**reordered) == cache_key(**KEY_PARTS)


# --- the demo's fresh-data story, through the CLI ----------------------------------------------

def test_demo_data_advance_rebuilds_only_reports_whose_data_changed(tmp_path):
    """`demo-data --advance 1d` then `build`: the report reading daily sales gets a new version; one
    reading the (unchanging) demo settings table stays as it is.

    The demo's sales source keeps complete Monday-Sunday weeks, so the data runs to Saturday
    2026-01-17 and the advanced day is Sunday 2026-01-18, which completes a week."""
    demo.generate(tmp_path, days=17, start=date(2026, 1, 1))
    sources = tomllib.loads((ROOT / "publish.toml").read_text())["sources"]  # the demo's real sources
    sources["meta"] = {"url": "sqlite:///data/shop.sqlite", "sql": "select key, value from demo_meta order by key"}
    write_project(tmp_path, {
        "nb/sales.ipynb": logging_notebook("sales", "daily_sales = ''", "print(open(daily_sales).read()[:80])"),
        "nb/seed.ipynb": logging_notebook("seed", "meta = ''", "print(open(meta).read())"),
    }, {
        "sales": {"notebook": "nb/sales.ipynb", "title": "Sales", "sources": ["daily_sales"]},
        "seed": {"notebook": "nb/seed.ipynb", "title": "Seed", "sources": ["meta"]},
    }, sources=sources)
    statuses, started, _ = rebuild(tmp_path)
    assert statuses == {"sales": "ok", "seed": "ok"}, statuses

    advanced = run_cli("demo-data", "--advance", "1d", project=tmp_path)
    assert advanced.returncode == 0 and "demo data advanced" in advanced.stderr, advanced.stderr
    built = run_cli("build", project=tmp_path)
    assert built.returncode == 0, built.stderr
    out = " ".join(built.stderr.split())
    assert "sales ok" in out and "seed unchanged" in out
    assert runs_logged(tmp_path / "nb").count("sales") == 2 and runs_logged(tmp_path / "nb").count("seed") == 1
    store = Store(tmp_path / "reports")
    newest, first = store.versions("sales")
    assert newest.sources[0].rows == first.sources[0].rows + 7 * 20  # a week x 4 regions x 5 products
    assert len(store.versions("seed")) == 1
    # Monday's activity starts a new, incomplete week: nothing the reports read has changed.
    assert run_cli("demo-data", "--advance", "1d", project=tmp_path).returncode == 0
    again = " ".join(run_cli("build", project=tmp_path).stderr.split())
    assert "sales unchanged" in again and "seed unchanged" in again


def test_environment_fingerprint_follows_installed_versions(tmp_path, monkeypatch):
    from lab2land.cache import environment_fingerprint

    def fingerprint() -> str:
        environment_fingerprint.cache_clear()
        return environment_fingerprint()

    try:
        base = fingerprint()
        (tmp_path / "tiny_lib-1.0.dist-info").mkdir()
        monkeypatch.syspath_prepend(str(tmp_path))
        installed = fingerprint()
        (tmp_path / "tiny_lib-1.0.dist-info").rename(tmp_path / "tiny_lib-1.1.dist-info")
        upgraded = fingerprint()
        (tmp_path / "tiny_lib-1.1.dist-info").rmdir()
        (tmp_path / "Tiny.Lib.egg-info").mkdir()  # a develop install: the version is inside
        (tmp_path / "Tiny.Lib.egg-info" / "PKG-INFO").write_text(
            "Metadata-Version: 2.1\nName: Tiny.Lib\nVersion: 1.1\n")
        egg = fingerprint()
        assert len({base, installed, upgraded}) == 3 and egg == upgraded  # same name and version
    finally:
        environment_fingerprint.cache_clear()
