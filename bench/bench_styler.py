"""P9: a Styler-heavy page (the pandas Styler user guide) before and after keeping output CSS.

The notebook is ``tests/corpus_fidelity/pandas/style.ipynb`` without the cells that need
matplotlib, seaborn, openpyxl or the guide's template folder (not installed or not shipped here;
the same copy ``tests/test_fidelity_corpus.py`` publishes). It compares, on one executed run:

* **after**: the version page ``publish.py build`` writes now (Styler ``<style>`` rules kept,
  cleaned with tinycss2 and scoped to their output);
* **before**: the same page with those scoped ``<style>`` blocks taken out: what the sanitizer
  that dropped every ``<style>`` wrote;
* **nbconvert**: ``jupyter nbconvert --to html`` of the same executed notebook (the reference
  for what the author saw; it keeps every ``<style>`` unsanitized).

For each: HTML bytes and, in headless Chromium from file://, how many Styler tables show any
colour and how many cells are coloured. nbconvert's count is a little higher for a reason: its
``<style>`` rules are global, so a later output of the same Styler (same ``T_<uuid>`` ids; the
guide re-displays ``s`` and ``s2`` after changing them) recolours an earlier table. The guide
itself calls that a clash ("Hidden cell to avoid CSS clashes"); lab2land scopes each output's
rules to that output, so every table looks as its own cell made it. Also the build time of the report (CLI, start-up
included), the render time of its page and the share of it spent cleaning CSS.
Prints figures, asserts nothing.

Usage: .venv/bin/python bench/bench_styler.py [--keep]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from _common import BIN, ROOT, kb, keep_or_remove, machine, publish, run, timed  # noqa: E402

GUIDE = ROOT / "tests" / "corpus_fidelity" / "pandas" / "style.ipynb"
COUNT_JS = """() => {
  const tables = [...document.querySelectorAll("table[id^='T_']")];
  const coloured = tables.map(t => [...t.querySelectorAll('td, th')].filter(c => {
    const s = getComputedStyle(c);
    return s.backgroundColor !== 'rgba(0, 0, 0, 0)' || !['rgb(0, 0, 0)', 'rgba(0, 0, 0, 0.87)'].includes(s.color);
  }).length);
  return [tables.length, coloured.filter(n => n > 0).length, coloured.reduce((a, b) => a + b, 0)];
}"""
SCOPED_STYLE = re.compile(r'(<div class="[^"]*\bl2l-scoped"[^>]*>\s*)<style>.*?</style>', re.S)


def colours(pages: dict[str, Path]) -> dict[str, list[int]]:
    """[Styler tables, tables with colour, coloured cells] of each page, as Chromium draws it."""
    from playwright.sync_api import sync_playwright

    from conftest import CHROMIUM, CHROMIUM_ARGS

    found = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        for name, path in pages.items():
            page = browser.new_page()
            page.goto(path.as_uri(), wait_until="load")
            found[name] = page.evaluate(COUNT_JS)
            page.close()
        browser.close()
    return found


def render_times(executed: Path, notebook_dir: Path) -> tuple[float, float]:
    """Seconds to render the page in-process (warm exporter, best of 3), and the part of one
    render spent in lab2land.css.clean_css (every <style> of every output, cleaned once)."""
    import nbformat

    from lab2land import css, render
    from test_render import page_context

    nb = nbformat.read(executed, as_version=4)
    render.render_version(nb, page_context(), notebook_dir=notebook_dir)  # builds the exporter
    best = min(timed(lambda: render.render_version(nb, page_context(), notebook_dir=notebook_dir))
               for _ in range(3))
    styles = [t for cell in nb.cells for out in cell.get("outputs", [])
              for t in css.style_texts("".join(out.get("data", {}).get("text/html", "")))]
    cleaning = timed(lambda: [css.clean_css(t, "l2l-o0-0") for t in styles])
    return best, cleaning


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary project and print its path")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    import nbformat

    from conftest import write_project
    from test_fidelity_corpus import without_missing_packages

    tmp = Path(tempfile.mkdtemp(prefix="lab2land-bench-styler-"))
    nb = without_missing_packages(nbformat.read(GUIDE, as_version=4))
    project = write_project(tmp, {"notebooks/style.ipynb": nb}, {"styler": {
        "notebook": "notebooks/style.ipynb", "title": "Styler guide", "takes_parameters": False, "timeout": 120}})
    print("P9 Styler-heavy page: output CSS kept (after) vs dropped (before) vs jupyter nbconvert --to html")
    print(f"machine: {machine()}")
    build_s = publish(project, "build")
    site = project / "reports"
    (version,) = (site / "styler").glob("*/manifest.json")
    after = version.parent / "index.html"
    before = version.parent / "before.html"
    before.write_text(SCOPED_STYLE.sub(r"\1", after.read_text(encoding="utf-8")), encoding="utf-8")
    executed = version.parent / json.loads(version.read_text())["executed_notebook"]
    nbconvert_s = run([str(BIN / "jupyter"), "nbconvert", "--to", "html", "--output-dir", str(tmp / "nbconvert"),
                       str(executed)])
    reference = tmp / "nbconvert" / (executed.stem + ".html")
    pages = {"after (lab2land now)": after, "before (styles dropped)": before, "nbconvert": reference}
    counts = colours(pages)
    render_s, css_s = render_times(executed, project / "notebooks")

    print(f"\n{'page':26} {'HTML':>11} {'Styler tables':>14} {'with colour':>12} {'coloured cells':>15}")
    for name, path in pages.items():
        tables, with_colour, cells = counts[name]
        print(f"{name:26} {kb(path.stat().st_size):>11} {tables:>14} {with_colour:>12} {cells:>15}")
    a, b = after.stat().st_size, before.stat().st_size
    print(f"\npage weight after/before: {a / b:.2f}x (+{kb(a - b)} of scoped CSS)")
    print(f"build of the report (publish.py build, CLI start-up and kernel included): {build_s:.1f} s")
    print(f"jupyter nbconvert --to html of the executed notebook (CLI): {nbconvert_s:.1f} s")
    print(f"render of the page in-process (warm): {render_s * 1000:.0f} ms, of which cleaning the CSS: "
          f"{css_s * 1000:.0f} ms ({css_s / render_s:.0%})")
    keep_or_remove(tmp, args.keep, project)


if __name__ == "__main__":
    main()
