"""Render stage: version pages and site pages, checked by structure with a real HTML parser."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import nbformat
import plotly.graph_objects as go
import plotly.io as pio
import pytest
from bs4 import BeautifulSoup
from nbformat import v4

from conftest import save_notebook
from lab2land import assets, page_needs, render, sanitize, templating

XSS_SCRIPT = "<script>alert(1)</script>"
XSS_IMG = "<img src=x onerror=alert(2)>"
XSS_TITLE = "</script><script>alert(3)</script>"
PLOTLY_MIME = "application/vnd.plotly.v1+json"

# --- notebooks -------------------------------------------------------------------------

EXECUTED_CELLS = [
    ("code", "region = 'north'\nrows = 3", ["parameters"]),
    ("markdown", f"# Weekly sales\nSome <b>bold</b> text {XSS_SCRIPT} and {XSS_IMG}\n\n"
                 "Growth is $\\frac{a}{b} < 1$.", []),
    ("code", "import plotly.graph_objects as go\n"
             f"go.Figure(go.Bar(x=['a', 'b'], y=[1, 3]), layout_title_text={XSS_TITLE!r}).show()", []),
    ("code", "import ipywidgets as w\nw.IntSlider(value=7, description='level')", []),
    ("code", "import pandas as pd\n"
             f"pd.DataFrame({{'region': [region, {XSS_IMG!r}], 'note': [{XSS_SCRIPT!r}, 'ok']}})", []),
    ("code", "from IPython.display import Javascript, HTML, display\n"
             "display(Javascript('document.title = \"pwned-by-js\"'))\n"
             f"display(HTML({XSS_IMG!r} + '<p class=\"kept\">kept</p>'))\n"
             "print('rows:', rows)", []),
]


def build_notebook(cells=EXECUTED_CELLS) -> nbformat.NotebookNode:
    """A small report notebook (not executed)."""
    nb = v4.new_notebook()
    for kind, source, tags in cells:
        maker = v4.new_code_cell if kind == "code" else v4.new_markdown_cell
        nb.cells.append(maker(source, metadata={"tags": tags}))
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def execute_notebook(directory: Path) -> nbformat.NotebookNode:
    """Run build_notebook() for real with papermill: real plotly output and widget state."""
    import papermill

    src, out = directory / "report.ipynb", directory / "report.out.ipynb"
    save_notebook(build_notebook(), src)
    papermill.execute_notebook(str(src), str(out), parameters={"region": "south"},
                               progress_bar=False, cwd=str(directory), kernel_name="python3")
    return nbformat.read(out, as_version=4)


def failed_notebook() -> nbformat.NotebookNode:
    """A failed papermill run built by hand: papermill's banner cells, an error output."""
    fig = go.Figure(go.Scatter(x=[1, 2, 3], y=[2, 1, 3]), layout_title_text="before the error")
    nb = v4.new_notebook()
    nb.cells = [
        v4.new_markdown_cell('<span style="color:red">An Exception was encountered at '
                             '<a href="#papermill-error-cell">In [2]</a>.</span>',
                             metadata={"tags": ["papermill-error-cell-tag"]}),
        v4.new_code_cell("fig.show()", execution_count=1, outputs=[
            v4.new_output("display_data", data={PLOTLY_MIME: json.loads(pio.to_json(fig))})]),
        v4.new_markdown_cell('<span id="papermill-error-cell">Execution using papermill '
                             'encountered an exception here and stopped:</span>',
                             metadata={"tags": ["papermill-error-cell-tag"]}),
        v4.new_code_cell("print('loading')\ntotal = sales['amount'].sum()", execution_count=2,
                         metadata={"papermill": {"status": "failed", "exception": True}},
                         outputs=[
                             v4.new_output("stream", name="stdout", text="loading\n"),
                             v4.new_output("error", ename="KeyError", evalue="'amount'", traceback=[
                                 "\x1b[0;31mKeyError\x1b[0m: 'amount' <script>alert(4)</script>"]),
                         ]),
        v4.new_code_cell("never_ran()", execution_count=None),
    ]
    return nb


