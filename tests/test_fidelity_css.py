"""Output CSS, ids, local images, page needs and package provenance, without a browser: what the
sanitizer keeps (styling) and what it never lets through (anything that loads or runs, any rule
that reaches outside its own output). What a reader sees is in ``test_fidelity.py``."""

from __future__ import annotations

import os

import nbformat
import pytest
from nbformat import v4

from lab2land import css, images, page_needs, provenance, sanitize, vendor

S = "l2l-o1-0"


def clean(text: str) -> str:
    return css.clean_css(text, S)


def test_styler_rules_are_kept_and_scoped():
    out = clean("#T_ab_row0_col0, #T_ab_row1_col0 { background-color: #ffff00; color: rgb(0, 0, 255) }\n"
                "#T_ab td:hover { background: linear-gradient(90deg, #5fba7d 50.0%, transparent 50.0%) }\n"
                "#T_ab caption { caption-side: bottom; font-weight: bold !important }")
    assert out == ("#l2l-o1-0 #T_ab_row0_col0, #l2l-o1-0 #T_ab_row1_col0{background-color: #ffff00; "
                   "color: rgb(0, 0, 255)}\n"
                   "#l2l-o1-0 #T_ab td:hover{background: linear-gradient(90deg, #5fba7d 50.0%, transparent 50.0%)}\n"
                   "#l2l-o1-0 #T_ab caption{caption-side: bottom; font-weight: bold !important}")


def test_styler_tooltips_keep_their_positioning_inside_the_output():
    out = clean('#T_x .pd-t { visibility: hidden; position: absolute; z-index: 1 }'
                '#T_x #T_x_row0_col0 .pd-t::after { content: "Max \\"value\\"" }'
                '.a { position: fixed; top: 0 } .b { position: sticky; left: 0 }')
    assert "#l2l-o1-0 #T_x .pd-t{visibility: hidden; position: absolute; z-index: 1}" in out
    assert '#l2l-o1-0 #T_x #T_x_row0_col0 .pd-t::after{content: "Max \\"value\\""}' in out
    assert "fixed" not in out
    assert "#l2l-o1-0 .a{top: 0}" in out  # the rest of the rule stays
    assert "#l2l-o1-0 .b{position: sticky; left: 0}" in out  # Styler.set_sticky: within its table


@pytest.mark.parametrize("attack", [
    "td { background: url(javascript:alert(1)) }",
    "td { background: url('https://evil.example/x.png') }",
    "td { background-image: URL(x.png) }",
    "td { background: \\75 rl(x.png) }",  # url( spelled with an escape
    "td { background-image: image-set('x.png' 1x) }",
    "td { width: expression(alert(1)) }",
    "td { behavior: url(x.htc) }",
    "td { -moz-binding: url(x.xml#xss) }",
    "td { --x: url(x.png); color: var(--x) }",
    "@import url(https://evil.example/x.css);",
    "@import 'x.css';",
    "@font-face { font-family: x; src: url(https://evil.example/f.woff) }",
    "@namespace svg url(http://www.w3.org/2000/svg);",
    "@keyframes spin { from { color: red } }",
])
def test_what_could_load_or_run_is_dropped(attack):
    out = clean(attack)
    for word in ("url", "expression", "behavior", "binding", "import", "font-face", "http", "keyframes", "--x"):
        assert word not in out.lower()


def test_rules_cannot_reach_outside_their_output():
    out = clean("body { display: none } html, :root { background: red } * { color: red }")
    assert out == ("#l2l-o1-0 body{display: none}\n#l2l-o1-0 html, #l2l-o1-0 :root{background: red}\n"
                   "#l2l-o1-0 *{color: red}")  # each matches nothing, or only the output's own elements
    # Siblings of the container are outside it; a selector starting there is refused whole.
    assert clean("~ div { display: none } + p { color: red }") == ""
    assert clean(f"#{S} ~ div {{ display: none }}") == ""
    assert clean(f"#{S} {{ position: absolute; top: -500px }}") == ""  # the container itself


