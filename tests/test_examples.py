"""The demo data generator and the three example notebooks, run with real kernels.

The notebooks run the way the publisher runs them: papermill's Python API, the working
directory set to the notebooks folder, and data files passed as path parameters (CSV, Parquet
and JSON, as the publisher's snapshots may be any of the three).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import date, timedelta
from pathlib import Path

import nbformat
import pandas as pd
import papermill as pm
import pytest

from conftest import ROOT, save_notebook
from lab2land import demo
from lab2land.errors import UsageError

NOTEBOOKS = ROOT / "notebooks"
EXAMPLES = ("lead_scoring", "kpi_report", "fraud_detection")
START = date(2026, 1, 1)
PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_STATE_MIME = "application/vnd.jupyter.widget-state+json"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A project folder with 90 days of demo data and a copy of the notebooks."""
    root = tmp_path_factory.mktemp("demo")
    demo.generate(root, days=90, start=START)
    (root / "notebooks").mkdir()
    for name in EXAMPLES:
        shutil.copy(NOTEBOOKS / f"{name}.ipynb", root / "notebooks")
    return root


def run(project: Path, name: str, notebook: nbformat.NotebookNode | None = None, **parameters):
    """Execute a notebook of ``project`` like the publisher does; return the executed notebook."""
    nb_dir = project / "notebooks"
    source = nb_dir / f"{name}.ipynb"
    if notebook is not None:
        source = nb_dir / f"{name}-edited.ipynb"
        save_notebook(notebook, source)
    out = project / f"{name}-{len(list(project.glob('*.out.ipynb')))}.out.ipynb"
    # A cell timeout turns a stuck kernel into a failure instead of a hung test run.
    pm.execute_notebook(str(source), str(out), parameters=parameters, cwd=str(nb_dir),
                        progress_bar=False, log_output=False, execution_timeout=120)
    return nbformat.read(out, as_version=4)


def mimetypes(nb: nbformat.NotebookNode) -> set[str]:
    return {mime for cell in nb.cells for out in cell.get("outputs", []) for mime in out.get("data", {})}


def widget_state(nb: nbformat.NotebookNode) -> dict:
    return nb.metadata["widgets"][WIDGET_STATE_MIME]["state"]


def snapshot(csv: Path, fmt: str) -> Path:
    """The CSV as the publisher would snapshot it in another format."""
    frame, out = pd.read_csv(csv), csv.with_suffix(f".{fmt}")
    if fmt == "parquet":
        frame.to_parquet(out, index=False)
    else:
        frame.to_json(out, orient="records", date_format="iso")
    return out


# -- the generator ----------------------------------------------------------------------------

def read_all(data: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(data.glob("*.csv"))}


def test_generate_is_deterministic_and_the_csvs_match_the_database(tmp_path):
    first = demo.generate(tmp_path / "a", days=20, start=START)
    second = demo.generate(tmp_path / "b", days=20, start=START)
    assert first == second and first["daily_sales"] == 20 * len(demo.REGIONS) * len(demo.PRODUCTS)
    assert read_all(tmp_path / "a" / "data") == read_all(tmp_path / "b" / "data")
    with sqlite3.connect(tmp_path / "a" / "data" / "shop.sqlite") as conn:
        for table, rows in first.items():
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == rows
    for name, rows in first.items():
        assert len(pd.read_csv(tmp_path / "a" / "data" / f"{name}.csv")) == rows
    sales = pd.read_csv(tmp_path / "a" / "data" / "daily_sales.csv")
    assert set(sales["region"]) >= {"north", "south", "east", "west"}
    assert (sales["customers"] <= sales["orders"]).all()


def test_advance_adds_exactly_the_next_day_deterministically(tmp_path):
    added = []
    for name in ("a", "b"):
        demo.generate(tmp_path / name, days=20, start=START)
        added.append(demo.advance(tmp_path / name))
    assert added[0] == added[1] and all(added[0].values())
    assert read_all(tmp_path / "a" / "data") == read_all(tmp_path / "b" / "data")

    new_day = (START + timedelta(days=20)).isoformat()
    sales = pd.read_csv(tmp_path / "a" / "data" / "daily_sales.csv")
    assert sales["date"].max() == new_day
    assert (sales["date"] == new_day).sum() == added[0]["daily_sales"]
    tx = pd.read_csv(tmp_path / "a" / "data" / "transactions.csv")
    assert (tx["timestamp"].str[:10] == new_day).sum() == added[0]["transactions"]
    assert tx["id"].is_unique

    # Data depends on the day, not on how it was produced: 20 days + 1 equals 21 days.
    demo.generate(tmp_path / "c", days=21, start=START)
    assert read_all(tmp_path / "c" / "data") == read_all(tmp_path / "a" / "data")