def page_context(status: str = "ok", **version) -> dict:
    """A page context as the publisher passes it (URLs relative to the version page)."""
    error = None
    if status != "ok":
        error = {"cell_index": 3, "ename": "KeyError", "evalue": "'amount'",
                 "summary": "KeyError: 'amount' <b>in cell 4</b>"}
    return {
        "site_title": "Acme <Analytics>",
        "report": {"name": "sales", "title": "Sales & Margin", "tags": ["finance", "<weekly>"],
                   "description": "Weekly sales by region. <script>alert(5)</script>"},
        "version": {"id": "20261124T235301Z-south", "variant": "south", "variant_label": "region=south",
                    "status": status, "parameters": {"region": "south", "rows": 3, "note": XSS_SCRIPT},
                    "created": "2026-11-24T23:53:01Z", "duration_s": 3.4, "error": error, **version},
        "provenance": {"notebook": "notebooks/sales.ipynb", "notebook_sha256": "ab" * 32,
                       "kernel": "python3", "lab2land_version": "0.1.0",
                       "sources": [{"name": "orders.csv", "hash": "cd" * 32, "rows": 1200,
                                    "loaded": "2026-11-24T23:52:58Z"}],
                       "packages": {"pandas": "3.1.1", "plotly": "7.1.0"}},
        "links": {"site": "../../index.html", "history": "../index.html", "latest": "../latest/south.html",
                  "notebook": "sales.ipynb", "dashboard": None, "versions_js": "../versions.js"},
        "assets": "../../assets/",
    }


@pytest.fixture(scope="session")
def executed_nb(tmp_path_factory) -> nbformat.NotebookNode:
    return execute_notebook(tmp_path_factory.mktemp("executed"))


@pytest.fixture(scope="session")
def ok_html(executed_nb) -> str:
    return render.render_version(executed_nb, page_context())


def soup_of(html: str) -> BeautifulSoup:
    return BeautifulSoup(html, "html.parser")


# --- version pages ---------------------------------------------------------------------

def test_page_shows_title_stamp_parameters_and_navigation(ok_html):
    soup = soup_of(ok_html)
    assert soup.title.string == "Sales & Margin · region=south · Acme <Analytics>"
    assert soup.select_one(".l2l-brand").get_text() == "Acme <Analytics>"
    assert soup.select_one(".l2l-brand")["href"] == "../../index.html"
    assert soup.select_one("h1.l2l-title").get_text() == "Sales & Margin"
    body = soup.body
    assert (body["data-version"], body["data-variant"], body["data-status"]) == (
        "20261124T235301Z-south", "south", "ok")
    assert body["data-report-root"] == "../"
    stamp = soup.select_one(".l2l-stamp")
    assert "20261124T235301Z-south" in stamp.get_text()
    assert stamp.select_one("time")["datetime"] == "2026-11-24T23:53:01Z"
    params = {dt.get_text(): dd.get_text() for dt, dd in zip(soup.select(".l2l-params dt"),
                                                             soup.select(".l2l-params dd"), strict=True)}
    assert params == {"note": XSS_SCRIPT, "region": "south", "rows": "3"}
    nav = {a.get("data-l2l-nav") or a.get_text(): a["href"] for a in soup.select(".l2l-versionnav a")}
    assert nav["history"] == "../index.html" and nav["latest"] == "../latest/south.html"
    assert nav["Executed notebook (.ipynb)"] == "sales.ipynb"
    assert soup.select_one('[data-l2l-nav="newer"]').has_attr("hidden")
    assert soup.select_one('script[src="../versions.js"]') is not None


def test_page_shows_provenance(ok_html):
    prov = soup_of(ok_html).select_one(".l2l-provenance")
    text = prov.get_text(" ")
    for expected in ("notebooks/sales.ipynb", "ab" * 32, "python3", "orders.csv", "cd" * 32, "1200",
                     "pandas==3.1.1"):
        assert expected in text


def test_metadata_is_escaped(ok_html):
    soup = soup_of(ok_html)
    assert soup.select_one(".l2l-description").get_text() == "Weekly sales by region. <script>alert(5)</script>"
    assert "&lt;weekly&gt;" in ok_html and "<weekly>" not in ok_html


def test_code_is_hidden_by_default_and_shown_on_request(executed_nb, ok_html):
    soup = soup_of(ok_html)
    assert soup.select(".jp-InputArea") == []
    assert "import pandas" not in ok_html
    # the parameters cells (ours and papermill's injected one) have no output: not even a box
    assert len(soup.select(".jp-CodeCell")) == 4
    shown = soup_of(render.render_version(executed_nb, page_context(), show_code=True))
    sources = [e.get_text() for e in shown.select(".jp-InputArea")]
    assert any("import pandas" in s for s in sources)
    assert any('region = "south"' in s for s in sources)  # papermill's injected parameters


