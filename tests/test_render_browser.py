"""Rendered pages in a real headless Chromium, opened from file:// with the shared assets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab2land import assets, render
from test_render import XSS_TITLE, execute_notebook, failed_notebook, history_context, index_context, page_context

OK_ID, FAILED_ID, NEWER_ID = "20261124T235301Z-south", "20261125T080000Z-south", "20261125T090000Z-south"
SHOTS = Path("/tmp")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """reports/ with a good and a failed version of `sales`, its versions.js, index and history."""
    root = tmp_path_factory.mktemp("site") / "reports"
    report = root / "sales"
    pages = {OK_ID: render.render_version(execute_notebook(tmp_path_factory.mktemp("run")), page_context()),
             FAILED_ID: render.render_version(failed_notebook(), page_context("failed", id=FAILED_ID))}
    for version_id, html in pages.items():
        (report / version_id).mkdir(parents=True)
        (report / version_id / "index.html").write_text(html, encoding="utf-8")
    versions = [{"id": v, "variant": "south", "status": s, "created": c, "url": f"{v}/index.html"}
                for v, s, c in [(NEWER_ID, "ok", "2026-11-25T09:00:00Z"),
                                (FAILED_ID, "failed", "2026-11-25T08:00:00Z"),
                                (OK_ID, "ok", "2026-11-24T23:53:01Z")]]
    data = {"report": "sales", "latest": {"south": NEWER_ID}, "versions": versions}
    (report / "versions.js").write_text(f"window.lab2landVersions = {json.dumps(data)};\n")
    (root / "index.html").write_text(render.render_site_page("index.html.j2", index_context()))
    (report / "index.html").write_text(render.render_site_page("history.html.j2", history_context()))
    assets.install_assets(root)
    return root


@pytest.fixture
def dialogs(page):
    """Alerts raised on the page (an XSS payload that ran), and local files that failed."""
    seen = []
    page.on("dialog", lambda d: (seen.append(d.message), d.dismiss()))
    page.failed_files = []
    page.on("requestfailed", lambda r: page.failed_files.append(r.url))
    return seen


def assert_clean(page, dialogs):
    assert page.external_requests == []
    assert page.page_errors == []
    # The only missing file may be the `<img src=x onerror=...>` payload's harmless "x".
    assert [u for u in page.failed_files if not u.endswith("/x")] == []
    missing = "Failed to load resource: net::ERR_FILE_NOT_FOUND"
    assert [m for m in page.console_errors if m != missing or not page.failed_files] == []
    assert dialogs == []


def test_version_page_draws_plot_and_widget_offline(site, page, dialogs):
    page.set_viewport_size({"width": 1200, "height": 900})
    page.goto((site / "sales" / OK_ID / "index.html").as_uri())
    page.locator(".js-plotly-plot .main-svg").first.wait_for(state="visible", timeout=20_000)
    slider = page.locator(".l2l-widget .widget-slider")
    slider.wait_for(state="visible", timeout=20_000)
    assert "level" in page.locator(".l2l-widget").inner_text()
    assert page.locator(".l2l-widget .widget-readout").inner_text().strip() == "7"
    box = page.locator(".js-plotly-plot").first.bounding_box()
    assert box["height"] > 300 and box["width"] > 600
    # Drawn by plotly.js's basic bundle (a bar chart needs no more), from the shared assets.
    traces = page.evaluate("Object.keys(Plotly.PlotSchema.get().traces)")
    assert "bar" in traces and "scattergeo" not in traces
    # The plotly title, the table and the markdown show their payloads as text; none ran.
    assert page.locator(".js-plotly-plot .gtitle").text_content() == XSS_TITLE
    assert "<script>alert(1)</script>" in page.locator("table.dataframe").inner_text()
    assert page.title().startswith("Sales & Margin")  # the Javascript() output did not run
    # MathJax (local) typeset the markdown's TeX; tables are left alone
    page.locator(".jp-MarkdownCell mjx-container").first.wait_for(state="visible", timeout=20_000)
    assert page.locator("table mjx-container").count() == 0
    page.wait_for_timeout(300)
    page.screenshot(path=str(SHOTS / "l2l_version.png"), full_page=True)
    assert_clean(page, dialogs)


def test_version_page_links_newer_and_latest_from_versions_js(site, page, dialogs):
    page.goto((site / "sales" / OK_ID / "index.html").as_uri())
    newer = page.locator('[data-l2l-nav="newer"]')
    newer.wait_for(state="visible")
    assert newer.get_attribute("href") == f"../{FAILED_ID}/index.html"
    assert "failed" in newer.inner_text()
    assert page.locator('[data-l2l-nav="older"]').is_hidden()  # the oldest one
    notice = page.locator(".l2l-newer-notice")
    assert "A newer version of this report exists" in notice.inner_text()
    assert notice.locator("a").get_attribute("href") == f"../{NEWER_ID}/index.html"
    assert page.locator('[data-l2l-nav="history"]').get_attribute("href") == "../index.html"
    assert_clean(page, dialogs)


def test_failed_version_shows_banner_and_failing_cell(site, page, dialogs):
    page.set_viewport_size({"width": 1000, "height": 800})
    page.goto((site / "sales" / FAILED_ID / "index.html").as_uri())
    banner = page.locator(".l2l-banner-error")
    assert banner.is_visible() and "KeyError" in banner.inner_text()
    banner.locator('a[href="#l2l-failed-cell"]').click()
    cell = page.locator("#l2l-failed-cell")
    assert cell.is_visible() and "sales['amount'].sum()" in cell.inner_text()
    assert page.locator(".js-plotly-plot .main-svg").first.is_visible()
    assert page.locator('[data-l2l-nav="older"]').get_attribute("href") == f"../{OK_ID}/index.html"
    page.screenshot(path=str(SHOTS / "l2l_failed.png"), full_page=True)
    assert_clean(page, dialogs)


@pytest.mark.parametrize("width", [1200, 390])
@pytest.mark.parametrize("name, path", [("index", "index.html"), ("history", "sales/index.html")])
def test_site_pages_look_right_on_desktop_and_phone(site, page, dialogs, name, path, width):
    page.set_viewport_size({"width": width, "height": 900})
    page.goto((site / path).as_uri())
    assert page.locator("h1.l2l-title").is_visible()
    # readable on a phone: nothing wider than the screen
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.screenshot(path=str(SHOTS / f"l2l_{name}_{width}.png"), full_page=True)
    assert_clean(page, dialogs)


def test_index_filter_narrows_the_cards(site, page, dialogs):
    page.goto((site / "index.html").as_uri())
    search = page.locator("#l2l-search")
    search.fill("churn")
    assert page.locator(".l2l-card:visible").count() == 1
    search.fill("")
    assert page.locator(".l2l-card:visible").count() == 2
    assert_clean(page, dialogs)


def test_version_page_on_a_phone(site, page, dialogs):
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto((site / "sales" / OK_ID / "index.html").as_uri())
    page.locator(".js-plotly-plot .main-svg").first.wait_for(state="visible", timeout=20_000)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(SHOTS / "l2l_version_390.png"), full_page=True)
    assert_clean(page, dialogs)
