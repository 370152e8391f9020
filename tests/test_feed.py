"""Atom feeds on a real built site: parsed and checked with feedparser, linked from the pages."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urljoin

import feedparser
import pytest
from bs4 import BeautifulSoup
from nbformat import v4

from conftest import code_notebook, run_cli, save_notebook, write_project
from lab2land.config import load_config
from lab2land.errors import EXIT_FAILED
from lab2land.feed import MAX_ENTRIES, FeedEntry, entry_id, feed_xml
from lab2land.site import SiteWriter

EVIL = '<script>window.__xss = 1</script>'
HOST = "https://host.test/site/"  # where parse() pretends the site is served


def sales_notebook():
    nb = code_notebook("region = 'north'", "from lab2land import record\nrecord('total', 12.5, unit='$')")
    nb.cells.insert(0, v4.new_markdown_cell("# Sales\n\nA report."))
    return nb


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """Two reports: ``sales`` in two variants, and ``evil`` whose title and error hold markup
    and whose error holds a terminal colour code (a character XML 1.0 cannot hold). Built
    twice, the notebook of ``sales`` changed in between: its second versions have changes pages,
    and ``first-ids.json`` beside the site holds the site feed's ids after the first build."""
    root = write_project(tmp_path_factory.mktemp("feed"), {
        "sales.ipynb": sales_notebook(),
        "evil.ipynb": code_notebook("n = 1", f"raise ValueError({EVIL!r} + '\\x1b[31m & more')"),
    }, {
        "sales": {"notebook": "sales.ipynb", "title": "Sales", "description": "Money & more",
                  "parameters": [{"region": "north"}, {"region": "south"}]},
        "evil": {"notebook": "evil.ipynb", "title": f"Evil {EVIL} & co", "parameters": {"n": 1}},
    }, site={"title": "Feed <site>"})
    proc = run_cli("build", project=root)
    assert proc.returncode == EXIT_FAILED, proc.stdout + proc.stderr
    first = [e.id for e in parse(root / "reports" / "feed.xml").entries]
    (root / "first-ids.json").write_text(json.dumps(first))
    nb = sales_notebook()
    nb.cells[-1].source = nb.cells[-1].source.replace("12.5", "14.5")
    save_notebook(nb, root / "sales.ipynb")
    proc = run_cli("build", project=root)
    assert proc.returncode == EXIT_FAILED, proc.stdout + proc.stderr
    return root / "reports"


def parse(path: Path) -> feedparser.FeedParserDict:
    """``path`` (in a site folder named reports/) parsed as a static host at HOST would serve
    it: its address (relative links resolve against it) and its type."""
    site = next(folder for folder in path.parents if folder.name == "reports")
    where = HOST + path.relative_to(site).as_posix()
    parsed = feedparser.parse(path.read_bytes(), response_headers={"content-location": where,
                                                                   "content-type": "application/atom+xml"})
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    return parsed


def catalog(site: Path) -> dict:
    return json.loads((site / "catalog.json").read_text())["reports"]


def test_site_feed_has_one_valid_entry_per_version_linking_its_page(site):
    feed = parse(site / "feed.xml")
    assert feed.feed.title == "Feed <site>"
    versions = {(name, v["id"]): v for name, r in catalog(site).items() for v in r["versions"]}
    assert len(feed.entries) == len(versions) >= 5
    ids = [e.id for e in feed.entries]
    assert len(set(ids)) == len(ids) and all(i.startswith("urn:uuid:") for i in ids)
    first = json.loads((site.parent / "first-ids.json").read_text())
    assert len(first) == 3 and set(first) < set(ids)  # a rewrite keeps the ids of what was there
    by_link = {}
    for entry in feed.entries:
        assert entry.link.startswith(HOST), entry.link
        page = site / entry.link.removeprefix(HOST)
        assert page.is_file() and page.name == "index.html", entry.link
        by_link[(page.parent.parent.name, page.parent.name)] = entry
    assert set(by_link) == set(versions)
    for key, entry in by_link.items():
        assert entry.tags[0].term == versions[key]["status"]
        assert entry.updated_parsed is not None
    updated = [e.updated for e in feed.entries]
    assert updated == sorted(updated, reverse=True)
    south = [e for k, e in by_link.items() if versions[k]["parameters"] == {"region": "south"}]
    assert [e.title for e in south] == ["Sales (region=south): ok"] * 2
    assert "total = $14.5" in south[0].summary and "total = $12.5" in south[1].summary


