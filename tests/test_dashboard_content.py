"""What a dashboard shows of a notebook: the static pages' cell-tag rule and their sanitizer,
Output widgets included, in a real headless Chromium against a real ``publish.py serve``."""

from __future__ import annotations

import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from conftest import kernelspec, write_project
from lab2land import cell_tags
from serve_util import SITE, Server

EVIL = "<b class='kept'>bold</b><iframe class='evil' srcdoc='<p>framed</p>'></iframe><style>body{display:none}</style>"


def _notebook(*cells):
    nb = new_notebook(cells=[new_code_cell("n = 1", metadata={"tags": ["parameters"]}), *cells])
    nb.metadata["kernelspec"] = kernelspec()
    return nb


def tags_notebook():
    return _notebook(
        new_markdown_cell("visible markdown"),
        new_markdown_cell("removed markdown", metadata={"tags": ["remove-cell"]}),
        new_code_cell("secret = 'computed'\nprint('removed cell output')", metadata={"tags": ["remove_cell"]}),
        new_code_cell("print('removed output')", metadata={"tags": ["remove-output"]}),
        new_code_cell("print('hidden output')", metadata={"tags": ["hide-output"]}),
        new_code_cell("print('shown output', secret)", metadata={"tags": ["hide-input"]}),
    )


def output_widget_notebook():
    return _notebook(new_code_cell(
        "import ipywidgets as w\nfrom IPython.display import HTML, display\n"
        "out = w.Output()\n"
        f"with out:\n    display(HTML({EVIL!r}))\n"
        "button = w.Button(description='more')\n"
        "def more(_):\n"
        f"    with out:\n        display(HTML({EVIL!r}.replace('kept', 'later')))\n"
        "button.on_click(more)\n"
        "w.VBox([button, out])"))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    project = write_project(tmp_path_factory.mktemp("content"), {
        "tags.ipynb": tags_notebook(), "out.ipynb": output_widget_notebook()}, {
        "tags": {"notebook": "tags.ipynb", "title": "Tags", "dashboard": True, "pool_size": 0},
        "out": {"notebook": "out.ipynb", "title": "Output widget", "dashboard": True, "pool_size": 0},
    }, site=SITE)
    srv = Server(project)
    yield srv
    srv.stop()


def test_one_rule_for_tags():
    cell = lambda *tags: {"cell_type": "code", "metadata": {"tags": list(tags)}}  # noqa: E731
    assert cell_tags.visibility(cell("remove-cell")) == cell_tags.Visibility(False, False, False)
    assert cell_tags.visibility(cell("hide_input")) == cell_tags.Visibility(True, False, True)
    assert cell_tags.visibility(cell("hide-output")) == cell_tags.Visibility(True, True, False)
    assert cell_tags.visibility({"metadata": {"tags": "remove-cell"}}) == cell_tags.Visibility()  # malformed


def test_dashboard_honours_the_static_pages_cell_tags(server, page):
    page.goto(server.url + "/dashboards/tags/")
    page.wait_for_function("document.body.innerText.includes('shown output computed')", timeout=90_000)
    text = page.inner_text("body")
    assert "visible markdown" in text
    for gone in ("removed markdown", "removed cell output", "removed output", "hidden output"):
        assert gone not in text
    assert "print(" not in page.content()


def test_output_widget_html_is_sanitized_on_the_dashboard(server, page):
    page.goto(server.url + "/dashboards/out/")
    page.wait_for_selector(".widget-output b.kept", timeout=90_000)
    page.click("button:has-text('more')")
    page.wait_for_selector(".widget-output b.later", timeout=20_000)
    assert page.query_selector_all("iframe") == []
    assert page.eval_on_selector("body", "b => getComputedStyle(b).display") != "none"