def test_prompts_are_hidden(ok_html):
    soup = soup_of(ok_html)
    assert soup.select(".jp-InputPrompt, .jp-OutputPrompt") == []


def test_plotly_figure_is_a_safe_data_block(executed_nb, ok_html):
    soup = soup_of(ok_html)
    block = soup.select_one(".l2l-plotly script.l2l-plotly-data")
    assert block["type"] == "application/json"
    assert soup.select_one(".l2l-plotly .l2l-plotly-target") is not None
    raw = block.string
    assert "<" not in raw and ">" not in raw and "&" not in raw  # nothing can close the tag
    fig = json.loads(raw)
    assert fig["layout"]["title"]["text"] == XSS_TITLE
    original = next(o.data[PLOTLY_MIME] for c in executed_nb.cells for o in c.get("outputs", [])
                    if PLOTLY_MIME in o.get("data", {}))
    assert fig["data"] == json.loads(json.dumps(original["data"]))
    # A bar chart: the page loads plotly.js's basic bundle, not the full 4.8 MB one.
    assert soup.select_one('script[src="../../assets/plotly-basic/plotly-basic.min.js"]') is not None
    assert soup.select_one('script[src="../../assets/plotly.min.js"]') is None


@pytest.mark.parametrize(("traces", "bundle"), [
    (["bar", "scatter"], "plotly-basic/plotly-basic.min.js"),
    (["histogram", None], "plotly-cartesian/plotly-cartesian.min.js"),  # None: plotly's default, scatter
    (["heatmap", "scattergeo", "sankey"], "plotly-svg/plotly-svg.min.js"),  # every SVG trace type
    (["scattergeo", "scattergl"], "plotly.min.js"),  # WebGL: only the full bundle draws it
    (["scattermap"], "plotly.min.js"),  # map tiles: likewise
    (["no-such-trace"], "plotly.min.js"),
])
def test_a_page_loads_the_smallest_plotly_js_that_draws_its_figures(traces, bundle):
    figures = [{"data": [{"type": t} if t else {"y": [1]} for t in traces], "layout": {}}]
    nb = v4.new_notebook(cells=[v4.new_code_cell("fig", outputs=[v4.new_output("display_data", data={PLOTLY_MIME: f})])
                                for f in figures])
    nb.cells.append(v4.new_code_cell("x = 1"))  # a cell without a figure changes nothing
    assert page_needs.static_plotly_js(nb) == bundle
    odd = v4.new_output("display_data", data={PLOTLY_MIME: {"data": "not a list"}})
    odd_nb = v4.new_notebook(cells=[v4.new_code_cell("fig", outputs=[odd])])
    assert page_needs.static_plotly_js(odd_nb) == "plotly.min.js"


def test_no_external_urls(ok_html):
    soup = soup_of(ok_html)
    for tag in soup.find_all(True):
        for attr in ("src", "href", "data", "action", "poster"):
            value = tag.get(attr)
            if value:
                assert not re.match(r"^(https?:)?//", value.strip(), re.I), f"{tag.name} {attr}={value}"
    assert "cdn." not in ok_html and "unpkg" not in ok_html and "require.js" not in ok_html


def test_no_script_from_data(ok_html):
    soup = soup_of(ok_html)
    for script in soup.find_all("script"):
        if script.has_attr("src"):
            assert script["src"].startswith("../")
        else:  # data blocks only: a browser does not run these types
            assert script["type"] in ("application/json", "application/vnd.jupyter.widget-view+json",
                                      "application/vnd.jupyter.widget-state+json")
    for tag in soup.find_all(True):
        assert not [a for a in tag.attrs if a.lower().startswith("on")], tag
        assert "javascript:" not in (tag.get("href") or "").lower()
    assert "pwned-by-js" not in ok_html  # application/javascript outputs are dropped,
    assert "Javascript object" not in ok_html  # with their text fallback
    assert soup.select_one("p.kept").get_text() == "kept"  # sanitized HTML output still shows