def test_advance_without_data_says_how_to_create_it(tmp_path):
    with pytest.raises(UsageError, match="generate the demo data first"):
        demo.advance(tmp_path)
    demo.generate(tmp_path, days=2, start=START)
    with pytest.raises(ValueError, match="at least 1"):
        demo.advance(tmp_path, days=0)


# -- the notebooks ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", EXAMPLES)
def test_committed_notebooks_are_clean_and_parameterized(name):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    assert [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert not [c for c in nb.cells if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert "widgets" not in nb.metadata
    if name != "lead_scoring":
        view = nb.metadata.extensions.jupyter_dashboards.views.grid_default
        assert view.type == "grid" and view.maxColumns == 12
        for cell in nb.cells:
            place = cell.metadata.extensions.jupyter_dashboards.views.grid_default
            assert place.hidden or place.col + place.width <= 12


def test_lead_scoring_writes_scores_once_per_run_id(project):
    open_leads = pd.read_csv(project / "data" / "leads.csv")["converted"].isna().sum()
    for _ in range(2):
        nb = run(project, "lead_scoring", run_id="2026-04-01T10-00", top_n=5)
    assert PLOTLY_MIME in mimetypes(nb)
    with sqlite3.connect(project / "data" / "shop.sqlite") as conn:
        rows = conn.execute("SELECT count(*), count(DISTINCT lead_id), min(rank), max(score) "
                            "FROM lead_scores WHERE run_id = '2026-04-01T10-00'").fetchone()
    assert rows[0] == rows[1] == open_leads > 0
    assert rows[2] == 1 and 0 < rows[3] <= 1


def test_kpi_report_reads_parquet_and_saves_widget_state(project):
    nb = run(project, "kpi_report", region="south", months=2,
             daily_sales=str(snapshot(project / "data" / "daily_sales.csv", "parquet")))
    assert PLOTLY_MIME in mimetypes(nb)
    text = json.dumps([c.outputs for c in nb.cells if c.cell_type == "code"], ensure_ascii=False)
    assert "South region" in text and ("▲" in text or "▼" in text)
    models = {m["model_name"] for m in widget_state(nb).values()}
    assert {"DropdownModel", "OutputModel"} <= models
    # The product explorer's saved state holds its chart and table, not the cell's outputs.
    [view] = [m["state"] for m in widget_state(nb).values() if m["model_name"] == "OutputModel"]
    assert [list(o["data"]) for o in view["outputs"]] == [[PLOTLY_MIME], ["text/html"]]
    explore = [c for c in nb.cells if c.get("id") == "explore"][0]
    assert [list(o["data"]) for o in explore.outputs] == [["application/vnd.jupyter.widget-view+json", "text/plain"]]


def test_kpi_report_rejects_an_unknown_region_naming_the_valid_ones(project):
    with pytest.raises(pm.PapermillExecutionError) as failure:
        run(project, "kpi_report", region="atlantis")
    assert failure.value.ename == "ValueError"
    assert "Unknown region 'atlantis': choose one of all, east, north, south, west" in failure.value.evalue


def test_fraud_form_rescores_on_every_change(project):
    nb = nbformat.read(project / "notebooks" / "fraud_detection.ipynb", as_version=4)
    # What a viewer does in the dashboard: change fields, without pressing any button.
    nb.cells.append(nbformat.v4.new_code_cell(
        "before = verdict.value\n"
        "fields['amount'].value = 4.0\n"
        "fields['hour'].value = 14\n"
        "assert verdict.value != before, 'the verdict did not follow the form'\n"
        "fields['amount'].value = 5000.0\n"
        "fields['hour'].value = 3\n"
        "fields['country_mismatch'].value = True\n"
        "assert 'flagged for review' in verdict.value, verdict.value"
    ))
    nb = run(project, "fraud_detection", notebook=nb, threshold=0.4,
             transactions=str(snapshot(project / "data" / "transactions.csv", "json")))
    assert PLOTLY_MIME in mimetypes(nb)
    state = widget_state(nb)
    verdicts = [m["state"]["value"] for m in state.values() if m["model_name"] == "HTMLModel"]
    assert any("Probability of fraud" in v and "threshold 40%" in v for v in verdicts)
    assert {"BoundedFloatTextModel", "IntSliderModel", "DropdownModel", "CheckboxModel"} <= {
        m["model_name"] for m in state.values()}