def test_markup_and_control_characters_are_text_in_the_feed(site):
    raw = (site / "feed.xml").read_text(encoding="utf-8")
    assert "<script" not in raw and "\x1b" not in raw
    failed = [e for e in parse(site / "feed.xml").entries if e.tags[0].term == "failed"]
    assert failed
    for entry in failed:
        assert entry.title == f"Evil {EVIL} & co: failed"
        assert entry.title_detail.type == "text/plain"
        assert EVIL in entry.summary and "& more" in entry.summary


def test_each_report_has_its_own_feed_with_links_relative_to_it(site):
    feed = parse(site / "sales" / "feed.xml")
    assert feed.feed.title == "Sales · Feed <site>" and feed.feed.subtitle == "Money & more"
    assert len(feed.entries) == len(catalog(site)["sales"]["versions"]) == 4
    assert {e.tags[0].term for e in feed.entries} == {"ok"}
    for entry in feed.entries:
        assert entry.link.startswith(HOST + "sales/") and (site / entry.link.removeprefix(HOST)).is_file()
    assert [e.id for e in parse(site / "evil" / "feed.xml").entries] == \
        [e.id for e in parse(site / "feed.xml").entries if e.tags[0].term == "failed"]


def test_pages_link_their_feeds(site):
    def feeds(page: Path) -> list[str]:
        soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
        links = soup.head.find_all("link", rel="alternate", type="application/atom+xml")
        hrefs = [link["href"] for link in links]
        for href in hrefs:
            assert (page.parent / href).resolve().is_file(), (page, href)
        return hrefs

    assert feeds(site / "index.html") == ["feed.xml"]
    assert feeds(site / "sales" / "index.html") == ["feed.xml", "../feed.xml"]
    version = catalog(site)["sales"]["versions"][0]["path"]
    assert feeds(site / version) == ["../feed.xml", "../../feed.xml"]
    assert feeds(site / version.replace("index.html", "changes.html")) == ["../feed.xml", "../../feed.xml"]


def test_site_url_makes_links_absolute_and_ids_stay(site, tmp_path):
    before = {e.link.rsplit("/", 2)[-2]: e.id for e in parse(site / "feed.xml").entries}
    root = site.parent
    toml = (root / "publish.toml").read_text()
    (root / "publish.toml").write_text(toml.replace("[site]\n", '[site]\nurl = "https://example.org/team/reports"\n'))
    try:
        SiteWriter(load_config(root)).write()
        feed = parse(site / "feed.xml")
        assert feed.feed.links[0].rel == "self"
        assert feed.feed.links[0].href == "https://example.org/team/reports/feed.xml"
        after = {}
        for entry in feed.entries:
            assert entry.link.startswith("https://example.org/team/reports/"), entry.link
            local = site / entry.link.removeprefix("https://example.org/team/reports/")
            assert local.is_file()
            after[local.parent.name] = entry.id
        assert after == before
        report = parse(site / "sales" / "feed.xml")
        assert all(e.link.startswith("https://example.org/team/reports/sales/") for e in report.entries)
    finally:
        (root / "publish.toml").write_text(toml)
        SiteWriter(load_config(root)).write()


def test_feed_keeps_the_newest_entries_and_takes_extra_ones():
    entries = [FeedEntry("r", entry_id("r", f"v{n}"), f"v{n}", f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}+00:00",
                         f"r/v{n}/index.html", "ok") for n in range(MAX_ENTRIES + 10)]
    pinned = FeedEntry("r", entry_id("r", "v3", "pinned"), "r: latest pinned to v3", "2026-02-01T00:00:00",
                       "r/v3/index.html", "pinned", "Reason: v4 was wrong")
    feed = feedparser.parse(feed_xml([*entries, pinned], title="t", feed_id=entry_id("site", "t"), author="a",
                                     here="r/"), response_headers={"content-type": "application/atom+xml"})
    assert feed.bozo == 0
    assert len(feed.entries) == MAX_ENTRIES
    assert feed.entries[0].title == "r: latest pinned to v3" and feed.entries[0].tags[0].term == "pinned"
    assert feed.entries[0].updated == "2026-02-01T00:00:00Z"  # a time without zone is UTC
    assert feed.entries[1].title == f"v{MAX_ENTRIES + 9}" and feed.entries[-1].title == "v11"
    assert feed.entries[1].link == f"v{MAX_ENTRIES + 9}/index.html"
    assert urljoin("https://h/r/feed.xml", feed.entries[1].link) == f"https://h/r/v{MAX_ENTRIES + 9}/index.html"