def test_markdown_and_html_outputs_are_sanitized(ok_html):
    soup = soup_of(ok_html)
    md = soup.select_one(".jp-MarkdownCell")
    assert md.select_one("h1").get_text() == "Weekly sales"
    assert md.select_one("b").get_text() == "bold"
    assert "alert(1)" not in md.get_text()
    assert all(not img.has_attr("onerror") for img in soup.find_all("img"))


def test_pandas_table_still_looks_like_a_table(ok_html):
    table = soup_of(ok_html).select_one("table.dataframe")
    assert table is not None
    cells = [td.get_text() for td in table.select("tbody td")]
    assert cells == ["south", XSS_SCRIPT, XSS_IMG, "ok"]  # shown as text
    assert [th.get_text() for th in table.select("thead th")][1:] == ["region", "note"]


def test_widget_view_and_saved_state_are_embedded(ok_html):
    soup = soup_of(ok_html)
    view = soup.select_one('.l2l-widget script[type="application/vnd.jupyter.widget-view+json"]')
    model_id = json.loads(view.string)["model_id"]
    state = json.loads(soup.select_one('script[type="application/vnd.jupyter.widget-state+json"]').string)
    assert state["state"][model_id]["state"]["value"] == 7
    assert soup.select_one('script[src="../../assets/widgets/embed.js"]') is not None
    # The figures are drawn (lab2land.js) before the widget manager evaluates: deferred, in order.
    scripts = [s["src"].rsplit("/", 1)[-1] for s in soup.select("head script[src]")]
    assert scripts.index("lab2land.js") < scripts.index("embed.js")
    assert scripts.index("plotly-basic.min.js") < scripts.index("lab2land.js")


def test_third_party_widgets_fall_back_to_text():
    """embed.js can only draw the built-in widgets offline; a bqplot figure (even inside a
    built-in VBox) shows its text repr instead of an empty box."""
    model = lambda module, name, **state: {"model_module": module, "model_name": name,  # noqa: E731
                                           "model_module_version": "*", "state": state}
    state = {"aa01": model("@jupyter-widgets/controls", "VBoxModel", children=["IPY_MODEL_bb02"]),
             "bb02": model("bqplot", "FigureModel"),
             "cc03": model("@jupyter-widgets/controls", "IntSliderModel", value=3)}
    nb = v4.new_notebook()
    nb.metadata.widgets = {"application/vnd.jupyter.widget-state+json": {"state": state, "version_major": 2,
                                                                         "version_minor": 0}}
    for model_id, text in (("aa01", "VBox(children=(Figure(),))"), ("cc03", "IntSlider(value=3)")):
        view = {"model_id": model_id, "version_major": 2, "version_minor": 0}
        nb.cells.append(v4.new_code_cell("w", outputs=[v4.new_output(
            "display_data", data={"application/vnd.jupyter.widget-view+json": view, "text/plain": text})]))
    soup = soup_of(render.render_version(nb, page_context()))
    views = soup.select('script[type="application/vnd.jupyter.widget-view+json"]')
    assert [json.loads(v.string)["model_id"] for v in views] == ["cc03"]
    assert "VBox(children=(Figure(),))" in soup.get_text()
    nb.cells.pop()  # only the bqplot view left: no widget manager, no 'unsafe-eval'
    html = render.render_version(nb, page_context())
    assert "embed.js" not in html and "unsafe-eval" not in html


def test_csp_forbids_inline_script(ok_html, executed_nb):
    csp = soup_of(ok_html).select_one('meta[http-equiv="Content-Security-Policy"]')["content"]
    assert "default-src 'none'" in csp and "script-src 'self' 'unsafe-eval';" in csp
    assert "unsafe-inline" not in csp.split("script-src", 1)[1].split(";", 1)[0]
    plain = render.render_version(failed_notebook(), page_context("failed"))
    csp = soup_of(plain).select_one('meta[http-equiv="Content-Security-Policy"]')["content"]
    assert "script-src 'self';" in csp  # no widgets: no eval either
    assert "widgets/embed.js" not in plain


def test_mathjax_is_local_and_only_loaded_for_math(ok_html):
    soup = soup_of(ok_html)
    srcs = [s["src"] for s in soup.select("script[src]")]
    assert srcs.index("../../assets/mathjax-config.js") < srcs.index("../../assets/mathjax/tex-chtml-full.js")
    assert "$\\frac{a}{b} &lt; 1$" in ok_html  # TeX kept for MathJax, escaped
    plain = render.render_version(failed_notebook(), page_context("failed"))
    assert "mathjax" not in plain.lower()


