"""Hostile notebook content never runs script: on the static pages and on the live dashboards.

One notebook carries every vector family a hostile-user review found (HTML, markdown and
JavaScript outputs, a markdown cell, a raw cell, MathJax ``\\href``, ipywidgets HTML values
saved and sent live, image width/height metadata, an SVG and a query parameter reflected into
an output). Each payload, if it ran, would push its id onto ``window.__pwned``; a real Chromium
opens the built page from ``file://`` and the dashboards under a real ``publish.py serve``.

Three detectors, each shown to fire by a positive control (a page written here with the same
payloads and no sanitizing): payloads that ran (``__pwned``, dialogs), script the CSP had to
block (``securitypolicyviolation``: the payload reached the page), and active markup left in the
DOM (event-handler attributes, ``javascript:`` URLs, frames, inline script).
"""

from __future__ import annotations

import html
from pathlib import Path
from urllib.parse import quote

import nbformat
import pytest
from bs4 import BeautifulSoup
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_raw_cell

from conftest import kernelspec, run_cli, write_project
from serve_util import Server

WAIT_MS = 90_000  # upper bound for a dashboard's kernel to run the notebook on 2 busy cores


def js(vector: str) -> str:
    """Script that records ``vector`` if it runs; no quotes, so it fits any attribute or TeX."""
    return f"__pwned.push(/{vector}/.source)"


# nbconvert-style injection payloads (the CVE-2021-32862 family) as HTML fragments, by id.
HTML_PAYLOADS = {
    "img-onerror": '<img src=x onerror="{js}">',
    "script": "<script>{js}</script>",
    "svg-onload": '<svg onload="{js}"></svg>',
    "js-link": '<a href="javascript:{js}">link</a>',
    "iframe-srcdoc": '<iframe srcdoc="<script>parent.{js}</script>"></iframe>',
    "details-ontoggle": '<details open ontoggle="{js}"><summary>s</summary>d</details>',
    "autofocus": '<input autofocus onfocus="{js}">',
    # Last: its unclosed tags may swallow what follows.
    "mxss": '<math><mtext><table><mglyph><style><img src=x onerror="{js}">',
}


def html_payloads(prefix: str) -> str:
    return "".join(p.format(js=js(f"{prefix}-{k}")) for k, p in HTML_PAYLOADS.items())


# The reflected-XSS link: a viewer-controlled value that the notebook puts into HTML.
QUERY_NAME = f'</script><script>{js("query-script")}</script><img src=x onerror="{js("query-img")}">'
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
MATH_HREF = r"$\href{javascript:" + js("{id}") + r"}{click\ me}$"


def _img(vector: str, label: str) -> str:
    return f'<b>{label}</b><img src=x onerror="{js(vector)}">'


