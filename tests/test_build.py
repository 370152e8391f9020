"""End to end: build the demo project with real kernels, then check the site as a parser and a
browser see it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
from bs4 import BeautifulSoup

from conftest import demo_project
from lab2land.build import build
from lab2land.config import load_config

EXTERNAL = re.compile(r"""(?:src|href|url)\s*[=(]\s*["']?\s*(?:https?:)?//""", re.I)


@pytest.fixture(scope="module")
def demo_site(tmp_path_factory) -> Path:
    project = tmp_path_factory.mktemp("demo")
    demo_project(project)
    summary = build(load_config(project), jobs=2)
    assert [o.status for o in summary.outcomes] == ["ok"] * 4, [o.summary for o in summary.outcomes]
    return project / "reports"


def soup(path: Path) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def test_index_lists_every_report_with_its_latest_version(demo_site):
    page = soup(demo_site / "index.html")
    assert page.title.get_text(strip=True).startswith("Acme Analytics")
    text = page.get_text(" ", strip=True)
    catalog = json.loads((demo_site / "catalog.json").read_text())
    for name, report in catalog["reports"].items():
        assert report["title"] in text and report["description"] in text
        assert page.find("a", href=f"{name}/index.html"), f"no link to {name}'s history"
        for variant in report["variants"].values():
            latest = variant["latest"]
            assert page.find("a", href=f"{name}/{latest}/index.html"), f"no link to latest {name} {latest}"
    for tag in ("sales", "kpi", "risk", "model"):
        assert tag in text


def test_catalog_describes_reports_versions_and_latest(demo_site):
    catalog = json.loads((demo_site / "catalog.json").read_text())
    assert catalog["schema"] == 2 and set(catalog["reports"]) == {"lead_scoring", "kpi", "fraud"}
    kpi = catalog["reports"]["kpi"]
    assert set(kpi["variants"]) == {"north", "south"}
    assert kpi["variants"]["north"]["parameters"] == {"region": "north"}
    for version in kpi["versions"]:
        assert set(version) >= {"id", "variant", "status", "parameters", "created", "duration_s", "path", "notebook"}
        assert version["status"] == "ok" and (demo_site / version["path"]).is_file()
        assert set(version["metrics"]) == {"revenue", "orders"} and version["breaches"] == []
        assert (demo_site / version["notebook"]).is_file()
        assert version["id"] in version["path"] and re.fullmatch(r"\d{8}T\d{6}Z-(north|south)", version["id"])


def test_manifest_records_parameters_provenance_and_data(demo_site):
    [version] = [p for p in (demo_site / "fraud").iterdir() if p.name[:1].isdigit()]
    manifest = json.loads((version / "manifest.json").read_text())
    assert manifest["status"] == "ok" and manifest["parameters"] == {"threshold": 0.5}
    assert re.fullmatch(r"[0-9a-f]{64}", manifest["notebook_sha256"])
    assert manifest["packages"]["papermill"] and manifest["packages"]["nbconvert"]
    assert manifest["duration_s"] > 0 and manifest["started"] <= manifest["finished"]
    [source] = manifest["sources"]
    assert source["name"] == "transactions" and source["rows"] > 1000 and len(source["hash"]) == 64
    executed = nbformat.read(str(version / manifest["executed_notebook"]), as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and source["path"] in injected[0].source


def test_version_page_has_navigation_parameters_and_plots(demo_site):
    latest = json.loads((demo_site / "catalog.json").read_text())["reports"]["kpi"]["variants"]["north"]["latest"]
    page_path = demo_site / "kpi" / latest / "index.html"
    page = soup(page_path)
    text = page.get_text(" ", strip=True)
    assert "Acme Analytics" in text and "Sales KPIs" in text and latest in text
    assert "region" in text and "north" in text
    for href in ("../index.html", "../latest/north.html", "kpi_report.ipynb", "../../index.html"):
        assert page.find("a", href=href), f"missing link {href}"
    assert page.find("script", src="../versions.js")
    # Every plotly output of the executed notebook has its figure data on the page.
    executed = nbformat.read(str(page_path.parent / "kpi_report.ipynb"), as_version=4)
    figures = [o for c in executed.cells for o in c.get("outputs", [])
               if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert figures
    blocks = [json.loads(s.string) for s in page.find_all("script", type="application/json")
              if s.string and '"data"' in s.string]
    assert len(blocks) >= len(figures)
    assert all(b.get("data") for b in blocks)
    # Code is hidden by default; the parameters cell's source does not leak.
    assert 'region = "north"' not in page_path.read_text()


def test_latest_pages_point_at_good_versions(demo_site):
    for name in ("kpi", "fraud", "lead_scoring"):
        for page in (demo_site / name / "latest").glob("*.html"):
            refresh = soup(page).find("meta", attrs={"http-equiv": "refresh"})["content"]
            target = refresh.split("url=", 1)[1]
            assert (page.parent / target).resolve().is_file()


def test_no_page_refers_to_an_external_url(demo_site):
    for page in demo_site.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        assert not EXTERNAL.search(html), f"{page} refers to {EXTERNAL.search(html).group(0)}"
    assert (demo_site / "assets" / "plotly.min.js").is_file()
    copies = [p for p in demo_site.glob("*/*/plotly*.js") if p.relative_to(demo_site).parts[0] != "assets"]
    assert not copies, "plotly.js must be shared, not copied per version"


def test_unchanged_rebuild_starts_no_kernel(demo_site):
    summary = build(load_config(demo_site.parent), jobs=2)
    assert {o.status for o in summary.outcomes} == {"unchanged"}


def test_report_opens_from_file_url_with_plot_and_widgets(demo_site, page):
    catalog = json.loads((demo_site / "catalog.json").read_text())
    fraud = catalog["reports"]["fraud"]["variants"]["default"]["latest"]
    page.goto((demo_site / "fraud" / fraud / "index.html").as_uri())
    page.wait_for_selector(".js-plotly-plot .main-svg", state="visible", timeout=20000)
    page.wait_for_selector(".widget-slider, .jupyter-widgets", state="visible", timeout=20000)
    assert page.locator(".js-plotly-plot").count() >= 1
    assert page.external_requests == []
    assert page.page_errors == []
    # The history page and the index work from file:// too.
    page.goto((demo_site / "index.html").as_uri())
    page.get_by_text("Fraud detection").first.wait_for()
    assert page.external_requests == []


def test_notebook_names_with_spaces_publish_and_changed_images_re_run(tmp_path):
    """Tried as a new user would: "Widget List.ipynb" stopped the whole build (an unsafe file name
    in the version folder), and a changed image beside the notebook left the page as it was."""
    from conftest import code_notebook, run_cli, write_project

    nb = code_notebook("n = 1", "print(n)")
    nb.cells.insert(0, nbformat.v4.new_markdown_cell("# Chart\n![the chart](img/chart.svg)"))
    project = write_project(tmp_path / "p", {"My Report (draft).ipynb": nb, "other.ipynb": code_notebook()},
                            {"spaced": {"notebook": "My Report (draft).ipynb", "title": "Spaced"},
                             "other": {"notebook": "other.ipynb", "title": "Other"}}, site={"title": "S"})
    (project / "img").mkdir()
    (project / "img" / "chart.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>')
    done = run_cli("build", project=project)
    assert done.returncode == 0, done.stderr
    catalog = json.loads((project / "reports" / "catalog.json").read_text())["reports"]
    [spaced] = catalog["spaced"]["versions"]
    assert catalog["other"]["versions"] and spaced["notebook"].endswith("/My-Report-draft.ipynb")
    assert (project / "reports" / spaced["notebook"]).is_file()
    page = BeautifulSoup((project / "reports" / spaced["path"]).read_text(), "html.parser")
    assert page.find("a", href="My-Report-draft.ipynb")

    (project / "img" / "chart.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>')
    again = run_cli("build", project=project)
    assert again.returncode == 0 and "spaced ok" in " ".join(again.stderr.split()), again.stderr
    assert "other unchanged" in " ".join(again.stderr.split())
