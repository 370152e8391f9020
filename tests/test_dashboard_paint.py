"""First paint of a dashboard (lab2land.dashboard_paint): the preheated kernel's figures, tables
and widgets are on screen before Voila's front end has loaded or the kernel websocket opened;
then the widgets become live in place."""

from __future__ import annotations

import json
import re

import pytest
import requests
from nbformat.v4 import new_code_cell

from conftest import write_project
from serve_util import SITE, Server, grid_notebook, view, widgets_notebook

VOILA_MAIN = "**/voila/static/voila.js"


def _unsafe_notebook():
    """Outputs and widget state that would run script if painted unsanitized."""
    return grid_notebook([
        new_code_cell("from IPython.display import HTML, display\n"
                      "display(HTML('<b class=\"kept\">table</b><img src=x onerror=\"window.l2lRan=1\">'"
                      "'<script>window.l2lRan=2</script>'))", metadata=view(0, 0, 12, 2)),
        new_code_cell("import ipywidgets as w\n"
                      "w.HTML('<i class=\"kept-w\">widget</i><img src=x onerror=\"window.l2lRan=3\">')",
                      metadata=view(0, 2, 6, 2)),
        new_code_cell("out = w.Output()\nwith out:\n    display(HTML('<u class=\"kept-o\">out</u>'))\nout",
                      metadata=view(6, 2, 6, 2)),
    ])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    project = tmp_path_factory.mktemp("paint")
    write_project(project, {"widgets.ipynb": widgets_notebook(), "unsafe.ipynb": _unsafe_notebook()}, {
        "widgets": {"notebook": "widgets.ipynb", "title": "Widgets", "dashboard": True, "pool_size": 1},
        "unsafe": {"notebook": "unsafe.ipynb", "title": "Unsafe", "dashboard": True, "pool_size": 0,
                   "takes_parameters": False},
    }, site=SITE)
    srv = Server(project)
    yield srv
    srv.stop()


def _hold_voila(page) -> list:
    """Hold back Voila's front end (so no kernel websocket can open) until released."""
    held = []
    page.route(VOILA_MAIN, lambda route: held.append(route))
    return held


def _boxes(page) -> list[tuple[float, float, float]]:
    return page.evaluate("[...document.querySelectorAll('.l2l-cell')].map(c => {"
                         "const r = c.getBoundingClientRect(); return [r.x, r.y, r.width]; })")


def test_figures_and_widgets_painted_before_the_kernel_connects_then_live(server, page):
    sockets = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    held = _hold_voila(page)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(server.url + "/dashboards/widgets/")
    page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
    page.wait_for_selector(".l2l-prepaint", timeout=60_000)
    page.wait_for_function("document.body.classList.contains('l2l-painted')", timeout=60_000)
    # Painted from the preheated kernel's outputs and widget state alone:
    assert held and sockets == []
    text = page.inner_text("#rendered_cells")
    assert "Widgets demo" in text and "square=9" in text and "flowing text 3" in text
    slider = page.locator(".l2l-prepaint", has_text="n").first
    assert slider.is_visible() and "3" in slider.inner_text()
    assert slider.evaluate("el => el.inert")  # a picture of the widget, not usable yet
    assert page.locator(".widget-slider").count() == 0  # nothing takes it for the live widget
    before = _boxes(page)

    held[0].continue_()
    page.wait_for_function("document.body.classList.contains('l2l-live')", timeout=90_000)
    assert any("/api/kernels/" in url for url in sockets)
    assert page.locator(".l2l-prepaint").count() == 0
    assert page.locator(".js-plotly-plot").count() == 1  # the figure is not drawn twice
    after = _boxes(page)
    assert len(after) == len(before)
    for (x0, y0, w0), (x1, y1, w1) in zip(before, after, strict=True):  # no layout jump when going live
        assert abs(x0 - x1) <= 2 and abs(y0 - y1) <= 2 and abs(w0 - w1) <= 2
    page.focus(".widget-slider .noUi-handle")
    page.keyboard.press("ArrowRight")
    page.wait_for_function("document.body.innerText.includes('square=16')", timeout=20_000)
    assert page.external_requests == []
    assert [e for e in page.console_errors if "l2l" in e or "/lab2land/" in e] == []