def xss_notebook() -> nbformat.NotebookNode:
    """The hostile notebook; its parameters cell is ``name = "x"``."""
    markdown_out = f"[l](javascript:{js('md-out-mdlink')}) " + html_payloads("md-out")
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10" onload="{js("svg-out-onload")}">'
           f"<script>{js('svg-out-script')}</script></svg>")
    math_value = "<b>w-math</b> " + MATH_HREF.replace("{id}", "widget-htmlmath-href") + _img("widget-htmlmath", "")
    outputs = "\n".join([
        "from IPython.display import HTML, Markdown, Javascript, Latex, SVG, display",
        f"display(HTML({html_payloads('html-out')!r}))",
        f"display(Markdown({markdown_out!r}))",
        f"display(Javascript({js('js-out')!r}))",
        f"display(Latex({MATH_HREF.replace('{id}', 'latex-href')!r}))",
        f"display(SVG({svg!r}))",
    ])
    images = "\n".join([
        f"display({{'image/png': {PNG!r}}}, raw=True, "
        f"metadata={{'image/png': {{'width': {'1 onload=' + js('img-width')!r}}}}})",
        f"display({{'image/png': {PNG!r}}}, raw=True, metadata={{'height': {'1 onload=' + js('img-height')!r}}})",
    ])
    widgets = "\n".join([
        "import ipywidgets as w",
        f"html_w = w.HTML(value={_img('widget-html', 'w-html')!r})",
        f"math_w = w.HTMLMath(value={math_value!r})",
        f"desc_w = w.Checkbox(description={_img('widget-description', 'w-desc')!r}, description_allow_html=True)",
        "out_w = w.Output()",
        f"with out_w: display(HTML({_img('widget-output', 'w-out')!r}))",
        # Sent while the page is open: the kernel-to-browser path, not the saved state.
        "live_w = w.HTML(value='<b>before</b>')",
        "live_out = w.Output()",
        "def on_click(_):",
        f"    live_w.value = {_img('widget-live-update', 'updated')!r}",
        f"    with live_out: display(HTML({_img('widget-live-output', 'out-updated')!r}))",
        "button = w.Button(description='go')",
        "button.on_click(on_click)",
        "w.VBox([html_w, math_w, desc_w, out_w, live_w, live_out, button])",
    ])
    cells = [
        new_code_cell('name = "x"', metadata={"tags": ["parameters"]}),
        new_markdown_cell(f"# XSS vectors\n\n[md link](javascript:{js('md-cell-mdlink')})\n\n"
                          + MATH_HREF.replace("{id}", "mathjax-href") + "\n\n" + html_payloads("md-cell")),
        new_raw_cell(html_payloads("raw-cell"), metadata={"raw_mimetype": "text/html"}),
        new_code_cell(outputs),
        new_code_cell("display(HTML('<p>Hello ' + name + '</p>'))"),
        new_code_cell(images),
        new_code_cell(widgets),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = kernelspec()
    return nb


# Runs before any page script, in every frame: the detectors.
DETECTORS = """
window.__pwned = [];
window.__violations = [];
document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(
    `${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
"""

# Active markup in the DOM, whether or not it ran: what sanitizing must have removed.
ACTIVE_MARKUP = """() => {
  const found = [];
  const urlAttrs = ['href', 'src', 'action', 'formaction', 'xlink:href', 'data'];
  for (const el of document.querySelectorAll('*')) {
    const tag = el.tagName.toLowerCase();
    for (const a of el.attributes) {
      const name = a.name.toLowerCase();
      const value = a.value.replace(/[\\s\\u0000-\\u001f]/g, '').toLowerCase();
      if (name.startsWith('on')) found.push(`${tag}[${name}]`);
      if (urlAttrs.includes(name) && value.startsWith('javascript:')) found.push(`${tag}[${name}=javascript:]`);
      if (name === 'srcdoc') found.push(`${tag}[srcdoc]`);
    }
    if (['iframe', 'frame', 'object', 'embed'].includes(tag)) found.push(tag);
    if (tag === 'script' && !el.src && !/json/.test(el.type)) found.push('inline script');
  }
  return found;
}"""

# Follow every javascript: link (MathJax's \\href included), as a curious viewer would.
CLICK_JS_LINKS = """() => {
  let n = 0;
  for (const el of document.querySelectorAll('[href]')) {
    if (/^\\s*javascript:/i.test(el.getAttribute('href'))) {
      n += 1;
      el.dispatchEvent(new MouseEvent('click', {bubbles: true, cancelable: true, view: window}));
    }
  }
  return n;
}"""


class Detector:
    """What the detectors saw on one page."""

    def __init__(self, page):
        self.page = page
        self.dialogs: list[str] = []
        page.context.add_init_script(DETECTORS)
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))

    def collect(self) -> dict:
        """Markup first (before clicking), then follow javascript: links, then read the tally."""
        markup = self.page.evaluate(ACTIVE_MARKUP)
        clicked = self.page.evaluate(CLICK_JS_LINKS)
        # The clicks' script (if any) has run once this round trip to the page returns.
        self.page.evaluate("() => new Promise((r) => setTimeout(r, 0))")
        ran = self.page.evaluate("() => window.__pwned") + self.dialogs
        blocked = [v for v in self.page.evaluate("() => window.__violations") if " inline " in v]
        return {"ran": sorted(set(ran)), "blocked": blocked, "markup": markup, "js_links": clicked}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    folder = write_project(tmp_path_factory.mktemp("xss"), {"xss.ipynb": xss_notebook()}, {
        "xss": {"notebook": "xss.ipynb", "title": "XSS", "dashboard": True, "pool_size": 1}}, site={"title": "XSS"})
    # The static page gets the reflected value through the build's parameters instead.
    result = run_cli("build", "xss", "-p", f"name={QUERY_NAME}", project=folder)
    assert result.returncode == 0, result.stderr
    return folder


@pytest.fixture(scope="module")
def server(project):
    srv = Server(project, token="t0ken-xss")
    yield srv
    srv.stop()


