"""Real notebooks look on a version page as their authors made them, read in headless Chromium
from file://: pandas Styler colours, images beside the notebook and cell attachments, heading
anchors, TeX in widget labels and in plotly titles, Output widgets in an HBox, and HTML inside
Output widgets cleaned like every other output. Each notebook here is small, written to
reproduce one finding of the fidelity issue, and published for real by `publish.py build`."""

from __future__ import annotations

import base64
import json
import os
import struct
import zlib
from pathlib import Path

import nbformat
import pytest
from nbformat import v4

from conftest import kernelspec, run_cli, write_project
from test_render_browser import assert_clean, dialogs  # noqa: F401 - the fixture is used by name


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A solid-colour PNG of the given size."""
    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


STYLER = '''import pandas as pd
df = pd.DataFrame({"revenue": [10, 50, 90], "orders": [3, 1, 2]}, index=["north", "south", "west"])
(df.style.highlight_max(color="yellow")
   .set_properties(**{"color": "rgb(0, 0, 255)"}, subset=["orders"]).set_caption("KPIs"))'''
HOSTILE_CSS = r"""from IPython.display import HTML
HTML('<style>@import url(https://evil.example/x.css); body{display:none} * {color: rgb(255, 0, 0) !important}'
     ' } .l2l-title{display:none} p.own{background: url(javascript:alert(1)); width: expression(alert(2))}'
     ' ~ main {display:none} .cover {position: absolute; top: -3000px; left: -100px; width: 5000px;'
     ' height: 6000px; z-index: 99; background: rgb(255, 0, 0)}'
     ' .own::after {content: "</style><script>alert(3)</script>"}</style>'
     '<p class="own">styled by its own output</p><div class="cover"></div>')"""
WIDGETS = r'''import ipywidgets as w
from IPython.display import HTML, display
out = w.Output()
with out:
    print("printed inside")
    display(HTML('<iframe src="https://example.com/"></iframe>'
                 '<style>body{display:none}</style><b class="inside">bold inside</b>'))
display(w.Label("The $m$ in $E=mc^2$"), w.HTMLMath(value=r"area $\pi r^2$"),
        w.HBox([out, w.Button(description="press me")]))'''
PLOT_TEX = r'''import plotly.graph_objects as go
fig = go.Figure(go.Scatter(x=[1, 2, 3], y=[3, 1, 2], name=r"$\beta_2$"))
fig.update_layout(title=r"$\alpha_{1c} = \sqrt{2}$", xaxis_title=r"$x^2$", showlegend=True)
fig.show()'''


def fidelity_notebook() -> nbformat.NotebookNode:
    attachment = base64.b64encode(png(4, 3, (0, 0, 255))).decode()
    return v4.new_notebook(metadata={"kernelspec": kernelspec()}, cells=[
        v4.new_markdown_cell("# Contents\n\n* [Go to results](#Results)\n* [Pictures](#Pictures-here)"),
        v4.new_code_cell(STYLER),
        v4.new_code_cell(HOSTILE_CSS),
        v4.new_markdown_cell("## Pictures here\n\n![chart](img/chart%20one.png) ![dot](attachment:dot.png) "
                             "![outside](../secret.png) ![link](escape.png) ![abs](/etc/hosts)",
                             attachments={"dot.png": {"image/png": attachment}}),
        v4.new_code_cell(WIDGETS),
        v4.new_markdown_cell("Some text.\n\n" * 80 + "## Results\n\nThe end."),
    ])


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A site built by ``publish.py build`` (lab2land's own executor and publisher) of two reports:
    `fidelity` (the notebook above, with its images) and `tex` (a plotly figure with TeX)."""
    work = tmp_path_factory.mktemp("fidelity")
    folder = work / "notebooks"
    (folder / "img").mkdir(parents=True)
    (folder / "img" / "chart one.png").write_bytes(png(20, 10, (255, 0, 0)))
    (work / "secret.png").write_bytes(png(5, 5, (0, 255, 0)))
    os.symlink(work / "secret.png", folder / "escape.png")
    tex = v4.new_notebook(metadata={"kernelspec": kernelspec()},
                          cells=[v4.new_markdown_cell("Energy $E=mc^2$"), v4.new_code_cell(PLOT_TEX)])
    # 60 s cells: a widget cell can stall until its limit (nbclient #312), and must not cost more.
    common = {"takes_parameters": False, "timeout": 60}
    write_project(work, {"notebooks/fidelity.ipynb": fidelity_notebook(), "notebooks/tex.ipynb": tex}, {
        "fidelity": {"notebook": "notebooks/fidelity.ipynb", "title": "Fidelity", **common},
        "tex": {"notebook": "notebooks/tex.ipynb", "title": "TeX", **common}})
    done = run_cli("build", "--jobs", "2", project=work, timeout=400)
    assert done.returncode == 0, done.stdout + done.stderr
    return work / "reports"


