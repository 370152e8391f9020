"""P8: a version page's first figure on screen, in headless Chromium from file://.

For each demo report (kpi north, fraud, lead_scoring), median of 5 cold visits (a new browser
context each, so nothing is cached), timed in the page: the frame after the first plotly
figure is on screen, from the navigation's start. Three pages of the same executed notebook:

* ours: the version page as ``publish.py build`` writes it, which loads the smallest plotly.js
  bundle that draws its figures' trace types (lab2land.page_needs);
* ours, full plotly.js: the same page loading plotly.py's full ``plotly.min.js`` instead (what
  every version page loaded before);
* nbconvert: ``jupyter nbconvert --to html --no-input`` of the notebook executed by the papermill
  CLI with ``PLOTLY_RENDERER=notebook`` (P3's baseline: plotly.js inlined into the page).

Prints figures, asserts nothing. Usage: .venv/bin/python bench/bench_page_paint.py
"""

from __future__ import annotations

import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, demo_project, machine, publish  # noqa: E402
from bench_dashboards import ARGS, CHROMIUM  # noqa: E402
from bench_page_weight import CELL_TIMEOUT, NOTEBOOKS, PAGES, nbconvert_pages, version_of  # noqa: E402

VISITS = 5
# The frame after a figure's SVG first has a box, as performance.now() (from navigation start).
MARK_JS = """(() => {
  new MutationObserver((_, obs) => {
    const shown = [...document.querySelectorAll('.js-plotly-plot .main-svg, .plotly-graph-div .main-svg')]
      .some(e => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0; });
    if (shown && !('__l2lPlot' in window)) {
      window.__l2lPlot = null;
      obs.disconnect();
      requestAnimationFrame(() => window.__l2lPlot = performance.now());
    }
  }).observe(document, {subtree: true, childList: true, attributes: true});
})();"""


def first_plot(browser, page_path: Path) -> float:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.add_init_script(MARK_JS)
    page.goto(page_path.as_uri(), wait_until="commit")
    # Polled by evaluate (no eval() in the page, which its Content-Security-Policy forbids).
    deadline = time.monotonic() + 60
    while not isinstance(mark := page.evaluate("window.__l2lPlot"), (int, float)):
        if time.monotonic() > deadline:
            sys.exit(f"no figure on screen in 60 s: {page_path}")
        time.sleep(0.05)
    seconds = mark / 1000
    context.close()
    return seconds


def main() -> None:
    from playwright.sync_api import sync_playwright

    sys.stdout.reconfigure(line_buffering=True)
    print(f"P8 version page, first figure on screen (Chromium, file://, cold): {machine()}")
    with tempfile.TemporaryDirectory(prefix="lab2land-bench-paint-") as tmp:
        toml = re.sub(r"^(\[reports\.\w+\]\n)", rf"\1timeout = {CELL_TIMEOUT}\n",
                      (ROOT / "publish.toml").read_text(encoding="utf-8"), flags=re.M)
        project = demo_project(Path(tmp), NOTEBOOKS, toml)
        publish(project, "build", "--jobs", "2", "--force")
        site = project / "reports"
        out = project / "nbconvert"
        out.mkdir()
        pages = []
        for report, variant, label in PAGES:
            manifest = version_of(site, report, variant)
            ours = site / report / manifest["version_id"] / "index.html"
            html = ours.read_text(encoding="utf-8")
            bundle = re.search(r'src="\.\./\.\./assets/([^"]*plotly[^"]*\.js)"', html).group(1)
            full = ours.with_name("index.full-plotly.html")
            full.write_text(html.replace(f"../../assets/{bundle}", "../../assets/plotly.min.js"), encoding="utf-8")
            nbconvert_pages(project, manifest, out)
            pages.append((label, bundle, ours, full, out / f"{manifest['report']}.noinput.html"))

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            rows = []
            for label, bundle, *paths in pages:
                times = [[], [], []]
                for _ in range(VISITS):  # interleaved, so load changes hit all three alike
                    for i, path in enumerate(paths):
                        times[i].append(first_plot(browser, path))
                rows.append((label, bundle, [statistics.median(t) for t in times], times))
            browser.close()
    print(f"median of {VISITS} cold visits, seconds from navigation start to the first figure on screen:")
    for label, bundle, (ours, full, nbconvert), times in rows:
        print(f"  {label} (ours loads {bundle}):")
        print(f"    ours:                 {ours:.2f} s   runs {', '.join(f'{t:.2f}' for t in times[0])}")
        print(f"    ours, full plotly.js: {full:.2f} s   runs {', '.join(f'{t:.2f}' for t in times[1])}"
              f"   ({full / ours:.1f}x ours)")
        print(f"    nbconvert --no-input: {nbconvert:.2f} s   runs {', '.join(f'{t:.2f}' for t in times[2])}"
              f"   ({nbconvert / ours:.1f}x ours)")


if __name__ == "__main__":
    main()
