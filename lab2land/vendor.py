"""Third-party JavaScript that published pages need offline, fetched from the npm registry when
lab2land itself is built (wheel, sdist or editable install), never while publishing.

``setup.py`` calls :func:`fetch` before it collects package data, so a wheel carries the files
under ``lab2land/static/vendor/<key>/`` and a machine that installs it needs neither npm nor a
network. This module uses only the standard library: it runs inside the isolated environment of
a build, where none of lab2land's dependencies are installed.

Each package is pinned with its registry integrity, so a re-published tarball cannot slip in
unnoticed. The plotly.js partial bundles are built instead, from plotly.js's sources by the
recipe in ``vendor/plotly/`` (``npm ci`` from its lockfile with install scripts off, then
esbuild), pinned by the recipe's own integrity. ``python -m lab2land.vendor fetch`` fetches and
builds by hand (a checkout that was never installed).
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VENDOR_DIR = Path(__file__).resolve().parent / "static" / "vendor"
# Recipes of the packages built from sources (``"build"`` below): in a checkout and the sdist.
RECIPES_DIR = Path(__file__).resolve().parent.parent / "vendor"
# The files of a recipe that :func:`recipe_integrity` covers and a build copies.
RECIPE_FILES = ("package.json", "package-lock.json", "build.js")
# Written inside each package's folder, so the folder and what it claims to hold are renamed
# into place together.
PINNED = ".pinned.json"

# The recipe the plotly.js partial bundles are built from: vendor/plotly/ (package.json, its
# npm lockfile, build.js). `integrity` pins the recipe (:func:`recipe_integrity`); the lockfile
# pins every package it installs.
PLOTLY_RECIPE = {
    "name": "plotly.js",
    "version": "4.1.1",
    "integrity": "sha512-NOE2555Rwyeb60paa7kZUYf+G3Op+1y+leVSBKpBdctgxJ3czlDPdyLz4YJAlzbIbCso1WXOj4RyWG6SRet2Rw==",
    "build": "plotly",
}


def _plotly_bundle(key: str, traces: tuple[str, ...]) -> dict:
    """A plotly.js partial bundle for pages (version pages and dashboards) whose figures use only
    ``traces`` (lab2land.page_needs picks the smallest that fits, else plotly.py's full
    plotly.min.js, ~1.2-1.7 s of a first paint here). Same release as the plotly.min.js plotly.py
    ships, built from its sources by PLOTLY_RECIPE, not the published plotly.js-*-dist-min
    bundles, which start ~1.2-2.5x slower in Chromium (build.js says why; bench/README.md, P9);
    ``traces`` are what build.js registers."""
    return {key: {**PLOTLY_RECIPE, "files": {f"{key}.min.js": f"{key}.min.js", "LICENSE": "LICENSE"},
                  "assets": key, "traces": traces}}


# `files` maps tarball paths (prefixes, or globs) to paths under vendor/<key>/; `assets` is
# where the site's assets/ folder gets vendor/<key>/ (None: only ``serve`` uses the package).
# A package with a `build` is built from the recipe RECIPES_DIR/<build> instead of packed: its
# `files` are what the build must write, its `integrity` is the recipe's.
PACKAGES = {
    # The non-AMD widget manager: dist/embed.js renders every widget-view data block from
    # the widget-state block on window load, with no require.js. Its CSS loads the Font
    # Awesome fonts relative to the script (woff2/woff/ttf kept; eot/svg serve only old
    # browsers); the source map and AMD bundles are left out.
    "html-manager": {
        "name": "@jupyter-widgets/html-manager",
        "version": "1.0.15",
        "integrity": "sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA==",
        "files": {"package/dist/embed.js": "embed.js", "package/dist/embed.js.LICENSE.txt": "LICENSE.txt",
                  "package/dist/*.woff2": "", "package/dist/*.woff": "", "package/dist/*.ttf": ""},
        "assets": "widgets",
    },
    # MathJax 3, for notebooks with math only: the all-in-one TeX bundle (so it never loads
    # extensions on demand) and the CHTML fonts it finds relative to itself.
    "mathjax": {
        "name": "mathjax",
        "version": "3.2.2",
        "integrity": "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==",
        "files": {"package/es5/tex-chtml-full.js": "tex-chtml-full.js", "package/LICENSE": "LICENSE",
                  "package/es5/output/chtml/fonts/woff-v2/*.woff": "output/chtml/fonts/woff-v2/"},
        "assets": "mathjax",
    },
    # The same MathJax release with SVG output, for pages whose plotly figures hold TeX:
    # plotly.js typesets titles, axes and legends only through MathJax's SVG output
    # (MathJax._.output.svg_ts), which the CHTML bundle lacks. Its glyphs are inline paths,
    # so it needs no font files.
    "mathjax-svg": {
        "name": "mathjax",
        "version": "3.2.2",
        "integrity": "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==",
        "files": {"package/es5/tex-svg-full.js": "tex-svg-full.js", "package/LICENSE": "LICENSE"},
        "assets": "mathjax-svg",
    },
    # MiniSearch, the full-text search behind the search box of every site page (its UMD
    # bundle sets window.MiniSearch; search.js loads it only when a reader starts to search).
    "minisearch": {
        "name": "minisearch",
        "version": "7.2.0",
        "integrity": "sha512-dqT2XBYUOZOiC5t2HRnwADjhNS2cecp9u+TJRiJ1Qp/f5qjkeT5APcGPjHw+bz89Ms8Jp+cG4AlE+QZ/QnDglg==",
        "files": {"package/dist/umd/index.js": "minisearch.js", "package/LICENSE.txt": "LICENSE.txt"},
        "assets": "minisearch",
    },
    # plotly.js partial bundles (see _plotly_bundle): basic and cartesian with the published
    # bundles' trace lists; and every trace type plotly.js draws with SVG alone, none with WebGL
    # or map tiles (those are left to the full plotly.min.js): ~0.3-0.45 s to evaluate where the
    # full one takes ~1.2-1.6 s.
    **_plotly_bundle("plotly-basic", ("bar", "pie", "scatter")),
    **_plotly_bundle("plotly-cartesian", (
        "bar", "box", "contour", "heatmap", "histogram", "histogram2d", "histogram2dcontour", "image", "pie",
        "scatter", "scatterternary", "violin")),
    **_plotly_bundle("plotly-svg", (
        "bar", "barpolar", "box", "candlestick", "carpet", "choropleth", "contour", "contourcarpet", "funnel",
        "funnelarea", "heatmap", "histogram", "histogram2d", "histogram2dcontour", "icicle", "image", "indicator",
        "ohlc", "parcats", "pie", "quiver", "sankey", "scatter", "scattercarpet", "scattergeo", "scatterpolar",
        "scattersmith", "scatterternary", "sunburst", "table", "treemap", "violin", "waterfall")),
}


class FetchError(RuntimeError):
    """npm is missing, ``npm pack`` failed, or a tarball is not the pinned one."""


def pin(key: str) -> dict:
    """What identifies a package's pinned release: name, version and integrity (and, for one
    built from a recipe, the trace types it was built with)."""
    pkg = PACKAGES[key]
    found = {k: pkg[k] for k in ("name", "version", "integrity")}
    if "build" in pkg:
        found["traces"] = list(pkg["traces"])  # as .pinned.json reads back
    return found


def present(key: str, vendor_dir: Path | None = None) -> bool:
    """True if ``vendor_dir/key`` holds exactly the pinned release of that package."""
    vendor_dir = vendor_dir or VENDOR_DIR
    try:
        return json.loads((vendor_dir / key / PINNED).read_text(encoding="utf-8")) == pin(key)
    except (OSError, ValueError):
        return False


def missing(vendor_dir: Path | None = None) -> list[str]:
    """Keys of the packages not (or not at the pinned release) in ``vendor_dir``."""
    return [key for key in PACKAGES if not present(key, vendor_dir)]


def fetch(vendor_dir: Path | None = None, npm: str | None = None) -> list[str]:
    """Fetch every missing package into ``vendor_dir`` with ``npm pack``, or build it from its
    recipe; return the keys fetched.

    Each package is unpacked (or built) into a temporary folder beside its destination and
    renamed into place, so a killed fetch leaves the old files or none, never half a package.

    Raises:
        FetchError: npm (or node) is not installed, the registry cannot be reached, a tarball or
            recipe does not match its pinned integrity, or a build failed.
    """
    vendor_dir = vendor_dir or VENDOR_DIR
    todo = missing(vendor_dir)
    if not todo:
        return []
    npm = npm or shutil.which("npm")
    if npm is None:
        raise FetchError("building lab2land needs npm once, to fetch the offline JavaScript for the "
                         f"published pages ({', '.join(PACKAGES[k]['name'] for k in todo)}): install it "
                         "(Debian: `apt-get install npm`) and build again, or install lab2land from a wheel")
    vendor_dir.mkdir(parents=True, exist_ok=True)
    # Recipes are installed (~170 MB of node_modules) outside the package: a killed build must
    # not leave them where the next build collects package data.
    with tempfile.TemporaryDirectory(prefix="lab2land-recipes-") as recipes:
        installed: dict[str, Path] = {}  # recipe -> its npm-installed copy, one `npm ci` each
        for key in todo:
            with tempfile.TemporaryDirectory(dir=vendor_dir) as tmp:
                staged = Path(tmp) / key
                pkg = PACKAGES[key]
                if "build" in pkg:
                    if pkg["build"] not in installed:
                        installed[pkg["build"]] = _npm_install_recipe(npm, Path(recipes), pkg)
                    _build(installed[pkg["build"]], key, staged)
                else:
                    tarball = _npm_pack(npm, Path(tmp), pkg)
                    _extract(tarball, staged, pkg["files"])
                (staged / PINNED).write_text(json.dumps(pin(key), indent=2) + "\n", encoding="utf-8")
                if (vendor_dir / key).exists():
                    shutil.rmtree(vendor_dir / key)
                os.replace(staged, vendor_dir / key)
    return todo


def _npm_pack(npm: str, workdir: Path, pkg: dict) -> Path:
    spec = f"{pkg['name']}@{pkg['version']}"
    proc = subprocess.run([npm, "pack", "--json", spec], cwd=workdir, capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        raise FetchError(f"`npm pack {spec}` failed (exit {proc.returncode}); is the npm registry "
                         f"reachable? {proc.stderr.strip()}")
    try:
        filename = json.loads(proc.stdout)[0]["filename"]
    except (ValueError, IndexError, KeyError) as exc:
        raise FetchError(f"`npm pack --json {spec}` printed no package info: {proc.stdout[:500]!r}") from exc
    # npm names scoped tarballs without the "@"; be tolerant of either spelling.
    tarball = workdir / filename.lstrip("@").replace("/", "-")
    algorithm, expected = pkg["integrity"].split("-", 1)
    actual = base64.b64encode(hashlib.new(algorithm, tarball.read_bytes()).digest()).decode()
    if actual != expected:
        raise FetchError(f"{tarball.name} does not match the pinned integrity of {spec}: refusing to use it")
    return tarball


def recipe_integrity(recipe: Path) -> str:
    """``sha512-…`` of a build recipe's files (names and contents, in RECIPE_FILES order)."""
    digest = hashlib.sha512()
    for name in RECIPE_FILES:
        data = (recipe / name).read_bytes()
        digest.update(f"{name}\0{len(data)}\0".encode() + data)
    return "sha512-" + base64.b64encode(digest.digest()).decode()