def test_brace_and_tag_injection_cannot_escape():
    out = clean("td { color: red } } body { display: none } td { color: blue }")
    assert "\nbody" not in out and not out.startswith("body")
    assert all(line.startswith(f"#{S} ") for line in out.splitlines())
    out = clean('td::after { content: "</style><script>alert(1)</script>" }')
    assert "<" not in out and "\\3c " in out
    assert clean("td { color: red; } </style><script>alert(1)</script> p { color: blue }").count("<") == 0


def test_cleaning_twice_changes_nothing():
    once = clean("#T_a td, .b > i { color: red } @media (max-width: 600px) { td { padding: 0 } }")
    assert clean(once) == once
    assert once.startswith("#l2l-o1-0 #T_a td, #l2l-o1-0 .b > i{color: red}")
    assert "@media (max-width: 600px){#l2l-o1-0 td{padding: 0}}" in once


def test_scope_must_be_a_plain_id():
    with pytest.raises(ValueError, match="plain id"):
        css.clean_css("td{color:red}", 'x"><script>')


def test_html_keeps_scoped_style_and_drops_the_rest():
    html = ('<style>#T_1 td { color: red; background: url(x) } @import "y";</style>'
            '<table id="T_1"><tr><td onclick="x()">1</td></tr></table><script>alert(1)</script>')
    out = sanitize.clean_html(html, scope=S)
    assert out.startswith(f"<style>#{S}{{contain: paint; position: relative; overflow-x: auto}}\n"
                          f"#{S} #T_1 td{{color: red}}</style>")
    assert "onclick" not in out and "script" not in out and "url" not in out
    assert sanitize.clean_html(out, scope=S) == out  # the page template cleans again
    assert "<style" not in sanitize.clean_html(html)  # no scope: styles dropped, as before
    wrapped = sanitize.clean_html(html, scope=S, wrap=True)
    assert f'<div class="l2l-scoped" id="{S}"><table' in wrapped
    assert sanitize.clean_html(wrapped, scope=S, wrap=True) == wrapped


def test_ids_that_would_shadow_page_globals_are_dropped():
    out = sanitize.clean_html('<h2 id="Results">r</h2><img id="MathJax" src="data:image/png;base64,AA==">'
                              '<div id="lab2landVersions"></div><p id="l2l-failed-cell">x</p>'
                              '<b id="addEventListener">y</b><a href="#Results">go</a>')
    assert 'id="Results"' in out and 'href="#Results"' in out
    for bad in ("MathJax", "lab2landVersions", "l2l-failed-cell", "addEventListener"):
        assert f'id="{bad}"' not in out


def test_output_widget_html_is_cleaned_with_its_own_scope():
    state = sanitize.clean_widget_state("OutputModel", {"outputs": [
        {"output_type": "display_data", "metadata": {}, "data": {
            "text/html": '<iframe src="https://evil.example"></iframe><style>body{display:none}</style><b>ok</b>'}}]})
    html = state["outputs"][0]["data"]["text/html"]
    assert "iframe" not in html and "<b>ok</b>" in html
    scope = html.split('id="', 1)[1].split('"', 1)[0]
    assert html.startswith(f"<style>#{scope}{{contain: paint; position: relative; overflow-x: auto}}\n"
                           f"#{scope} body{{display: none}}</style><div class=\"l2l-scoped\" id=\"{scope}\">")


def test_dashboard_outputs_keep_styles_only_when_asked():
    output = {"output_type": "display_data", "metadata": {},
              "data": {"text/html": "<style>td{color:red}</style><table><tr><td>1</td></tr></table>"}}
    assert "<style" not in sanitize.clean_dashboard_output(output)["data"]["text/html"]
    kept = sanitize.clean_dashboard_output(output, keep_styles=True)["data"]["text/html"]
    assert kept.startswith("<style>#l2l-s") and 'class="l2l-scoped"' in kept


# --- images next to the notebook --------------------------------------------------------------

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360f80f0000010101005b1ac5a00000000049454e44ae426082")


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "nb" / "img").mkdir(parents=True)
    (tmp_path / "nb" / "img" / "a b.png").write_bytes(PNG)
    (tmp_path / "nb" / "notes.txt").write_text("not an image")
    (tmp_path / "secret.png").write_bytes(PNG)
    os.symlink(tmp_path / "secret.png", tmp_path / "nb" / "link.png")
    (tmp_path / "nb" / "big.png").write_bytes(PNG + b"\0" * 2000)
    return tmp_path