def _expect_clean(seen: dict) -> None:
    assert seen["ran"] == [], f"payloads executed: {seen['ran']}"
    assert seen["blocked"] == [], f"payloads reached the page (the CSP blocked them): {seen['blocked']}"
    assert seen["markup"] == [], f"active markup in the page: {seen['markup']}"
    assert seen["js_links"] == 0


def test_positive_control_detectors_fire(project, page, tmp_path):
    """The same payloads on a page without sanitizing run, and under the CSP they are caught."""
    detector = Detector(page)
    width = f'<img src="data:image/png;base64,{PNG}" width=1 onload={js("control-width")}>'
    snippets = width + html_payloads("control")
    bare = tmp_path / "bare.html"
    bare.write_text("<!DOCTYPE html><title>control</title><body><a href=\"javascript:alert('control-dialog')\">d</a>"
                    f"{snippets}</body>")
    # Links run when clicked; mxss only works against sanitizers that reparse, not on a bare page.
    expected = {f"control-{k}" for k in [*HTML_PAYLOADS, "width"]} - {"control-js-link", "control-mxss"}
    page.goto(bare.as_uri())
    page.wait_for_function("(ids) => ids.every((id) => window.__pwned.includes(id))", arg=sorted(expected),
                           timeout=10_000)
    seen = detector.collect()
    assert expected | {"control-js-link", "control-dialog"} <= set(seen["ran"])
    assert {"inline script", "img[onerror]", "iframe", "a[href=javascript:]"} <= set(seen["markup"])

    # The static page's own policy: payloads that reach a page under it are blocked, and seen.
    soup = BeautifulSoup(_version_page(project).read_text(encoding="utf-8"), "html.parser")
    policy = soup.find("meta", attrs={"http-equiv": "Content-Security-Policy"})["content"]
    guarded = tmp_path / "guarded.html"
    guarded.write_text(f'<!DOCTYPE html><meta http-equiv="Content-Security-Policy" '
                       f'content="{html.escape(policy)}"><body>{snippets}</body>')
    detector.dialogs.clear()
    page.goto(guarded.as_uri())
    page.wait_for_function("() => window.__violations.length >= 3", timeout=10_000)
    seen = detector.collect()
    assert seen["ran"] == [] and len(seen["blocked"]) >= 3


def _version_page(project: Path) -> Path:
    pages = sorted((project / "reports" / "xss").glob("2*/index.html"))  # <version id>/index.html
    assert len(pages) == 1, pages
    return pages[0]


def test_static_page_runs_no_payload(project, page):
    detector = Detector(page)
    page.goto(_version_page(project).as_uri())
    page.wait_for_selector(".widget-html >> text=w-html", timeout=30_000)
    page.wait_for_selector("mjx-container", timeout=30_000)
    page.wait_for_load_state("load")
    text = page.inner_text("body")
    assert "w-math" in text and "w-desc" in text and "w-out" in text
    assert "Hello" in text  # the reflected value is shown as text
    _expect_clean(detector.collect())


@pytest.mark.parametrize("query", ["", f"?name={quote(QUERY_NAME)}"], ids=["preheated-defaults", "query-reflection"])
def test_dashboard_runs_no_payload(server, page, query):
    # Start from a quiet server (only the preheated kernel): the previous case's viewer kernel is
    # culled and the pool refilled, so this page's kernel does not start beside another one (two
    # kernel starts at once on a loaded 2-core machine have stalled this page past its wait).
    server.wait_kernels(1, timeout=60)
    detector = Detector(page)
    sep = "&" if query else "?"
    # A query string means a kernel of its own, which runs the notebook while the page streams:
    # give the load the same bound as the waits below (the default 30 s ran out on a busy CI).
    response = page.goto(f"{server.url}/dashboards/xss/{query}{sep}token=t0ken-xss", timeout=WAIT_MS)
    assert response.status == 200
    csp = response.headers.get("content-security-policy", "")
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src", 1)[1].split(";")[0]
    page.wait_for_selector(".widget-html >> text=w-html", timeout=WAIT_MS)
    page.wait_for_selector("mjx-container", timeout=WAIT_MS)
    page.click(".widget-button")
    page.wait_for_selector(".widget-html >> text=updated", timeout=WAIT_MS)
    page.wait_for_selector("text=out-updated", timeout=WAIT_MS)
    text = page.inner_text("body")
    assert "w-math" in text and "w-desc" in text and "w-out" in text and "Hello" in text
    _expect_clean(detector.collect())
    assert page.page_errors == []