def test_page_weight_is_small(ok_html):
    assert len(ok_html.encode()) < 150_000


def test_failed_run_has_banner_and_marks_the_failing_cell():
    html = render.render_version(failed_notebook(), page_context("failed"))
    soup = soup_of(html)
    banner = soup.select_one(".l2l-banner-error")
    assert "This run failed." in banner.get_text()
    assert "KeyError: 'amount'" in banner.get_text()
    assert "KeyError: 'amount' <b>in cell 4</b>" in banner.get_text()  # escaped, as text
    assert banner.select_one('a[href="#l2l-failed-cell"]') is not None
    failed = soup.select_one("section#l2l-failed-cell")
    assert "sales['amount'].sum()" in failed.select_one(".jp-InputArea").get_text()  # its code shows
    assert "KeyError" in failed.select_one('[data-mime-type="application/vnd.jupyter.stderr"]').get_text()
    assert "alert(4)" in failed.get_text() and not failed.find("script")
    assert "papermill-error-cell" not in html  # papermill's own banner cells are replaced
    assert len(soup.select(".jp-InputArea")) == 1  # other code stays hidden
    assert soup.select_one(".l2l-plotly-data") is not None  # outputs before the error still show


def test_failing_cell_from_reported_index_when_no_error_output():
    nb = failed_notebook()
    nb.cells[3].outputs = nb.cells[3].outputs[:1]  # a timeout leaves no error output
    nb.cells[3].metadata = {}
    html = render.render_version(nb, page_context("failed"))
    assert "sales['amount']" in soup_of(html).select_one("#l2l-failed-cell").get_text()


def test_cell_tags_are_honoured():
    nb = build_notebook([("code", "secret = 1", ["remove-cell"]), ("markdown", "gone", ["remove_cell"]),
                         ("code", "shown_code()", [])])
    nb.cells[0].outputs = [v4.new_output("stream", name="stdout", text="removed\n")]
    nb.cells[2].outputs = [v4.new_output("stream", name="stdout", text="visible\n")]
    html = render.render_version(nb, page_context(), show_code=True)
    assert "removed" not in html and "gone" not in html and "visible" in html
    nb.cells[2].metadata.tags = ["hide-input"]
    html = render.render_version(nb, page_context(), show_code=True)
    assert "shown_code" not in html and "visible" in html


def test_grid_layout_places_cells_from_dashboard_metadata():
    nb = build_notebook([("markdown", "# Title", []), ("markdown", "hidden one", []), ("markdown", "unplaced", [])])
    views = {"grid_default": {"type": "grid", "numColumns": 6, "cellHeight": 30}}  # older spelling
    nb.metadata.extensions = {"jupyter_dashboards": {"views": views}}
    place = lambda **v: {"extensions": {"jupyter_dashboards": {"views": {"grid_default": v}}}}  # noqa: E731
    nb.cells[0].metadata.update(place(col=0, row=0, width=4, height=2))
    nb.cells[1].metadata.update(place(col=None, row=None, hidden=True))
    html = render.render_version(nb, page_context(), layout="grid")
    soup = soup_of(html)
    assert "l2l-layout-grid" in soup.body["class"]
    assert soup.select_one("article.l2l-notebook")["style"] == "--l2l-cols: 6; --l2l-row-h: 30px"
    cells = soup.select(".l2l-grid-cell")
    assert [c["style"] for c in cells] == ["grid-column: 1 / span 4; grid-row: 1 / span 2",
                                           "grid-column: 1 / -1; grid-row: 3"]
    assert "hidden one" not in html


def test_bad_context_and_layout_fail_clearly(executed_nb):
    page = page_context()
    del page["links"]["versions_js"]
    with pytest.raises(ValueError, match=r"page\['links'\] lacks 'versions_js'"):
        render.render_version(executed_nb, page)
    with pytest.raises(ValueError, match="expected one of flow, grid"):
        render.render_version(executed_nb, page_context(), layout="masonry")


def test_exporter_is_cached_per_configuration(executed_nb):
    render.render_version(executed_nb, page_context())
    before = render._exporter.cache_info()
    start = time.perf_counter()
    render.render_version(executed_nb, page_context())
    assert render._exporter.cache_info().hits == before.hits + 1
    assert render._exporter.cache_info().currsize == before.currsize
    assert time.perf_counter() - start < 1.0