def test_relative_images_inside_the_folder_are_embedded(folder):
    resolve = images.resolver(folder / "nb", max_bytes=1000)
    assert resolve("img/a%20b.png").startswith("data:image/png;base64,iVBORw0KGgo")
    assert resolve("./img/a b.png?v=1#x").startswith("data:image/png;base64,")


@pytest.mark.parametrize("src", ["../secret.png", "img/../../secret.png", "/etc/passwd", "link.png",
                                 "notes.txt", "big.png", "missing.png", "file:///etc/hosts",
                                 "https://evil.example/x.png", "//evil.example/x.png", "C:\\x.png",
                                 "img\\..\\..\\secret.png", "", "#x"])
def test_images_outside_the_folder_or_not_images_are_not_read(folder, src):
    assert images.resolver(folder / "nb", max_bytes=1000)(src) is None


def test_a_page_embeds_a_bounded_total(folder):
    resolve = images.resolver(folder / "nb", max_total=len(PNG) * 2)
    assert resolve("img/a b.png") and resolve("img/a b.png")
    assert resolve("img/a b.png") is None  # the page's budget is spent


def test_sanitizer_embeds_through_the_resolver(folder):
    resolve = images.resolver(folder / "nb")
    out = sanitize.clean_html('<p><img src="img/a b.png" alt="a"><img src="../secret.png" alt="s"></p>',
                              resolve_image=resolve)
    assert 'src="data:image/png;base64,' in out and 'src="../secret.png"' in out


# --- what a page must load ---------------------------------------------------------------------

def test_pages_load_mathjax_for_widget_math_and_svg_mathjax_for_plot_tex():
    nb = v4.new_notebook(metadata={"widgets": {page_needs.WIDGET_STATE_MIME: {"state": {
        "a": {"model_name": "LabelModel", "state": {"value": "The $m$ in $E=mc^2$"}}}}}})
    assert page_needs.widgets_have_math(nb)
    nb.metadata.widgets[page_needs.WIDGET_STATE_MIME]["state"]["a"]["state"]["value"] = "plain"
    assert not page_needs.widgets_have_math(nb)
    fig = {"data": [{"x": [1, 2], "y": [3, 4], "name": "plain"}], "layout": {"title": {"text": r"$\alpha_{1c}$"}}}
    def notebook(figure):
        return v4.new_notebook(cells=[v4.new_code_cell(outputs=[
            v4.new_output("display_data", data={page_needs.PLOTLY_MIME: figure})])])

    assert page_needs.plots_have_tex(notebook(fig))
    fig["layout"]["title"]["text"] = "Revenue"
    assert not page_needs.plots_have_tex(notebook(fig))


def test_svg_mathjax_is_pinned_and_fetched():
    assert vendor.PACKAGES["mathjax-svg"]["files"]["package/es5/tex-svg-full.js"] == "tex-svg-full.js"
    assert vendor.present("mathjax-svg"), "run `.venv/bin/python -m lab2land.vendor fetch`"


# --- packages in the manifest ------------------------------------------------------------------

def test_manifest_packages_are_what_the_notebook_imports():
    nb = v4.new_notebook(cells=[
        v4.new_code_cell("%matplotlib inline\nimport scipy.stats as st, json\nfrom sklearn.linear_model import Ridge"),
        v4.new_code_cell("!pip list\nimport pandas as pd"),
        v4.new_code_cell("def broken(:"),
        v4.new_code_cell("from . import local\nimport not_installed_anywhere"),
    ])
    found = provenance.package_versions(nbformat.from_dict(nb))
    assert {"python", "lab2land", "papermill", "nbconvert", "scipy", "scikit-learn", "pandas"} <= set(found)
    assert "sqlalchemy" not in found and "plotly" not in found and "json" not in found
    assert "not_installed_anywhere" not in found