def test_painted_outputs_and_widget_state_cannot_run_script(server, page):
    held = _hold_voila(page)
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(server.url + "/dashboards/unsafe/")
    page.wait_for_selector("b.kept", timeout=90_000)
    page.wait_for_function("document.body.classList.contains('l2l-painted')", timeout=60_000)
    assert page.inner_text(".l2l-grid").count("widget") == 1
    assert "out" in page.inner_text(".l2l-grid")
    # (The widgets' text/plain repr in Voila's data blocks may quote the markup; it is never HTML.)
    state = page.inner_text('script[type="application/vnd.jupyter.widget-state+json"]')
    assert "kept-w" in state and "onerror" not in state
    assert page.evaluate("document.querySelectorAll('[onerror], .l2l-grid script:not([type]):not([src])').length") == 0
    assert "l2lRan=2" not in page.inner_html(".l2l-grid")
    assert page.evaluate("window.l2lRan") is None
    held[0].continue_()
    page.wait_for_function("document.body.classList.contains('l2l-live')", timeout=90_000)
    page.wait_for_selector(".widget-html i.kept-w", timeout=30_000)
    page.wait_for_selector(".widget-output u.kept-o", timeout=30_000)
    assert page.evaluate("window.l2lRan") is None and dialogs == []


def _config(text: str) -> dict:
    block = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', text, re.S)
    return json.loads(block.group(1))


def test_only_the_front_end_extensions_the_outputs_need(server):
    names = {r: [e["name"] for e in _config(requests.get(f"{server.url}/dashboards/{r}/", timeout=120).text)
                 ["federated_extensions"]] for r in ("widgets", "unsafe")}
    # Figures are painted by plotly.min.js: the 4.8 MB jupyterlab-plotly bundle is only for a
    # page whose Output widget may show one later.
    assert "jupyterlab-plotly" not in names["widgets"]
    assert "jupyterlab-plotly" in names["unsafe"]
    assert "@jupyter-widgets/jupyterlab-manager" in names["widgets"]


def test_paint_assets_served_and_nothing_else(server):
    page = requests.get(server.url + "/dashboards/widgets/", timeout=120).text
    # A bar chart: plotly.js's basic partial bundle draws it (lab2land.dashboard_paint.plotly_bundle).
    src = re.search(r'src="(/lab2land/static/plotly-basic\.min\.js\?v=[0-9a-f]+)"', page).group(1)
    first = requests.get(server.url + src, timeout=30)
    assert first.status_code == 200 and "immutable" in first.headers["Cache-Control"]
    assert first.content.startswith(b"/**") or b"plotly" in first.content[:2000].lower()
    for path in ("widgets/embed.js", "lab2land.js"):
        assert requests.get(f"{server.url}/lab2land/static/{path}", timeout=30).status_code == 200
    for path in ("widgets/.pinned.json", "../serve.py", "plotly.js", "%2e%2e/dashboards.py", ""):
        assert requests.get(f"{server.url}/lab2land/static/{path}", timeout=30).status_code == 404, path


def test_static_outputs_are_painted_as_inert_html():
    from lab2land.dashboard_paint import output_kind, static_html

    assert output_kind({"data": {"text/latex": "$x$", "text/plain": "x"}}) == "voila"  # LaTeX: Voila's
    assert output_kind({"data": {"application/vnd.plotly.v1+json": {"data": []}, "text/html": ""}}) == "plotly"
    text = static_html({"data": {"text/plain": "<img src=x onerror=alert(1)>\x1b[31mred"}})
    assert "<img" not in text and "&lt;img" in text and "ansi-red-fg" in text
    assert static_html({"data": {"image/png": '"><script>alert(1)</script>'}}) == ""
    svg = static_html({"data": {"image/svg+xml": "<svg onload='alert(1)'></svg>"}})
    assert svg.startswith('<div class="jp-RenderedImage') and "onload" not in svg  # an <img>, base64
    sized = static_html({"data": {"image/png": "iVBORw=="}, "metadata": {"image/png": {"width": "1 onload=x"}}})
    assert "onload" not in sized


