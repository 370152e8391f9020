"""Widgets painted on the server (lab2land.widget_paint), from real ipywidgets 8 state.

The browser side (the picture in place before the kernel connects, no layout jump when the
live view replaces it) is tested in test_dashboard_paint.py; here: what each picture says,
and that no value from the notebook becomes markup, script or a style of its own.
"""

from __future__ import annotations

import html
import itertools
import re
from html.parser import HTMLParser

import ipywidgets as widgets
import pytest

from lab2land.dashboard_paint import _clean_state
from lab2land.widget_paint import pictures


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _tags(markup: str) -> list[tuple[str, dict]]:
    """Every element of ``markup``, as a browser's parser sees it: (tag, attributes)."""
    parser = _Tags()
    parser.feed(markup)
    return parser.tags


def _state() -> dict:
    """The widget state as the dashboard's hidden last cell saves it (cleaned as a page's is)."""
    return _clean_state(widgets.Widget.get_manager_state(drop_defaults=True))


@pytest.fixture(autouse=True)
def _no_widgets_left():
    yield
    widgets.Widget.close_all()


def test_each_control_shows_its_initial_state():
    wide = {"style": {"description_width": "190px"}, "layout": widgets.Layout(width="95%")}
    box = widgets.VBox([
        widgets.HTML("<b>Describe a transaction</b>"),
        widgets.BoundedFloatText(value=420.0, min=0, max=100_000, description="Amount ($)", **wide),
        widgets.IntSlider(value=2, min=0, max=23, description="Hour of day", **wide),
        widgets.FloatSlider(value=2.5),
        widgets.Dropdown(options=["books", "electronics"], value="electronics", description="Category"),
        widgets.Checkbox(value=True, description="Card present", indent=False),
        widgets.Button(description="Score", button_style="primary"),
        widgets.HBox([widgets.Text(value="Ada"), widgets.Label("a label")]),
    ])
    picture = pictures(_state(), [box.model_id])[box.model_id]
    assert '<b>Describe a transaction</b>' in picture
    assert 'style="width: 95%"' in picture and 'style="width: 190px">Amount ($)<' in picture
    assert 'type="number" value="420"' in picture  # as the browser shows 420.0
    hour = re.search(r'Hour of day</span>.*?left: ([\d.]+)%.*?l2l-w-readout">(\d+)<', picture)
    assert hour and abs(float(hour.group(1)) - 2 / 23 * 100) < 0.01 and hour.group(2) == "2"
    assert 'l2l-w-readout">2.50<' in picture  # FloatSlider's default readout format, .2f
    assert "<option selected>electronics</option>" in picture
    assert re.search(r'style="display: none"></span><label class="l2l-w-check"><input type="checkbox" '
                     r'tabindex="-1" checked><span>Card present</span>', picture)  # indent=False: no spacer
    assert 'l2l-w-button l2l-w-button-primary">Score<' in picture
    assert 'flex-direction: row' in picture and 'value="Ada"' in picture and ">a label<" in picture
    # Nothing is taken for a live widget by what looks for one:
    assert not re.search(r'class="[^"]*\b(widget-|jupyter-)', picture)


def test_text_from_the_notebook_never_becomes_markup_or_style():
    evil = '"><img src=x onerror=alert(1)><script>alert(2)</script>'
    box = widgets.VBox([
        widgets.Text(value=evil, placeholder=evil, description=evil),
        widgets.Label(evil),
        widgets.Dropdown(options=[evil]),
        widgets.Checkbox(description=evil),
        button := widgets.Button(description=evil),
        widgets.HTML(evil),
        widgets.IntSlider(description="<b>bold</b>" + evil, description_allow_html=True),
        widgets.IntText(layout=widgets.Layout(width="1px; background: url(https://x.test/)", height="28px")),
    ])
    state = _state()
    # ipywidgets checks colors in the kernel; a notebook can still send any state it likes.
    state["state"][button.style.model_id]["state"]["button_color"] = "red; background-image: url(https://x.test/)"
    picture = pictures(state, [box.model_id])[box.model_id]
    tags = _tags(picture)
    assert {t for t, _ in tags} <= {"div", "span", "label", "input", "select", "option", "b", "img"}
    assert all(not a.startswith("on") for _, attrs in tags for a in attrs), tags  # no handler anywhere
    assert [attrs for t, attrs in tags if t == "img"] == [{"src": "x"}] * 2  # the HTML values, cleaned
    assert "url(" not in picture
    assert picture.count(html.escape(evil, quote=False).replace('"', "&#34;")) >= 5  # shown as text
    assert "<b>bold</b>" in picture  # description_allow_html: cleaned HTML
    assert 'style="height: 28px"' in picture  # the plain layout value is kept, the other dropped


@pytest.mark.parametrize("make", [
    lambda: widgets.Output(),  # shows outputs of its own: embed.js / Voila draw it
    lambda: widgets.VBox([widgets.IntSlider(), widgets.ToggleButtons(options=["a", "b"])]),
    lambda: widgets.IntSlider(orientation="vertical"),
], ids=["output", "box-with-unknown-child", "vertical-slider"])
def test_a_view_it_cannot_paint_leaves_the_whole_page_to_embed_js(make):
    painted, other = widgets.IntSlider(), make()
    assert pictures(_state(), [painted.model_id]) is not None
    assert pictures(_state(), [painted.model_id, other.model_id]) is None


def test_missing_or_cyclic_models_are_not_painted():
    box = widgets.VBox([widgets.IntSlider()])
    state = _state()
    assert pictures(state, ["not-a-model"]) is None
    state["state"][box.model_id]["state"]["children"] = [f"IPY_MODEL_{box.model_id}"]  # contains itself
    assert pictures(state, [box.model_id]) is None
    # Each box listing the next one twice: 2**40 widgets to paint if nothing stopped it.
    chain = [widgets.VBox() for _ in range(40)]
    state = _state()
    for outer, inner in itertools.pairwise(chain):
        state["state"][outer.model_id]["state"]["children"] = [f"IPY_MODEL_{inner.model_id}"] * 2
    assert pictures(state, [chain[0].model_id]) is None
    assert pictures(state, []) is None and pictures(None, [box.model_id]) is None
