"""Metrics, checks, diffs and trends on a real site: real kernels, real pages, headless Chromium."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from conftest import run_cli, start_cli, write_notebook
from lab2land.errors import EXIT_DEGRADED, EXIT_OK

NOTEBOOK_CELLS = (
    "import pandas as pd\nfrom IPython.display import display\nfrom lab2land import record\n"
    "frame = pd.read_csv(sales)\nframe['amount'] = frame['amount'] * factor",
    "record('total', float(frame['amount'].sum()), label='Total sales', unit='$')\nrecord('rows', len(frame))",
    # scrapbook's glue format, written by hand: the notebook needs no scrapbook installed
    "display({'application/scrapbook.scrap.json+json': {'name': 'mean', 'data': float(frame['amount'].mean()),"
    " 'encoder': 'json', 'version': 1}}, raw=True, metadata={'scrapbook': {'name': 'mean', 'data': True,"
    " 'display': False}})",
    "import datetime, uuid\nprint('run at', datetime.datetime.now().isoformat(), uuid.uuid4())",
    "frame.set_index('region')",
)


def project(root: Path, checks: str = "", extra: str = "") -> Path:
    write_notebook(root / "sales.ipynb", "sales = ''\nfactor = 1.0", *NOTEBOOK_CELLS)
    (root / "sales.csv").write_text("region,amount\nnorth,10\nsouth,20\neast,30\n")
    (root / "publish.toml").write_text(textwrap.dedent(f"""
        [site]
        title = "Metrics"
        [sources.sales]
        path = "sales.csv"
        [reports.s]
        notebook = "sales.ipynb"
        title = "Sales"
        sources = ["sales"]
        parameters = {{ factor = 1.0 }}
        {extra}
        {checks}
    """), encoding="utf-8")
    return root


def catalog(root: Path) -> dict:
    return json.loads((root / "reports" / "catalog.json").read_text())["reports"]["s"]


def build(root: Path, *args: str, code: int = EXIT_OK):
    proc = run_cli("build", *args, project=root)
    assert proc.returncode == code, proc.stdout + proc.stderr
    return proc


def test_record_and_glue_metrics_reach_manifest_catalog_and_page(tmp_path):
    root = project(tmp_path)
    build(root)
    (version,) = catalog(root)["versions"]
    assert version["metrics"] == {"total": 60.0, "rows": 3, "mean": 20.0}
    manifest = json.loads((root / "reports" / "s" / version["id"] / "manifest.json").read_text())
    assert manifest["metrics"]["total"] == {"name": "total", "value": 60.0, "label": "Total sales", "unit": "$"}
    page = BeautifulSoup((root / "reports" / "s" / version["id"] / "index.html").read_text(), "html.parser")
    shown = {dt.get_text(): dd.get_text() for dt, dd in zip(page.select(".l2l-metrics dt"),
                                                              page.select(".l2l-metrics dd"), strict=True)}
    assert shown["Total sales"] == "$60" and shown["rows"] == "3"


def test_a_breach_is_degraded_exit_3_with_banner_and_latest_stays(tmp_path):
    root = project(tmp_path, checks='[reports.s.checks]\ntotal = "between 50 100"\nrows = "> 0"')
    build(root)
    good = catalog(root)["variants"]["default"]["latest"]
    toml = (root / "publish.toml").read_text().replace("factor = 1.0", "factor = 2.0")
    (root / "publish.toml").write_text(toml)
    proc = build(root, code=EXIT_DEGRADED)
    assert "total = $120, expected between 50 100" in proc.stderr
    entry = catalog(root)
    degraded = next(v for v in entry["versions"] if v["status"] == "degraded")
    assert entry["variants"]["default"]["latest"] == good
    banner = BeautifulSoup((root / "reports" / "s" / degraded["id"] / "index.html").read_text(), "html.parser")
    assert "total = $120, expected between 50 100" in banner.select_one(".l2l-banner-degraded").get_text()
    history = (root / "reports" / "s" / "index.html").read_text()
    assert "l2l-status-degraded" in history

    # promote_degraded: the same breach becomes latest, banner and all
    toml = toml.replace('title = "Sales"', 'title = "Sales"\npromote_degraded = true')
    (root / "publish.toml").write_text(toml)
    build(root, "--force", code=EXIT_DEGRADED)
    entry = catalog(root)
    newest = entry["versions"][0]
    assert newest["status"] == "degraded" and entry["variants"]["default"]["latest"] == newest["id"]


def test_checks_are_config_errors_before_any_kernel(tmp_path):
    root = project(tmp_path, checks='[reports.s.checks]\ntotal = "more than 5"')
    proc = run_cli("build", project=root)
    assert proc.returncode == 2 and 'reports.s.checks: total: expected "<op> NUMBER"' in proc.stderr
    write_notebook(root / "silent.ipynb", "n = 1", "print(n)")
    (root / "publish.toml").write_text(textwrap.dedent("""
        [reports.q]
        notebook = "silent.ipynb"
        title = "Q"
        checks = { auc = ">= 0.9" }
    """))
    proc = run_cli("build", project=root)
    assert proc.returncode == 2 and "reports.q.checks: notebook silent.ipynb records no metrics" in proc.stderr
    assert not (root / "reports" / "q").exists()


def test_diff_lists_exactly_what_changed_and_nothing_for_a_rerun(tmp_path):
    root = project(tmp_path)
    build(root)
    (root / "sales.csv").write_text("region,amount\nnorth,10\nsouth,25\nwest,5\n")
    toml = (root / "publish.toml").read_text().replace("factor = 1.0", "factor = 2.0")
    (root / "publish.toml").write_text(toml)
    build(root)
    proc = run_cli("diff", "s", "--format", "json", project=root)
    assert proc.returncode == 0, proc.stderr
    (diff,) = json.loads(proc.stdout)
    assert [(c["name"], c["before"], c["after"]) for c in diff["parameters"]] == [("factor", 1.0, 2.0)]
    assert [(s["name"], s["rows_before"], s["rows_after"]) for s in diff["snapshots"]] == [("sales", 3, 3)]
    assert {c["name"]: c["delta"] for c in diff["metrics"]} == {"total": 20.0, "mean": pytest.approx(80 / 3 - 20)}
    (table,) = [c for c in diff["cells"] if any(line.startswith("row") for line in c["lines"])]
    assert table["lines"] == ["row changed 'north': 10.0 → 20.0", "row changed 'south': 20.0 → 50.0",
                              "row removed 'east': 30.0", "row added 'west': 10.0"]
    assert len(diff["cells"]) == 1, diff["cells"]  # the timestamp/uuid cell is not a change
    text = run_cli("diff", "s", project=root).stdout
    assert "factor: 1.0 → 2.0" in text and "total" in text and "+20" in text
    # `lab2land diff s | head`: a reader that stops reading (here: before the first line) is no error.
    piped = start_cli("diff", "s", project=root)
    piped.stdout.close()
    assert piped.wait(timeout=120) == 0 and piped.stderr.read() == ""

    newest = catalog(root)["versions"][0]["id"]
    changes = BeautifulSoup((root / "reports" / "s" / newest / "changes.html").read_text(), "html.parser")
    assert "factor" in changes.get_text() and "row added 'west'" in changes.get_text()

    build(root, "--force")  # same inputs again
    rerun = json.loads(run_cli("diff", "s", "--format", "json", project=root).stdout)[0]
    assert not (rerun["parameters"] or rerun["snapshots"] or rerun["metrics"] or rerun["cells"]), rerun


def test_old_schema_site_is_read_and_upgraded(tmp_path):
    root = project(tmp_path)
    build(root)
    (version,) = catalog(root)["versions"]
    path = root / "reports" / "s" / version["id"] / "manifest.json"
    old = json.loads(path.read_text())
    for key in ("metrics", "breaches", "previous", "changes"):
        old.pop(key, None)
    old.update(schema=1, log_tail=None)
    path.write_text(json.dumps(old))
    proc = run_cli("repair", project=root)
    assert proc.returncode == 0, proc.stderr
    (listed,) = catalog(root)["versions"]
    assert listed["id"] == version["id"] and listed["metrics"] == {}
    build(root, "--force")
    entry = catalog(root)
    assert len(entry["versions"]) == 2 and entry["variants"]["default"]["latest"] == entry["versions"][0]["id"]
    assert run_cli("diff", "s", project=root).returncode == 0


@pytest.mark.browser
def test_trend_chart_has_one_point_per_version_and_opens_them(tmp_path, page):
    root = project(tmp_path)
    for factor in ("1.0", "2.0", "3.0"):
        toml = (root / "publish.toml").read_text()
        (root / "publish.toml").write_text(toml.replace(f"factor = {float(factor) - 1:.1f}", f"factor = {factor}"))
        build(root)
    page.goto((root / "reports" / "s" / "index.html").as_uri())
    page.wait_for_selector('[data-metric="total"] .main-svg', timeout=30_000)
    points = page.locator('[data-metric="total"] .scatterlayer .point')
    assert points.count() == 3
    assert page.external_requests == [] and page.page_errors == []
    # Scatter lines: drawn by plotly.js's basic bundle, not the full 4.8 MB one.
    scripts = page.evaluate("[...document.scripts].map(s => s.getAttribute('src'))")
    assert "../assets/plotly-basic/plotly-basic.min.js" in scripts and "../assets/plotly.min.js" not in scripts
    index = BeautifulSoup((root / "reports" / "index.html").read_text(), "html.parser")
    assert "▲" in index.select_one(".l2l-headline").get_text()  # total rose since the previous version
    points.nth(0).scroll_into_view_if_needed()
    box = points.nth(0).bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)  # plotly clicks what it hovers
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_url("**/s/2*/index.html", timeout=10_000)
