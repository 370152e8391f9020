"""Site search on a real built site: the index file, and the search box in headless Chromium
from file://."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from nbformat import v4

from conftest import code_notebook, run_cli, write_project
from lab2land.config import load_config
from lab2land.errors import EXIT_OK
from lab2land.search import INDEX, VERSION_TEXT, read_index, write_search_index
from lab2land.store import Store

EVIL_TITLE = 'Evil <img src=x onerror="window.__xss = 1"> report'
EVIL_MARKDOWN = '<script>window.__xss = 2</script>\n\n<img src=x onerror="window.__xss = 3"> The chupacabra was seen.'


def notebook(parameters: str, markdown: str):
    nb = code_notebook(parameters, "print('done')")
    nb.cells.insert(0, v4.new_markdown_cell(markdown))
    # What the page leaves out stays out of the index: a cell tagged remove-cell.
    nb.cells.append(v4.new_markdown_cell("Internal note: wombat", metadata={"tags": ["remove-cell"]}))
    return nb


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """``field`` (one version; "quokka" only in a markdown cell, "Ouagadougou" only a parameter
    value), ``sales`` in two variants of one notebook, and ``evil`` with markup in its title and
    its markdown."""
    root = write_project(tmp_path_factory.mktemp("search"), {
        "field.ipynb": notebook("observer = 'x'", "# Field notes\n\nThe observers counted a *quokka* "
                                "near [the river](https://example.org/marsupial)."),
        "sales.ipynb": notebook("region = 'x'", "# Regional sales\n\nRevenue by month."),
        "evil.ipynb": notebook("n = 1", EVIL_MARKDOWN),
    }, {
        "field": {"notebook": "field.ipynb", "title": "Field study", "tags": ["ecology"],
                  "parameters": {"observer": "Ouagadougou"}},
        "sales": {"notebook": "sales.ipynb", "title": "Sales", "description": "Money by region",
                  "parameters": [{"region": "north"}, {"region": "south"}]},
        "evil": {"notebook": "evil.ipynb", "title": EVIL_TITLE, "parameters": {"n": 1}},
    }, site={"title": "Search"})
    proc = run_cli("build", project=root)
    assert proc.returncode == EXIT_OK, proc.stdout + proc.stderr
    return root / "reports"


def versions(site: Path, report: str) -> list[dict]:
    return json.loads((site / "catalog.json").read_text())["reports"][report]["versions"]


def search(page, url: str, query: str) -> list[dict]:
    """Type ``query`` into the search box of the page at ``url``; the results shown."""
    page.goto(url)
    page.fill(".l2l-sitesearch-input", query)
    page.wait_for_selector(".l2l-sitesearch-status:not([hidden])")
    return page.eval_on_selector_all(".l2l-sitesearch-result", """items => items.map(li => ({
        text: li.textContent, title: li.querySelector('a').textContent,
        href: li.querySelector('a').href}))""")


def test_index_holds_each_distinct_text_once_and_every_version(site):
    index = read_index(site / INDEX)
    reports = {r["n"]: r for r in index["reports"]}
    sales = reports["sales"]
    assert len(sales["v"]) == 2 and len(sales["x"]) == 1  # two versions, one notebook text
    headings, words = sales["x"][0]
    assert headings == ["Regional sales"] and words == "revenue by month"
    assert {sales["s"][row[4]] for row in sales["v"]} == {"region: north", "region: south"}
    field_words = reports["field"]["x"][0][1].split()
    assert "quokka" in field_words and "marsupial" not in field_words  # link targets are not text
    assert "script" not in reports["evil"]["x"][0][1].split()  # markup is not text
    assert "chupacabra" in reports["evil"]["x"][0][1].split()
    assert "wombat" not in (site / INDEX).read_text()


def test_a_rewrite_reads_only_new_versions_and_old_ones_come_from_their_notebook(site, tmp_path):
    config = load_config(site.parent)
    published = {name: Store(site).versions(name) for name in config.reports}
    (field,) = published["field"]
    text = read_index(site / INDEX)
    folder = site / "field" / field.folder
    saved = (folder / VERSION_TEXT).read_bytes()
    notebook = folder / field.executed_notebook
    try:
        # Already indexed: the version's files are not read again (here they are gone).
        (folder / VERSION_TEXT).unlink()
        notebook.rename(tmp_path / notebook.name)
        write_search_index(config, site, published)
        assert read_index(site / INDEX) == text
        # A version published before search existed: its text comes from its executed notebook.
        (tmp_path / notebook.name).rename(notebook)
        (site / INDEX).unlink()
        write_search_index(config, site, published)
        assert read_index(site / INDEX) == text
    finally:
        if not notebook.exists():
            (tmp_path / notebook.name).rename(notebook)
        (folder / VERSION_TEXT).write_bytes(saved)
        write_search_index(config, site, published)


def test_search_finds_a_word_only_in_a_markdown_cell_and_opens_the_version(site, page):
    (field,) = versions(site, "field")
    results = search(page, (site / "index.html").as_uri(), "quokka")
    assert [r["title"] for r in results] == ["Field study"]
    assert results[0]["href"] == (site / field["path"]).as_uri()
    page.click(".l2l-sitesearch-result a")
    page.wait_for_load_state()
    assert page.url == (site / field["path"]).as_uri()
    assert page.get_attribute("body", "data-report") == "field"
    assert page.page_errors == [] and page.external_requests == []


def test_search_finds_parameter_values_tags_and_descriptions_from_a_history_page(site, page):
    (field,) = versions(site, "field")
    results = search(page, (site / "field" / "index.html").as_uri(), "ouagadougou")
    assert [r["href"] for r in results] == [(site / field["path"]).as_uri()]
    assert "Ouagadougou" in results[0]["text"]
    assert [r["title"] for r in search(page, page.url, "ecology")] == ["Field study"]  # a tag
    assert sorted(r["title"] for r in search(page, page.url, "money region")) == [  # a description
        "Sales · region=north", "Sales · region=south"]


def test_search_from_a_version_page_links_the_matching_variant(site, page):
    by_region = {v["parameters"]["region"]: v for v in versions(site, "sales")}
    results = search(page, (site / by_region["north"]["path"]).as_uri(), "south revenue")
    assert [r["href"] for r in results] == [(site / by_region["south"]["path"]).as_uri()]
    page.click(".l2l-sitesearch-result a")
    page.wait_for_load_state()
    assert page.get_attribute("body", "data-version") == by_region["south"]["id"]
    assert search(page, page.url, "zyzzyva") == []
    assert page.text_content(".l2l-sitesearch-status") == "Nothing found for \u201czyzzyva\u201d"
    assert page.page_errors == []


def test_markup_in_titles_and_markdown_shows_as_text_and_never_runs(site, page):
    results = search(page, (site / "index.html").as_uri(), "chupacabra")
    assert [r["title"] for r in results] == [EVIL_TITLE]
    assert page.eval_on_selector_all(".l2l-sitesearch-results img, .l2l-sitesearch-results script",
                                     "nodes => nodes.length") == 0
    for query in ("evil", "img", "onerror"):
        search(page, (site / "index.html").as_uri(), query)
    assert page.evaluate("window.__xss") is None
    assert page.page_errors == []