def _executed(models: dict, view_output: bool = True):
    from nbformat.v4 import new_notebook, new_output

    from lab2land.dashboard_paint import STATE_MIME

    view = new_output("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "a"}})
    state = new_output("display_data", data={STATE_MIME: {"version_major": 2, "version_minor": 0, "state": models}})
    return new_notebook(cells=[
        new_code_cell("w", outputs=[view] if view_output else [], metadata={"lab2land": {"grid": {}}}),
        new_code_cell("state", outputs=[state], metadata={"lab2land": {"grid": {"hidden": True},
                                                                       "widget_state": True}})])


def test_page_paint_draws_only_what_it_can_paint():
    from lab2land.dashboard_paint import page_paint

    html = {"a": {"model_name": "HTMLModel", "model_module": "@jupyter-widgets/controls",
                  "state": {"value": "<img src=x onerror=alert(1)><b>ok</b>"}}}
    paint = page_paint(_executed(html))
    assert paint["pictures"] and not paint["widgets"] and not paint["plotly_extension"]  # painted as HTML
    assert "onerror" not in paint["state"]["state"]["a"]["state"]["value"]  # cleaned like any widget state
    assert "onerror" not in paint["pictures"]["a"] and "<b>ok</b>" in paint["pictures"]["a"]
    toggles = {"a": {"model_name": "ToggleButtonsModel", "model_module": "@jupyter-widgets/controls", "state": {}}}
    paint = page_paint(_executed(toggles))
    assert paint["widgets"] and paint["pictures"] is None  # no HTML picture of it: embed.js draws it
    output = {"a": {"model_name": "OutputModel", "model_module": "@jupyter-widgets/output", "state": {}}}
    assert page_paint(_executed(output))["plotly_extension"]  # may show a figure later
    leaflet = {"a": {"model_name": "LeafletMapModel", "model_module": "jupyter-leaflet", "state": {}}}
    assert not page_paint(_executed(leaflet))["widgets"]  # would need a CDN: Voila draws it
    assert not page_paint(_executed(html, view_output=False))["widgets"]


@pytest.mark.parametrize("key", ["plotly-basic", "plotly-cartesian", "plotly-svg"])
def test_each_partial_bundle_draws_the_trace_types_lab2land_picks_it_for(page, tmp_path, key):
    """The trace lists in lab2land.vendor are what each pinned bundle registers (Plotly.PlotSchema,
    in Chromium): a figure is never sent to a bundle that cannot draw it."""
    from lab2land import vendor
    from lab2land.dashboard_paint import ASSET_PATHS

    html = tmp_path / "bundle.html"
    html.write_text(f'<script src="{ASSET_PATHS[f"{key}.min.js"].as_uri()}"></script>', encoding="utf-8")
    page.goto(html.as_uri())
    registered = set(page.evaluate("Object.keys(Plotly.PlotSchema.get().traces)"))
    assert set(vendor.PACKAGES[key]["traces"]) <= registered, registered


def test_the_smallest_bundle_that_draws_every_trace_is_picked():
    from lab2land.dashboard_paint import plotly_bundle
    from lab2land.page_needs import trace_types

    assert trace_types({"data": [{"x": [1]}, {"type": "bar"}]}) == {"scatter", "bar"}  # scatter: plotly's default
    assert plotly_bundle({"scatter", "bar"}) == "plotly-basic.min.js"
    assert plotly_bundle({"scatter", "heatmap"}) == "plotly-cartesian.min.js"
    assert plotly_bundle({"scatter", "scattergeo", "treemap"}) == "plotly-svg.min.js"
    assert plotly_bundle({"scatter", "scattergl"}) == "plotly.min.js"  # WebGL: only the full bundle
    assert plotly_bundle(trace_types({"data": ["not a trace"]})) == "plotly.min.js"
    assert plotly_bundle(set()) == "plotly-basic.min.js"