def _npm_install_recipe(npm: str, workdir: Path, pkg: dict) -> Path:
    """A copy of the package's recipe in ``workdir``, checked against its pin, with ``npm ci``
    run in it (every package checked against the recipe's lockfile, no install scripts run)."""
    recipe = RECIPES_DIR / pkg["build"]
    spec = f"{pkg['name']}@{pkg['version']}"
    if not all((recipe / name).is_file() for name in RECIPE_FILES):
        raise FetchError(f"{spec} is built from the recipe in {recipe}, which is missing or incomplete "
                         f"(needs {', '.join(RECIPE_FILES)}): build lab2land from a full checkout or sdist")
    work = workdir / pkg["build"]
    work.mkdir()
    for name in RECIPE_FILES:
        shutil.copyfile(recipe / name, work / name)
    if recipe_integrity(work) != pkg["integrity"]:
        raise FetchError(f"the recipe in {recipe} does not match the pinned integrity of {spec}: refusing to "
                         "build it (a changed recipe needs a new pin in lab2land/vendor.py)")
    _run_step([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"], work,
              f"building {spec}: `npm ci` (is the npm registry reachable?)")
    return work


def _build(work: Path, key: str, staged: Path) -> None:
    """``node build.js`` in an installed recipe: the bundle of ``key``'s trace types in ``staged``."""
    pkg = PACKAGES[key]
    node = shutil.which("node")
    if node is None:
        raise FetchError(f"building {key} ({pkg['name']}@{pkg['version']}) needs node, which npm uses too: install it")
    staged.mkdir()
    _run_step([node, "build.js", str(staged / f"{key}.min.js"), *pkg["traces"]], work,
              f"building {key}: `node build.js`")
    for target in pkg["files"].values():
        if not (staged / target).is_file():
            raise FetchError(f"building {key}: build.js wrote no {target}")


def _run_step(cmd: list[str], cwd: Path, what: str) -> None:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FetchError(f"{what} could not run: {exc}") from exc
    if proc.returncode != 0:
        raise FetchError(f"{what} failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()[-2000:]}")


def _extract(tarball: Path, dest: Path, files: dict[str, str]) -> None:
    """Copy the selected members of an npm tarball: ``{"package/x/*.woff": "fonts/", ...}``."""
    dest.mkdir(parents=True)
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar.getmembers():
            if not member.isfile():
                continue
            for pattern, target in files.items():
                if fnmatch.fnmatchcase(member.name, pattern) and "/" not in member.name[len(pattern.split("*")[0]):]:
                    out = dest / (target + Path(member.name).name if target.endswith("/") or not target else target)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with tar.extractfile(member) as src:
                        out.write_bytes(src.read())
    for pattern, target in files.items():
        if "*" not in pattern and not (dest / target).is_file():
            raise FetchError(f"{tarball.name} has no {pattern}: the pinned version changed layout")


def main(argv: list[str] | None = None) -> int:
    """``python -m lab2land.vendor fetch``: fetch what is missing (a build does this itself)."""
    args = sys.argv[1:] if argv is None else argv
    if args != ["fetch"]:
        print("usage: python -m lab2land.vendor fetch", file=sys.stderr)
        return 2
    try:
        fetched = fetch()
    except FetchError as exc:
        print(f"lab2land: {exc}", file=sys.stderr)
        return 1
    print(f"lab2land: offline assets ready in {VENDOR_DIR}" + (f" (fetched {', '.join(fetched)})" if fetched else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
