"""Data sources → content-hashed snapshots: files, folders, SQLite queries and loader scripts, and
how a broken source fails exactly the runs that read it (the CLI's exit codes included).

Most tests load sources directly (no kernel); the build tests use tiny notebooks on real kernels.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from bs4 import BeautifulSoup
from nbformat import NotebookNode

from conftest import code_notebook, free_port, run_cli, write_project
from lab2land.build import build
from lab2land.config import SourceConfig, load_config
from lab2land.data import SNAPSHOTS, SourceError, load_source, prune_snapshots, resolve_url
from lab2land.store import Store, latest_by_variant


def snap(project: Path, name: str = "src", **source):
    return load_source(project, name, SourceConfig(**source))


def make_db(path: Path, rows=(("north", 10), ("south", 7))) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.execute("create table sales (region text, amount integer, day text)")
        db.executemany("insert into sales values (?, ?, '2025-01-01')", rows)
    return path


# --- files and folders --------------------------------------------------------------------------

def test_file_snapshot_is_content_addressed(tmp_path):
    (tmp_path / "leads.csv").write_text('id,company\n1,"Acme\nEurope"\n2,Beta\n')
    first = snap(tmp_path, path="leads.csv")
    assert first.kind == "path" and first.rows == 2  # records, not lines: a quoted field spans two lines
    assert Path(first.path).parent == tmp_path / SNAPSHOTS and first.hash[:16] in Path(first.path).name
    assert Path(first.path).read_bytes() == (tmp_path / "leads.csv").read_bytes()
    again = snap(tmp_path, path="leads.csv")
    assert (again.hash, again.path) == (first.hash, first.path)
    (tmp_path / "leads.csv").write_text('id,company\n1,"Acme\nEurope"\n2,Gamma\n')
    changed = snap(tmp_path, path="leads.csv")
    assert changed.hash != first.hash and Path(first.path).exists(), "old snapshots stay for old versions"
    record = first.record(tmp_path)
    assert record["file"] == Path(first.path).name and set(record) >= {"hash", "rows", "loaded"}
    assert tmp_path / record["path"] == Path(first.path)


@pytest.mark.parametrize("fmt, rows", [("parquet", 3), ("json", 3)])
def test_parquet_and_json_files_count_rows(tmp_path, fmt, rows):
    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    frame.to_parquet(tmp_path / "f.parquet") if fmt == "parquet" else frame.to_json(tmp_path / "f.json",
                                                                                     orient="records")
    snapshot = snap(tmp_path, path=f"f.{fmt}", columns={"a": "int", "b": "str"})
    assert snapshot.rows == rows and snapshot.path.endswith(f".{fmt}")


def test_folder_snapshot_changes_with_any_file_inside(tmp_path):
    folder = tmp_path / "exports"
    (folder / "2025").mkdir(parents=True)
    (folder / "2025" / "jan.csv").write_text("a\n1\n")
    (folder / "feb.csv").write_text("a\n2\n")
    first = snap(tmp_path, path="exports")
    assert first.rows is None and Path(first.path).is_dir() and (Path(first.path) / "2025" / "jan.csv").exists()
    assert snap(tmp_path, path="exports").hash == first.hash
    (folder / "2025" / "jan.csv").write_text("a\n3\n")
    assert snap(tmp_path, path="exports").hash != first.hash
    (folder / "2025" / "jan.csv").write_text("a\n1\n")
    (folder / "2025" / "jan.csv").rename(folder / "2025" / "january.csv")
    assert snap(tmp_path, path="exports").hash != first.hash, "a renamed file is a change"


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(SourceError, match=r"file not found: 'data/nope.csv'"):
        snap(tmp_path, path="data/nope.csv")


# --- SQL against a real SQLite file --------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["csv", "parquet", "json"])
def test_sql_snapshot_is_deterministic_and_follows_rows(tmp_path, fmt):
    db = make_db(tmp_path / "data" / "shop.sqlite")
    source = dict(url="sqlite:///data/shop.sqlite", sql="select region, amount from sales order by region",
                  format=fmt)
    first = snap(tmp_path, **source)
    assert first.kind == "sql" and first.rows == 2 and first.path.endswith(f".{fmt}")
    assert snap(tmp_path, **source).hash == first.hash, "same rows, same bytes, same hash"
    with sqlite3.connect(db) as conn:  # a table the query does not read
        conn.execute("create table lead_scores (run_id text)")
        conn.execute("insert into lead_scores values ('x')")
    assert snap(tmp_path, **source).hash == first.hash
    with sqlite3.connect(db) as conn:
        conn.execute("update sales set amount = 11 where region = 'north'")
    changed = snap(tmp_path, **source)
    assert changed.hash != first.hash
    frame = pd.read_csv(changed.path) if fmt == "csv" else (
        pd.read_parquet(changed.path) if fmt == "parquet" else pd.read_json(changed.path))
    assert frame.to_dict("records") == [{"region": "north", "amount": 11}, {"region": "south", "amount": 7}]


def test_relative_sqlite_paths_are_relative_to_the_project(tmp_path):
    project = tmp_path / "project"
    assert resolve_url(project, "sqlite:///data/x.sqlite") == f"sqlite:///{project}/data/x.sqlite"
    assert resolve_url(project, "sqlite+pysqlite:///data/x.sqlite") == f"sqlite+pysqlite:///{project}/data/x.sqlite"
    assert resolve_url(project, "sqlite:////abs/x.sqlite") == "sqlite:////abs/x.sqlite"
    assert resolve_url(project, "sqlite://") == "sqlite://"
    make_db(project / "data" / "shop.sqlite")
    other = tmp_path / "elsewhere"
    other.mkdir()
    # Loading from another working directory still finds the project's database.
    code = ("from pathlib import Path; from lab2land.data import load_source; from lab2land.config import "
            f"SourceConfig; print(load_source(Path({str(project)!r}), 's', SourceConfig("
            "url='sqlite:///data/shop.sqlite', sql='select * from sales')).rows)")
    out = subprocess.run([sys.executable, "-c", code], cwd=other, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "2"


def test_sql_text_reaches_the_driver_as_written(tmp_path):
    """No `:name` bind-parameter parsing: JSON and time literals in queries are just text."""
    make_db(tmp_path / "data" / "shop.sqlite")
    snapshot = snap(tmp_path, url="sqlite:///data/shop.sqlite",
                    sql="""select region, '{"a":1}' as doc, ':x' as colon, 'a%' as pct from sales order by region""")
    assert pd.read_csv(snapshot.path)["colon"].tolist() == [":x", ":x"]


def test_missing_database_file_is_an_error_and_is_not_created(tmp_path):
    with pytest.raises(SourceError, match=r"database file not found: 'sqlite:///data/missing.sqlite'"):
        snap(tmp_path, url="sqlite:///data/missing.sqlite", sql="select 1")
    assert not (tmp_path / "data" / "missing.sqlite").exists()


@pytest.mark.parametrize("url, expected", [
    ("shop.sqlite", "not a database URL: 'shop.sqlite' (expected e.g. sqlite:///data/shop.sqlite"),
    ("me:pw@db/shop", "not a database URL: 'me:***@db/shop' (expected"),
    ("nosuchdb://host/x", "query failed against nosuchdb://host/x: Can't load plugin: sqlalchemy.dialects:nosuchdb"),
])
def test_bad_database_urls_are_explained(tmp_path, url, expected):
    with pytest.raises(SourceError) as info:
        snap(tmp_path, url=url, sql="select 1")
    assert str(info.value).startswith(expected)


def test_failing_query_gives_the_database_error_in_one_line(tmp_path):
    make_db(tmp_path / "data" / "shop.sqlite")
    with pytest.raises(SourceError) as info:
        snap(tmp_path, url="sqlite:///data/shop.sqlite", sql="select nope from sales")
    message = str(info.value)
    assert message == "query failed against sqlite:///data/shop.sqlite: OperationalError: no such column: nope"


def test_unreachable_database_is_an_error_without_the_password(tmp_path):
    port = free_port()
    with pytest.raises(SourceError) as info:
        snap(tmp_path, url=f"postgresql://reader:s3cret@127.0.0.1:{port}/shop", sql="select 1")
    message = str(info.value)
    assert message.startswith(f"query failed against postgresql://reader:***@127.0.0.1:{port}/shop")
    assert "s3cret" not in message and ("refused" in message.lower() or "failed" in message.lower())


# --- declared columns ----------------------------------------------------------------------------

def test_columns_are_checked_by_name_and_type(tmp_path):
    (tmp_path / "sales.csv").write_text("day,region,amount,orders\n2025-01-01,north,1.5,\n2025-01-02,south,2.0,3\n")
    ok = {"day": "datetime", "region": "str", "amount": "float"}
    assert snap(tmp_path, path="sales.csv", columns=ok).rows == 2
    with pytest.raises(SourceError) as info:
        snap(tmp_path, path="sales.csv", columns={"revenue": "float", "region": "int", "orders": "int",
                                                  "amount": "money"})
    message = str(info.value)
    assert "missing column 'revenue' (has: day, region, amount, orders)" in message
    assert "column 'region': expected int, got str" in message
    assert "column 'orders': expected int, got float64 (it has missing values" in message
    assert "column 'amount': unknown type 'money'" in message
    with pytest.raises(SourceError, match="column 'region': expected datetime"):
        snap(tmp_path, path="sales.csv", columns={"region": "datetime"})
    assert len(list((tmp_path / SNAPSHOTS).glob("src-*"))) == 1, "a snapshot that fails its check is not stored"


# --- loader scripts ------------------------------------------------------------------------------

def test_loader_stdout_becomes_the_snapshot(tmp_path):
    (tmp_path / "load.py").write_text("import os\nprint('a,b')\nprint('1,' + os.environ['LAB2LAND_PROJECT'])\n")
    snapshot = snap(tmp_path, loader="load.py")
    assert snapshot.kind == "loader" and snapshot.rows == 1
    assert Path(snapshot.path).read_text().splitlines() == ["a,b", f"1,{tmp_path}"]


def test_loader_output_file_becomes_the_snapshot(tmp_path):
    (tmp_path / "load.py").write_text("import sys, pandas as pd\n"
                                      "pd.DataFrame({'a': [1, 2]}).to_parquet(sys.argv[1])\nprint('progress')\n")
    snapshot = snap(tmp_path, loader="load.py", format="parquet", columns={"a": "int"})
    assert snapshot.rows == 2 and pd.read_parquet(snapshot.path)["a"].tolist() == [1, 2]


def test_loader_errors_are_clear(tmp_path):
    (tmp_path / "fails.py").write_text("import sys\nprint('partial')\nsys.exit('cannot reach the API: 503')\n")
    with pytest.raises(SourceError, match=r"loader fails.py exited with status 1: cannot reach the API: 503"):
        snap(tmp_path, loader="fails.py")
    (tmp_path / "silent.py").write_text("pass\n")
    with pytest.raises(SourceError, match="wrote nothing"):
        snap(tmp_path, loader="silent.py")
    with pytest.raises(SourceError, match="loader script not found: 'missing.py'"):
        snap(tmp_path, loader="missing.py")


def test_unused_snapshots_are_pruned_after_a_week(tmp_path):
    (tmp_path / "a.csv").write_text("x\n1\n")
    old = snap(tmp_path, path="a.csv")
    (tmp_path / "a.csv").write_text("x\n2\n")
    new = snap(tmp_path, path="a.csv")
    week_ago = time.time() - 8 * 86400
    os.utime(old.path, (week_ago, week_ago))
    os.utime(new.path, (week_ago, week_ago))
    prune_snapshots(tmp_path, {new.path})
    assert not Path(old.path).exists() and Path(new.path).exists()


# --- in a build: injected paths, failures, exit codes --------------------------------------------

SOURCES = {
    "sales": {"url": "sqlite:///data/shop.sqlite", "sql": "select * from sales order by region",
              "columns": {"region": "str", "amount": "int"}},
    "notes": {"path": "data/notes.csv"},
}
REPORTS = {
    "sales": {"notebook": "sales.ipynb", "title": "Sales", "sources": ["sales"]},
    "notes": {"notebook": "notes.ipynb", "title": "Notes", "sources": ["notes"]},
}


def seeing_notebook(source: str) -> NotebookNode:
    """A notebook that writes the path it was given for ``source`` to ``seen-<source>.txt``."""
    return code_notebook(f"{source} = ''", f"import pathlib\npathlib.Path('seen-{source}.txt').write_text({source})")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    project = tmp_path_factory.mktemp("sources")
    make_db(project / "data" / "shop.sqlite")
    (project / "data" / "notes.csv").write_text("note\nhello\n")
    write_project(project, {"sales.ipynb": seeing_notebook("sales"), "notes.ipynb": seeing_notebook("notes")},
                  REPORTS, sources=SOURCES)
    summary = build(load_config(project), jobs=2)
    assert {o.run.report: o.status for o in summary.outcomes} == {"sales": "ok", "notes": "ok"}, \
        [o.summary for o in summary.outcomes]
    return project


def test_notebook_receives_the_snapshot_path_and_the_manifest_its_fingerprint(built):
    [version] = Store(built / "reports").versions("sales")
    [record] = version.sources
    assert (built / "seen-sales.txt").read_text() == str(built / record.path)
    assert record.path.startswith(SNAPSHOTS.as_posix()) and record.rows == 2
    assert len(record.hash) == 64 and record.loaded and record.kind == "sql"
    page = BeautifulSoup((built / "reports" / "sales" / version.path / "index.html").read_text(), "html.parser")
    assert record.hash in page.get_text() and page.find("h2", string="Data sources")
    taken = page.find(string=re.compile("data as of"))  # in the version's header, beside "built"
    assert taken and taken.find_next("time")["datetime"] == record.loaded


def test_broken_source_fails_only_its_reports_and_keeps_the_last_good_version(built):
    good = {name: latest_by_variant(Store(built / "reports").versions(name))["default"].version_id
            for name in ("sales", "notes")}
    with sqlite3.connect(built / "data" / "shop.sqlite") as db:
        db.execute("update sales set amount = 12 where region = 'north'")
    (built / "data" / "notes.csv").rename(built / "data" / "notes.old")
    try:
        result = run_cli("build", project=built)
    finally:
        (built / "data" / "notes.old").rename(built / "data" / "notes.csv")
    assert result.returncode == 1, result.stderr
    err = " ".join(result.stderr.split())
    assert "✗ [1/2] notes failed (0.0 s) — source 'notes' failed: file not found: 'data/notes.csv'" in err
    assert "sales ok" in err
    store = Store(built / "reports")
    notes = store.versions("notes")
    assert notes[0].status == "failed" and notes[0].error.kind == "source"
    assert latest_by_variant(notes)["default"].version_id == good["notes"]
    assert latest_by_variant(store.versions("sales"))["default"].version_id != good["sales"]
    catalog = json.loads((built / "reports" / "catalog.json").read_text())
    assert catalog["reports"]["notes"]["variants"]["default"]["latest"] == good["notes"]


def test_columns_mismatch_fails_the_run_naming_source_and_column(built):
    with sqlite3.connect(built / "data" / "shop.sqlite") as db:
        db.execute("alter table sales rename column amount to total")
    try:
        summary = build(load_config(built), reports=["sales"])
    finally:
        with sqlite3.connect(built / "data" / "shop.sqlite") as db:
            db.execute("alter table sales rename column total to amount")
    [outcome] = summary.outcomes
    assert outcome.status == "failed" and outcome.run.report == "sales"
    assert outcome.summary.startswith("source 'sales' failed: snapshot does not match the declared `columns`: "
                                      "missing column 'amount' (has: region, total, day)")


@pytest.mark.parametrize("bad, expected", [
    ('[sources.x]\npath = "a.csv"\nsql = "select 1"\n', "sources.x: expected exactly one of `path`, `url` + `sql`"),
    ('[reports.r]\nnotebook = "r.ipynb"\ntitle = "R"\nsources = ["nope"]\n',
     "reports.r.sources: unknown source 'nope'"),
    ('[sources.x]\npath = "a.csv"\ncolumns = { a = 1 }\n', "sources.x.columns.a: expected str, got 1"),
])
def test_bad_source_config_exits_2_before_any_run(tmp_path, bad, expected):
    reports = {} if "reports" in bad else {"r": {"notebook": "r.ipynb", "title": "R"}}
    write_project(tmp_path, {"r.ipynb": seeing_notebook("x")}, reports, bad)
    result = run_cli("build", project=tmp_path)
    assert result.returncode == 2 and expected in " ".join(result.stderr.split()), result.stderr
    assert not (tmp_path / "reports").exists()
