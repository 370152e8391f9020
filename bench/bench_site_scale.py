"""P6: a site of 1,000 reports × 5 versions — full rewrite, one-report update, page weights.

No kernels: the versions (manifest, a small page and an executed notebook with markdown) are
written straight into the store, as 5,000 builds would have left them. Then:

1. full rewrite: ``lab2land repair`` through the CLI (config load, every page, catalog, feeds,
   search index), and the library's ``write_site(everything=True)`` alone;
2. one report changes: a new version committed to one report, then the build's site step
   (``write_site``, which rewrites only that report's pages plus index, catalog, feeds, search);
   and ``lab2land rollback`` of that report through the CLI (also a one-report change);
3. weights: the index page(s), the catalog, the site feed and the search index.

The "naive" line for comparison is what the build did before incremental pages: every report's
pages rewritten on every change (the full rewrite). Prints figures; asserts nothing.

Usage: .venv/bin/python bench/bench_site_scale.py [--reports 1000] [--versions 5] [--keep]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nbformat
from nbformat import v4

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import kb, keep_or_remove, machine, publish, timed  # noqa: E402

WORDS = ["revenue", "churn", "forecast", "margin", "cohort", "retention", "pipeline", "funnel", "basket",
         "inventory", "supplier", "warehouse", "invoice", "refund", "segment", "campaign", "region", "weekly",
         "monthly", "quarterly"]


def config_text(reports: int) -> str:
    lines = ['[site]\ntitle = "Scale"\n']
    for i in range(reports):
        lines.append(f'[reports.r{i:04d}]\nnotebook = "nb.ipynb"\ntitle = "Report {i:04d} {WORDS[i % len(WORDS)]}"\n'
                     f'description = "Weekly {WORDS[(i * 7) % len(WORDS)]} figures for team {i % 37}."\n'
                     f'tags = ["team-{i % 37}", "{WORDS[(i * 3) % len(WORDS)]}"]\n'
                     f'parameters = {{ region = "north", week = {i % 52} }}\n')
    return "\n".join(lines)


def executed_notebook(i: int, n: int) -> str:
    nb = v4.new_notebook()
    cell = v4.new_code_cell("region = 'north'", metadata={"tags": ["parameters"]})
    nb.cells = [v4.new_markdown_cell(f"# Report {i}\n\nThis report tracks {WORDS[i % len(WORDS)]} and "
                                     f"{WORDS[(i + n) % len(WORDS)]} for the {WORDS[(i * 5) % len(WORDS)]} team "
                                     f"(unique word: zq{i:04d}x)."), cell,
                v4.new_code_cell("total", outputs=[v4.new_output("execute_result", {"text/plain": f"{i * n}"},
                                                                 execution_count=1)])]
    return nbformat.writes(nb)


def generate(project: Path, reports: int, versions: int) -> None:
    from lab2land.store import Store
    from lab2land.version import Version

    store = Store(project / "reports")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    page = "<!doctype html><html><head><title>v</title></head><body>" + "<p>figure</p>" * 100 + "</body></html>"
    for i in range(reports):
        previous = None
        for n in range(versions):
            when = start + timedelta(days=7 * n, minutes=i)
            vid = f"{when:%Y%m%dT%H%M%SZ}"
            version = Version(report=f"r{i:04d}", version_id=vid, status="ok" if (i + n) % 11 else "failed",
                              variant="default", parameters={"region": "north", "week": i % 52},
                              created=when.isoformat(), finished=when.isoformat(), duration_s=3.2,
                              executed_notebook="nb.ipynb", schema=2, previous=previous,
                              metrics={"revenue": {"name": "revenue", "value": 1000.0 + i + 10 * n,
                                                   "label": "Revenue", "unit": "$"}})
            store.commit_version(version, {"index.html": page, "nb.ipynb": executed_notebook(i, n)})
            previous = vid if version.complete else previous


def sizes(site: Path) -> dict[str, int]:
    found = {"index.html": (site / "index.html").stat().st_size,
             "catalog.json": (site / "catalog.json").stat().st_size}
    found["index pages"] = len(list(site.glob("index*.html")))
    for name in ("feed.xml",):
        if (site / name).exists():
            found[name] = (site / name).stat().st_size
    search = sorted([*site.glob("search*.js"), *(site / "assets").glob("search-index*.js")])
    found["search index"] = sum(p.stat().st_size for p in search)
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reports", type=int, default=1000)
    ap.add_argument("--versions", type=int, default=5)
    ap.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = ap.parse_args()

    from lab2land.build import write_site
    from lab2land.cache import State
    from lab2land.config import load_config
    from lab2land.store import Store
    from lab2land.version import Version

    print(f"P6 site scale — {machine()}")
    tmp = Path(tempfile.mkdtemp(prefix="l2l-bench-scale-"))
    project = tmp / "p"
    project.mkdir()
    (project / "publish.toml").write_text(config_text(args.reports), encoding="utf-8")
    nbformat.write(v4.new_notebook(cells=[v4.new_code_cell("region = 'north'\nweek = 0",
                                                            metadata={"tags": ["parameters"]})]), project / "nb.ipynb")
    made = timed(lambda: generate(project, args.reports, args.versions))
    print(f"generated {args.reports} reports × {args.versions} versions in {made:.1f} s")

    full_cli = publish(project, "repair")
    config = load_config(project)
    store, state = Store(config.output_dir), State(project)
    full_lib = timed(lambda: write_site(config, store, state, prune=False, everything=True))
    state.save()
    weights = sizes(config.output_dir)

    newest = store.versions("r0000")[0]
    when = datetime.now(UTC)
    fresh = Version(report="r0000", version_id=f"{when:%Y%m%dT%H%M%SZ}", status="ok", variant="default",
                    created=when.isoformat(), executed_notebook="nb.ipynb", schema=2, previous=newest.version_id)
    store.commit_version(fresh, {"index.html": "<p>new</p>", "nb.ipynb": executed_notebook(0, 9)})
    one_lib = timed(lambda: write_site(config, store, state))
    state.save()
    one_cli = publish(project, "rollback", "r0000")

    print(f"full rewrite:      lab2land repair (CLI) {full_cli:6.2f} s   write_site(everything) {full_lib:6.2f} s")
    print(f"one report update: write_site          {one_lib:6.2f} s   lab2land rollback (CLI) {one_cli:6.2f} s")
    print(f"  incremental vs full (library): {full_lib / one_lib:.1f}× less time")
    print(f"index page: {kb(weights['index.html'])} ({weights['index pages']} pages)   "
          f"catalog.json: {kb(weights['catalog.json'])}   feed.xml: {kb(weights.get('feed.xml', 0))}   "
          f"search index: {kb(weights['search index'])}")
    keep_or_remove(tmp, args.keep)


if __name__ == "__main__":
    main()