def test_input_notebook_is_not_modified(executed_nb):
    before = json.dumps(executed_nb, sort_keys=True)
    render.render_version(executed_nb, page_context("failed"))
    assert json.dumps(executed_nb, sort_keys=True) == before


# --- site pages ------------------------------------------------------------------------

def variant(key="south", latest_status="ok", failure=True):
    return {"key": key, "label": f"region={key}", "parameters": {"region": key},
            "latest": {"id": f"20261124T100000Z-{key}", "url": f"sales/20261124T100000Z-{key}/index.html",
                       "created": "2026-11-24T10:00:00Z", "status": latest_status, "duration_s": 74.0},
            "last_failure": {"id": f"20261124T110000Z-{key}", "url": f"sales/20261124T110000Z-{key}/index.html",
                             "created": "2026-11-24T11:00:00Z", "summary": "KeyError: <b>'amount'</b>"}
            if failure else None}


def index_context():
    return {"site": {"title": "Acme <Analytics>", "description": "Team reports"},
            "generated": "2026-11-25T00:00:00Z", "assets": "assets/",
            "reports": [{"name": "sales", "title": "Sales & Margin", "description": "By region",
                         "tags": ["finance"], "url": "sales/index.html", "dashboard_url": None,
                         "variants": [variant("south"), variant("north", failure=False)]},
                        {"name": "churn", "title": "Churn <model>", "description": "", "tags": [],
                         "url": "churn/index.html", "dashboard_url": "../dashboards/churn/",
                         "variants": [{"key": "default", "label": "", "parameters": {}, "latest": None,
                                       "last_failure": None}]}]}


def history_context():
    versions = [{"id": f"2026112{d}T100000Z-south", "variant": "south", "label": "region=south",
                 "status": "ok" if d % 2 else "failed", "parameters": {"region": "south"},
                 "created": f"2026-11-2{d}T10:00:00Z", "duration_s": 3.0 + d,
                 "url": f"2026112{d}T100000Z-south/index.html", "notebook_url": f"2026112{d}T100000Z-south/sales.ipynb",
                 "summary": "" if d % 2 else "ValueError: <script>alert(6)</script>", "is_latest": d == 3}
                for d in (4, 3, 2, 1)]
    return {"site": {"title": "Acme", "description": ""}, "generated": "2026-11-25T00:00:00Z",
            "assets": "../assets/", "site_url": "../index.html",
            "report": {"name": "sales", "title": "Sales & Margin", "description": "By region",
                       "tags": ["finance"], "dashboard_url": None},
            "variants": [variant("south")], "versions": versions}


def test_index_page_lists_reports():
    html = render.render_site_page("index.html.j2", index_context())
    soup = soup_of(html)
    assert soup.title.string == "Acme <Analytics>"
    cards = soup.select(".l2l-card")
    assert [c.select_one("h2 a").get_text() for c in cards] == ["Sales & Margin", "Churn <model>"]
    assert cards[0].select_one("h2 a")["href"] == "sales/index.html"
    assert cards[0].select_one('a[href="sales/20261124T100000Z-south/index.html"]') is not None
    failure = cards[0].select(".l2l-failure-line")
    assert len(failure) == 1 and "KeyError: <b>'amount'</b>" in failure[0].get_text()
    assert "no successful run yet" in cards[1].get_text()
    assert cards[1].select_one('a[href="../dashboards/churn/"]') is not None
    assert soup.select_one('link[href="assets/lab2land.css"]') and soup.select_one('script[src="assets/lab2land.js"]')
    assert "<b>" not in html


def test_history_page_lists_versions_newest_first():
    html = render.render_site_page("history.html.j2", history_context())
    soup = soup_of(html)
    rows = soup.select("table.l2l-table tbody tr")
    assert [r.select_one("a")["href"] for r in rows] == [f"2026112{d}T100000Z-south/index.html" for d in (4, 3, 2, 1)]
    assert rows[1].select_one(".l2l-badge-latest") is not None
    assert "alert(6)" in rows[0].get_text() and not soup.select("tbody script")
    assert soup.select_one(".l2l-brand")["href"] == "../index.html"
    assert soup.select_one('meta[http-equiv="Content-Security-Policy"]')["content"].startswith("default-src 'none'")


