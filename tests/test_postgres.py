"""PostgreSQL for real: SQL sources read from a server started on a free loopback port (see
``tests/pg.py``), a changed row re-running exactly the report that reads it, and the lead-scoring
demo writing its scores into a PostgreSQL table once per version.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy
from nbformat import NotebookNode

from conftest import code_notebook, demo_project, logs_run, runs_logged, write_project
from lab2land.build import build
from lab2land.config import SourceConfig, load_config
from lab2land.data import SourceError, load_source
from lab2land.store import Store, latest_by_variant


def execute(url: str, *statements: str) -> None:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def query(url: str, sql: str) -> list[tuple]:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.exec_driver_sql(sql)]
    finally:
        engine.dispose()


@pytest.fixture
def shop(postgres) -> str:
    """A fresh database with a small ``sales`` table; returns its URL."""
    url = postgres.create_database("shop")
    execute(url, "create table sales (id serial primary key, region text, amount numeric(10,2), day date, "
                 "meta jsonb)",
            """insert into sales (region, amount, day, meta) values
               ('north', 10.50, '2025-01-01', '{"channel":"web"}'), ('south', 7.25, '2025-01-01', null)""")
    return url


def test_sql_source_snapshots_postgres_rows(shop, tmp_path):
    source = SourceConfig(url=shop, sql="select region, amount, day from sales order by id", format="parquet",
                          columns={"region": "str", "amount": "float", "day": "str"})
    first = load_source(tmp_path, "sales", source)
    frame = pd.read_parquet(first.path)
    assert first.rows == 2 and frame["amount"].tolist() == [10.5, 7.25]  # numeric arrives as float
    assert load_source(tmp_path, "sales", source).hash == first.hash
    execute(shop, "create table lead_scores (run_id text)", "insert into lead_scores values ('x')")
    assert load_source(tmp_path, "sales", source).hash == first.hash, "another table changed, not this query"
    execute(shop, "update sales set amount = 11 where region = 'north'")
    assert load_source(tmp_path, "sales", source).hash != first.hash


def test_plain_postgresql_url_and_literal_sql(shop, tmp_path):
    """``postgresql://`` without a driver works with psycopg 3 alone, and the SQL reaches the server as
    written: a JSON literal with ``:1`` and a ``%`` pattern are not parameters."""
    plain = shop.replace("postgresql+psycopg://", "postgresql://")
    sql = """select region, meta->>'channel' as channel, '{"a":1}'::jsonb->>'a' as a from sales
             where region like 'n%' order by id"""
    snapshot = load_source(tmp_path, "web", SourceConfig(url=plain, sql=sql, format="json"))
    assert pd.read_json(snapshot.path).to_dict("records") == [{"region": "north", "channel": "web", "a": 1}]


def test_failing_query_and_missing_database_are_clear(shop, tmp_path, postgres):
    with pytest.raises(SourceError) as info:
        load_source(tmp_path, "s", SourceConfig(url=shop, sql="select revenue from sales"))
    assert str(info.value).startswith(
        f"query failed against {shop}: UndefinedColumn: column \"revenue\" does not exist")
    with pytest.raises(SourceError, match=r'database "nope" does not exist'):
        load_source(tmp_path, "s", SourceConfig(url=postgres.url("nope"), sql="select 1"))


# --- in a build ---------------------------------------------------------------------------------

def tiny_notebook(source: str) -> NotebookNode:
    """A notebook that logs its run to ``runs.log`` and prints the snapshot of ``source``."""
    return code_notebook(f"{source} = ''", logs_run(source, f"print(open({source}).read())"))


def test_changed_postgres_row_reruns_exactly_the_report_reading_it(shop, tmp_path):
    with sqlite3.connect(tmp_path / "local.sqlite") as db:
        db.execute("create table notes (note text)")
        db.execute("insert into notes values ('hello')")
    write_project(tmp_path, {"sales.ipynb": tiny_notebook("sales"), "notes.ipynb": tiny_notebook("notes")}, {
        "sales": {"notebook": "sales.ipynb", "title": "Sales", "sources": ["sales"]},
        "notes": {"notebook": "notes.ipynb", "title": "Notes", "sources": ["notes"]},
    }, sources={"sales": {"url": shop, "sql": "select region, amount from sales order by id"},
                "notes": {"url": "sqlite:///local.sqlite", "sql": "select note from notes"}})
    first = build(load_config(tmp_path), jobs=2)
    assert sorted(o.status for o in first.outcomes) == ["ok", "ok"], [o.summary for o in first.outcomes]
    execute(shop, "update sales set amount = 99 where region = 'south'")
    second = build(load_config(tmp_path), jobs=2)
    assert {o.run.report: o.status for o in second.outcomes} == {"sales": "ok", "notes": "unchanged"}
    assert sorted(runs_logged(tmp_path)) == ["notes", "sales", "sales"]
    assert len(Store(tmp_path / "reports").versions("sales")) == 2
    assert len(Store(tmp_path / "reports").versions("notes")) == 1


# --- lead scores written to PostgreSQL ----------------------------------------------------------

def open_leads(project: Path) -> int:
    return int(pd.read_csv(project / "data" / "leads.csv")["converted"].isna().sum())


def test_lead_scores_are_written_to_postgres_once_per_version(postgres, tmp_path):
    results = postgres.create_database("results").replace("postgresql+psycopg://", "postgresql://")
    demo_project(tmp_path, days=60, start=pd.Timestamp("2025-01-01").date())
    expected = open_leads(tmp_path)
    config = load_config(tmp_path)

    first = build(config, reports=["lead_scoring"], overrides={"results_db": results})
    [outcome] = first.outcomes
    assert outcome.status == "ok", outcome.summary
    v1 = outcome.version_id
    assert query(results, f"select count(*), count(distinct lead_id) from lead_scores where run_id = '{v1}'") \
        == [(expected, expected)]
    [(best,)] = query(results, f"select company from lead_scores where run_id = '{v1}' and rank = 1")
    page = (tmp_path / "reports" / "lead_scoring" / v1 / "index.html").read_text()
    assert f"Saved <strong>{expected:,} scores</strong>" in page and "postgresql" in page and best in page
    assert not sqlite3.connect(tmp_path / "data" / "shop.sqlite").execute(
        "select name from sqlite_master where name = 'lead_scores'").fetchall(), "scores went to PostgreSQL only"

    again = build(config, reports=["lead_scoring"], overrides={"results_db": results})
    assert [o.status for o in again.outcomes] == ["unchanged"]

    forced = build(config, reports=["lead_scoring"], overrides={"results_db": results}, force=True)
    [outcome] = forced.outcomes
    assert outcome.status == "ok" and outcome.version_id != v1
    counts = dict(query(results, "select run_id, count(*) from lead_scores group by run_id"))
    assert counts == {v1: expected, outcome.version_id: expected}, "the old version's rows stay, not doubled"
    latest = latest_by_variant(Store(tmp_path / "reports").versions("lead_scoring"))["default"]
    assert latest.version_id == outcome.version_id

    # Executing a version's run again (same run_id) replaces its rows instead of adding to them.
    import papermill

    [leads] = latest.sources
    papermill.execute_notebook(str(tmp_path / "notebooks" / "lead_scoring.ipynb"), str(tmp_path / "again.ipynb"),
                               parameters={"leads": str(tmp_path / leads.path), "results_db": results, "run_id": v1},
                               cwd=str(tmp_path / "notebooks"), progress_bar=False, kernel_name="python3")
    counts = dict(query(results, "select run_id, count(*) from lead_scores group by run_id"))
    assert counts == {v1: expected, outcome.version_id: expected}
