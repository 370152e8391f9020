"""P3: page weight of a lab2land report page vs ``jupyter nbconvert --to html``.

For each demo report (kpi north, fraud, lead_scoring) it compares:

* ours: the version page ``reports/<report>/<version>/index.html`` as ``publish.py build``
  writes it (HTML only; plotly.js, CSS and the widget manager live once under
  ``reports/assets/``, printed once below the table);
* nbconvert: the same notebook, same parameters and same data snapshot, executed with
  ``PLOTLY_RENDERER=notebook`` (how a user gets plots into nbconvert's HTML at all: plotly.js
  inlined into the notebook) by the papermill CLI, then ``jupyter nbconvert --to html``; also
  with ``--no-input``, since our pages hide code by default.

Target: our page <= 150 KB. Prints figures, asserts nothing.

Usage: .venv/bin/python bench/bench_page_weight.py [--keep]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BIN, ROOT, demo_project, kb, keep_or_remove, machine, publish, run, tree_bytes  # noqa: E402

NOTEBOOKS = ["kpi_report.ipynb", "fraud_detection.ipynb", "lead_scoring.ipynb"]
PAGES = [("kpi", "north", "kpi north"), ("fraud", "default", "fraud"), ("lead_scoring", "default", "lead_scoring")]
TARGET_KB = 150
CELL_TIMEOUT = 60  # bounds the widget-cell stall (nbclient #312) on both sides; see bench/README.md


def version_of(site: Path, report: str, variant: str) -> dict:
    catalog = json.loads((site / "catalog.json").read_text(encoding="utf-8"))
    entry = catalog["reports"][report]
    version_id = entry["variants"][variant]["latest"]
    if version_id is None:
        sys.exit(f"{report}[{variant}] did not publish: {entry['versions'][:1]}")
    return json.loads((site / report / version_id / "manifest.json").read_text(encoding="utf-8"))


def nbconvert_pages(project: Path, manifest: dict, out: Path) -> tuple[int, int]:
    """Execute like a user would (plotly inline), convert; bytes with and without code."""
    nb_dir = project / "notebooks"
    executed = out / f"{manifest['report']}.ipynb"
    # A source's snapshot path is relative to the project (the notebook runs in notebooks/).
    params = {**manifest["parameters"], **{s["name"]: str(project / s["path"]) for s in manifest["sources"]}}
    cmd = [str(BIN / "papermill"), str(project / manifest["notebook"]), str(executed), "--cwd", str(nb_dir),
           "--execution-timeout", str(CELL_TIMEOUT)]
    for name, value in params.items():
        cmd += ["-r" if isinstance(value, str) else "-p", name, str(value)]
    run(cmd, env={"PLOTLY_RENDERER": "notebook"})
    run([str(BIN / "jupyter"), "nbconvert", "--to", "html", str(executed)])
    run([str(BIN / "jupyter"), "nbconvert", "--to", "html", "--no-input", "--output",
         f"{executed.stem}.noinput", str(executed)])
    return (executed.with_suffix(".html").stat().st_size,
            (out / f"{executed.stem}.noinput.html").stat().st_size)


def referenced_assets(page: Path, site: Path) -> dict[str, int]:
    """Shared files the page loads (scripts, stylesheets) and their sizes."""
    html = page.read_text(encoding="utf-8")
    found = {}
    for ref in re.findall(r'(?:src|href)="([^"#?]+\.(?:js|css))"', html):
        path = (page.parent / ref).resolve()
        if path.is_file():
            found[str(path.relative_to(site.resolve()))] = path.stat().st_size
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary project and print its path")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)

    tmp = Path(tempfile.mkdtemp(prefix="lab2land-bench-weight-"))
    toml = re.sub(r"^(\[reports\.\w+\]\n)", rf"\1timeout = {CELL_TIMEOUT}\n",
                  (ROOT / "publish.toml").read_text(encoding="utf-8"), flags=re.M)
    project = demo_project(tmp, NOTEBOOKS, toml)
    print("P3 page weight: lab2land version page vs jupyter nbconvert --to html (plotly inline)")
    print(f"machine: {machine()}")
    publish(project, "build", "--jobs", "2", "--force")
    site = project / "reports"
    out = project / "nbconvert"
    out.mkdir()

    rows, loaded = [], {}
    for report, variant, label in PAGES:
        manifest = version_of(site, report, variant)
        page = site / report / manifest["version_id"] / "index.html"
        ours = page.stat().st_size
        loaded.update(referenced_assets(page, site))
        full, no_input = nbconvert_pages(project, manifest, out)
        rows.append((label, ours, full, no_input))

    print(f"\n{'page':14} {'ours (HTML)':>12} {'nbconvert':>12} {'ratio':>7} {'nbconvert --no-input':>21} "
          f"{'ratio':>7}  {'<= ' + str(TARGET_KB) + ' KB':>9}")
    for label, ours, full, no_input in rows:
        print(f"{label:14} {kb(ours):>12} {kb(full):>12} {full / ours:6.1f}x {kb(no_input):>21} "
              f"{no_input / ours:6.1f}x  {'yes' if ours <= TARGET_KB * 1024 else 'NO':>9}")
    assets = site / "assets"
    print(f"\nshared assets, once per site: reports/assets/ = {kb(tree_bytes(assets))} "
          f"({sum(1 for p in assets.rglob('*') if p.is_file())} files)")
    print("of which these pages load:")
    for name, size in sorted(loaded.items(), key=lambda kv: -kv[1]):
        print(f"  {name:40} {kb(size):>12}")
    print(f"  {'total':40} {kb(sum(loaded.values())):>12}")
    keep_or_remove(tmp, args.keep, project)


if __name__ == "__main__":
    main()