def test_site_page_errors_are_clear():
    ctx = history_context()
    del ctx["report"]["tags"]
    with pytest.raises(ValueError, match="history.html.j2: the page context is missing a value"):
        render.render_site_page("history.html.j2", ctx)
    with pytest.raises(ValueError, match="expected one of index.html.j2, history.html.j2"):
        render.render_site_page("feed.xml.j2", ctx)


def test_template_dirs_override_and_fingerprint(tmp_path):
    base = templating.template_fingerprint()
    assert base == templating.template_fingerprint() and len(base) == 64
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html.j2").write_text("custom {{ site.title }}")
    assert render.render_site_page("index.html.j2", index_context(), template_dirs=[tmp_path]) == \
        "custom Acme &lt;Analytics&gt;"
    changed = templating.template_fingerprint([tmp_path])
    assert changed != base
    (tmp_path / "site" / "index.html.j2").write_text("custom2 {{ site.title }}")
    assert templating.template_fingerprint([tmp_path]) != changed


# --- assets and sanitizing ---------------------------------------------------------------

def test_install_assets_is_complete_and_idempotent(tmp_path):
    out = assets.install_assets(tmp_path)
    assert out == tmp_path / "assets"
    for name in ("plotly.min.js", "plotly-basic/plotly-basic.min.js", "plotly-cartesian/plotly-cartesian.min.js",
                 "plotly-svg/plotly-svg.min.js",
                 "notebook.css", "lab2land.css", "lab2land.js", "widgets/embed.js",
                 "mathjax-config.js", "mathjax/tex-chtml-full.js",
                 "mathjax/output/chtml/fonts/woff-v2/MathJax_Main-Regular.woff"):
        assert (out / name).stat().st_size > 0, name
    assert list((out / "widgets").glob("*.woff2"))  # embed.js loads its icon fonts from beside it
    css = (out / "notebook.css").read_text() + (out / "lab2land.css").read_text()
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", css) and "@import" not in css
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert assets.install_assets(tmp_path) == out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == mtimes
    assert not list(out.rglob("*.tmp"))


def test_json_for_script_cannot_close_its_tag():
    text = sanitize.json_for_script({"t": XSS_TITLE, "a": "x & y", "n": float("nan"), "s": "\u2028"})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"t": XSS_TITLE, "a": "x & y", "n": None, "s": "\u2028"}


@pytest.mark.parametrize("dirty, forbidden", [
    (XSS_SCRIPT, "alert"), (XSS_IMG, "onerror"), ('<a href="javascript:alert(1)">x</a>', "javascript"),
    ('<a href="data:text/html,<script>alert(1)</script>">x</a>', "data:"),
    ('<iframe src="x"></iframe>', "iframe"), ('<div style="position:fixed;top:0">s</div>', "position"),
    ('<form action="x"><input type="text"></form>', "form"), ("<style>body{}</style>", "body{"),
])
def test_clean_html_removes_active_content(dirty, forbidden):
    assert forbidden not in sanitize.clean_html(dirty)


def test_clean_html_keeps_harmless_inline_styles():
    kept = sanitize.clean_html('<div style="display:flex;gap:12px;color:#6b7280;position:absolute">k</div>')
    assert kept == '<div style="display:flex;gap:12px;color:#6b7280">k</div>'


def test_clean_html_keeps_tables_and_inline_images():
    png = "data:image/png;base64,iVBORw0KGgo="
    kept = sanitize.clean_html(f'<table border="1" class="dataframe"><tr><th colspan="2">h</th></tr></table>'
                               f'<img src="{png}" alt="p">')
    assert '<table border="1" class="dataframe">' in kept and 'colspan="2"' in kept and png in kept


def test_fingerprint_ignores_the_dashboard_template_but_not_page_templates(tmp_path, monkeypatch):
    # Editing the Voila grid template must not re-execute every report; editing a page template must.
    copy = tmp_path / "templates"
    shutil.copytree(templating.TEMPLATES_DIR, copy)
    monkeypatch.setattr(templating, "TEMPLATES_DIR", copy)
    base = templating.template_fingerprint()
    (copy / "grid" / "index.html.j2").write_text("changed dashboard template")
    assert templating.template_fingerprint() == base
    (copy / "report" / "index.html.j2").write_text("changed report template")
    assert templating.template_fingerprint() != base
