"""The plotly.js bundles lab2land builds from sources (lab2land.vendor, vendor/plotly/) draw
a figure exactly as plotly.py's own full plotly.min.js does: same pixels, in Chromium."""

from __future__ import annotations

import json

import numpy as np
import plotly.graph_objects as go
import pytest

from lab2land import page_needs, vendor
from lab2land.dashboard_paint import ASSET_PATHS

rng = np.random.default_rng(7)
FIGURES = {
    "bar and line": go.Figure([go.Bar(x=["a", "b", "c"], y=[3, 1, 2]), go.Scatter(x=["a", "b", "c"], y=[2, 3, 1])]),
    "pie": go.Figure(go.Pie(labels=["x", "y", "z"], values=[5, 3, 2], hole=0.3)),
    "histogram": go.Figure([go.Histogram(x=rng.normal(size=300), name="a"),
                            go.Histogram(x=rng.normal(1, 1, size=300), name="b")],
                           layout={"barmode": "overlay", "title": {"text": "Scores"}}),
    "heatmap": go.Figure(go.Heatmap(z=rng.random((8, 8)))),
    "treemap": go.Figure(go.Treemap(labels=["all", "a", "b", "c"], parents=["", "all", "all", "a"],
                                    values=[0, 3, 2, 1])),
    "sankey": go.Figure(go.Sankey(node={"label": ["in", "x", "out"]},
                                  link={"source": [0, 0, 1], "target": [1, 2, 2], "value": [4, 2, 3]})),
    "indicator": go.Figure(go.Indicator(mode="number+delta+gauge", value=42, delta={"reference": 40})),
    "polar": go.Figure(go.Scatterpolar(r=[1, 3, 2, 4], theta=[0, 90, 180, 270], fill="toself")),
}


def _draw(page, tmp_path, bundle: str, figure: go.Figure) -> bytes:
    html = tmp_path / "figure.html"
    html.write_text(f'<body style="margin:0"><div id="fig" style="width:640px;height:420px"></div>'
                    f'<script src="{ASSET_PATHS[bundle].as_uri()}"></script></body>', encoding="utf-8")
    page.goto(html.as_uri())
    fig = json.loads(figure.to_json())
    page.evaluate("fig => Plotly.newPlot('fig', fig.data, fig.layout, {staticPlot: true})", fig)
    page.wait_for_selector("#fig .main-svg")
    return page.locator("#fig").screenshot(animations="disabled")


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_each_built_bundle_draws_what_the_full_plotly_js_draws(page, tmp_path, name):
    traces = page_needs.trace_types(json.loads(FIGURES[name].to_json()))
    built = [key for key in page_needs.PARTIAL_BUNDLES
             if "build" in vendor.PACKAGES[key] and traces <= set(vendor.PACKAGES[key]["traces"])]
    assert built, f"no built bundle draws {traces}"
    full = _draw(page, tmp_path, "plotly.min.js", FIGURES[name])
    for key in built:
        assert _draw(page, tmp_path, f"{key}.min.js", FIGURES[name]) == full, f"{key} draws {name} otherwise"
    assert page.page_errors == []
