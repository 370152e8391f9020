"""P9: how long each plotly.js bundle lab2land serves takes to start in Chromium.

A bare page (file://, a new browser context per visit, nothing cached) loads one bundle and
draws one bar chart; timed in the page: the bundle's evaluation (from before its <script> to
after it) and the first newPlot. Bundles: the basic, cartesian and SVG-only bundles lab2land
builds from plotly.js's sources (lab2land.vendor, vendor/plotly/); the same release's published
basic and cartesian bundles (``npm pack``ed here, what lab2land used before); and plotly.py's
full ``plotly.min.js`` (what every version page loaded before, and still the one for WebGL and
map traces); in the same run, median of 7 visits, interleaved.

Prints figures, asserts nothing. Usage: .venv/bin/python bench/bench_plotly_bundles.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402
from bench_dashboards import ARGS, CHROMIUM  # noqa: E402
from lab2land.dashboard_paint import ASSET_PATHS  # noqa: E402

VISITS = 7
BUNDLES = ["plotly-basic.min.js", "plotly-cartesian.min.js", "plotly-svg.min.js", "plotly.min.js"]
PUBLISHED = {"published plotly-basic.min.js": "plotly.js-basic-dist-min",
             "published plotly-cartesian.min.js": "plotly.js-cartesian-dist-min"}


def published(tmp: Path) -> dict[str, Path]:
    """The published partial bundles of the release lab2land builds, from the npm registry."""
    from lab2land import vendor

    found = {}
    for label, name in PUBLISHED.items():
        spec = f"{name}@{vendor.PACKAGES['plotly-basic']['version']}"
        tarball = subprocess.run(["npm", "pack", "--silent", spec], cwd=tmp, capture_output=True, text=True,
                                 check=True).stdout.strip().splitlines()[-1]
        member = f"package/{label.split()[-1]}"
        with tarfile.open(tmp / tarball) as tar:
            tar.extract(member, tmp / name, filter="data")
        found[label] = tmp / name / member
    return found
PAGE = """<body><div id="g" style="height:400px"></div>
<script>window.t0 = performance.now()</script><script src="{src}"></script>
<script>window.t1 = performance.now();
Plotly.newPlot('g', [{{type: 'bar', y: [1, 3, 2]}}, {{type: 'scatter', y: [2, 1, 3]}}]);
window.t2 = performance.now();</script></body>"""


def main() -> None:
    from playwright.sync_api import sync_playwright

    print(f"P9 plotly.js bundles, evaluation + first draw in Chromium (file://, cold): {machine()}")
    with tempfile.TemporaryDirectory(prefix="lab2land-bench-bundles-") as tmp, sync_playwright() as pw:
        files = {**{b: ASSET_PATHS[b] for b in BUNDLES}, **published(Path(tmp))}
        sizes = {b: path.stat().st_size / 2**20 for b, path in files.items()}
        times: dict[str, list[tuple[float, float]]] = {b: [] for b in files}
        pages = {}
        for bundle, path in files.items():
            pages[bundle] = Path(tmp) / f"{bundle}.html"
            pages[bundle].write_text(PAGE.format(src=path.as_uri()), encoding="utf-8")
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for _ in range(VISITS):
            for bundle in files:
                context = browser.new_context()
                page = context.new_page()
                page.goto(pages[bundle].as_uri())
                page.wait_for_selector(".main-svg")
                t0, t1, t2 = page.evaluate("[t0, t1, t2]")
                times[bundle].append((t1 - t0, t2 - t1))
                context.close()
        browser.close()
    full = statistics.median(e for e, _ in times["plotly.min.js"])
    print(f"median of {VISITS} visits (ms):")
    for bundle in times:
        evals = [e for e, _ in times[bundle]]
        draw = statistics.median(d for _, d in times[bundle])
        print(f"  {bundle:34} {sizes[bundle]:4.1f} MB  evaluate {statistics.median(evals):5.0f}  "
              f"(runs {min(evals):.0f}-{max(evals):.0f})  first draw {draw:4.0f}"
              f"   full / this: {full / statistics.median(evals):.1f}x")


if __name__ == "__main__":
    main()