def version_page(site: Path, report: str) -> Path:
    (manifest,) = (site / report).glob("*/manifest.json")
    return manifest.parent / "index.html"


@pytest.fixture
def report(site, page, dialogs):  # noqa: F811 - the imported fixture
    page.set_viewport_size({"width": 1200, "height": 800})
    page.goto(version_page(site, "fidelity").as_uri())
    page.locator(".widget-hbox").wait_for(state="visible", timeout=20_000)
    return page


# Images the page must not have read: outside the notebook's folder (a path, a symlink, absolute).
REFUSED = ("/secret.png", "/escape.png", "/etc/hosts")


def assert_clean_page(page, dialogs):  # noqa: F811
    """:func:`assert_clean`, except for the refused images, which stay dead links."""
    page.failed_files = [u for u in page.failed_files if not u.endswith(REFUSED)]
    if not page.failed_files:
        page.console_errors = [m for m in page.console_errors if "ERR_FILE_NOT_FOUND" not in m]
    assert_clean(page, dialogs)


def computed(page, selector: str, prop: str) -> str:
    return page.eval_on_selector(selector, f"e => getComputedStyle(e).getPropertyValue('{prop}')")


def test_styler_table_keeps_its_colours(report, dialogs):  # noqa: F811
    table = report.locator("table[id^='T_']")
    tid = table.get_attribute("id")
    assert computed(report, f"#{tid}_row2_col0", "background-color") == "rgb(255, 255, 0)"  # the max revenue
    assert computed(report, f"#{tid}_row0_col1", "background-color") == "rgb(255, 255, 0)"  # the max orders
    assert computed(report, f"#{tid}_row1_col1", "color") == "rgb(0, 0, 255)"
    assert computed(report, f"#{tid}_row0_col0", "background-color") != "rgb(255, 255, 0)"
    assert table.locator("caption").inner_text() == "KPIs"
    assert_clean_page(report, dialogs)


def test_output_css_cannot_restyle_the_page_or_other_outputs(report, dialogs):  # noqa: F811
    assert report.locator(".l2l-topbar").is_visible() and report.locator("h1.l2l-title").is_visible()
    assert computed(report, "body", "display") == "block"
    assert computed(report, "h1.l2l-title", "color") != "rgb(255, 0, 0)"
    tid = report.locator("table[id^='T_']").get_attribute("id")
    assert computed(report, f"#{tid}_row0_col0", "color") != "rgb(255, 0, 0)"  # the Styler output
    assert computed(report, "p.own", "color") == "rgb(255, 0, 0)"  # its own text is its own to style
    assert computed(report, "p.own", "background-image") == "none"  # url(javascript:) was dropped
    assert report.locator("main.l2l-main").is_visible()  # `~ main` reached nothing outside
    # A positioned overlay stays inside its output's box: the page's own links stay on top.
    for selector in (".l2l-topbar", '[data-l2l-nav="history"]', "table[id^='T_']"):
        report.locator(selector).first.scroll_into_view_if_needed()
        hit = report.eval_on_selector(selector, """e => { const r = e.getBoundingClientRect();
            const top = document.elementFromPoint(r.left + 5, r.top + 5); return e.contains(top); }""")
        assert hit, f"{selector} is covered by an output's positioned element"
    assert_clean_page(report, dialogs)


def test_images_beside_the_notebook_and_attachments_show(report, dialogs):  # noqa: F811
    sizes = report.eval_on_selector_all(".jp-MarkdownCell img", "imgs => imgs.map(i => [i.alt, i.naturalWidth])")
    assert dict(sizes) == {"chart": 20, "dot": 4, "outside": 0, "link": 0, "abs": 0}
    assert report.get_by_role("img", name="chart").is_visible() and report.get_by_role("img", name="dot").is_visible()
    # The ones outside the notebook's folder were never read: they stay links that load nothing.
    srcs = report.eval_on_selector_all(".jp-MarkdownCell img", "imgs => imgs.map(i => i.getAttribute('src'))")
    assert srcs[2:] == ["../secret.png", "escape.png", "/etc/hosts"]
    assert_clean_page(report, dialogs)


def test_table_of_contents_links_reach_their_headings(report, dialogs):  # noqa: F811
    for text, heading in (("Go to results", "Results"), ("Pictures", "Pictures here")):
        report.get_by_role("link", name=text).click()
        target = report.get_by_role("heading", name=heading)
        assert report.evaluate("location.hash") == "#" + target.get_attribute("id")
        report.wait_for_timeout(200)
        top = target.bounding_box()["y"]
        assert 0 <= top < 800, f"{heading!r} is not in view after following its link (y={top})"
    # The heading's own ¶ link holds nothing else: the text after it is not swallowed into it.
    assert report.get_by_text("The end.").is_visible()
    assert report.locator(".jp-MarkdownCell a.anchor-link p").count() == 0
    assert_clean_page(report, dialogs)


def test_math_in_widget_labels_is_typeset(report, dialogs):  # noqa: F811
    report.locator(".widget-label mjx-container").first.wait_for(timeout=20_000)
    report.locator(".widget-htmlmath mjx-container").first.wait_for(timeout=20_000)
    assert "$" not in report.locator(".widget-label").first.inner_text()
    assert_clean_page(report, dialogs)


def test_output_widget_beside_a_button_leaves_both_visible(report, dialogs):  # noqa: F811
    widths = report.eval_on_selector_all(".widget-hbox > *", "els => els.map(e => [e.scrollWidth, "
                                         "e.getBoundingClientRect().width])")
    assert len(widths) == 2
    for natural, shown in widths:
        assert shown > 40 and shown >= natural - 1, widths  # nothing squeezed below its content
    assert report.get_by_role("button", name="press me").is_visible()
    assert_clean_page(report, dialogs)


def test_html_inside_an_output_widget_is_sanitized(report, dialogs):  # noqa: F811
    inside = report.locator(".widget-output b.inside")
    assert inside.inner_text() == "bold inside" and "printed inside" in report.locator(".widget-output").inner_text()
    assert report.locator("iframe").count() == 0
    assert computed(report, "body", "display") == "block"  # its <style> reaches only its own box
    assert_clean_page(report, dialogs)


def test_plotly_tex_is_typeset_with_svg_mathjax(site, page, dialogs):  # noqa: F811
    page.goto(version_page(site, "tex").as_uri())
    plot = page.locator(".js-plotly-plot")
    plot.locator("[data-math='Y']").nth(2).wait_for(state="attached", timeout=20_000)
    shown = page.eval_on_selector_all(".js-plotly-plot svg text", "ts => ts.filter(t => "
                                      "getComputedStyle(t).display !== 'none').map(t => t.textContent)")
    assert shown and not [t for t in shown if "$" in t], shown
    page.locator(".jp-MarkdownCell mjx-container").first.wait_for(timeout=20_000)
    assert page.locator("script[src$='mathjax-svg/tex-svg-full.js']").count() == 1
    assert page.locator("script[src$='tex-chtml-full.js']").count() == 0
    assert_clean(page, dialogs)


def test_svg_mathjax_is_loaded_only_where_plots_hold_tex(report, dialogs):  # noqa: F811
    assert report.locator("script[src$='mathjax-svg/tex-svg-full.js']").count() == 0
    assert report.locator("script[src$='tex-chtml-full.js']").count() == 1  # the labels' math


# --- through a real build: the publisher's image folder, packages, dashboard link, favicon ----

def test_build_embeds_images_lists_imports_and_links_a_dashboard_turned_on_later(tmp_path, page, dialogs):  # noqa: F811
    nb = v4.new_notebook(metadata={"kernelspec": kernelspec()}, cells=[
        v4.new_code_cell("n = 1", metadata={"tags": ["parameters"]}),
        v4.new_code_cell("import scipy\nprint('scipy', scipy.__version__ != '')"),
        v4.new_markdown_cell("![logo](logo.png)"),
    ])
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "logo.png").write_bytes(png(7, 3, (0, 128, 0)))
    report = {"notebook": "notebooks/r.ipynb", "title": "R", "parameters": {"n": 1}}
    write_project(tmp_path, {"notebooks/r.ipynb": nb}, {"r": report})
    assert run_cli("build", project=tmp_path).returncode == 0
    (manifest,) = (tmp_path / "reports" / "r").glob("*/manifest.json")
    packages = json.loads(manifest.read_text())["packages"]
    assert "scipy" in packages and "sqlalchemy" not in packages and "plotly" not in packages

    latest = (tmp_path / "reports" / "r" / "latest" / "index.html").as_uri()
    page.goto(latest)
    page.locator(".l2l-title").wait_for()
    dashboard = page.locator('[data-l2l-nav="dashboard"]')
    assert dashboard.is_hidden()
    assert page.eval_on_selector(".jp-MarkdownCell img", "i => i.naturalWidth") == 7
    icon = page.eval_on_selector("link[rel=icon]", "l => l.href")
    assert icon.endswith("/assets/favicon.ico") and Path(icon.removeprefix("file://")).is_file()
    assert_clean(page, dialogs)

    write_project(tmp_path, {}, {"r": {**report, "dashboard": True}})
    assert run_cli("build", project=tmp_path).returncode == 0  # nothing re-runs; the version is as it was
    assert len(list((tmp_path / "reports" / "r").glob("*/manifest.json"))) == 1
    page.goto(latest)
    dashboard.wait_for(state="visible")
    assert dashboard.get_attribute("href") == "../../dashboards/r/"
    assert_clean(page, dialogs)
