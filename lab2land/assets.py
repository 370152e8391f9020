"""Shared, offline assets of a published site: written once under ``reports/assets/``.

Every page references these by relative URL, so the site works from any static host and
from ``file://`` with no network: plotly.js (shipped by the plotly package), the Jupyter
widget manager bundle (fetched and MathJax, fetched from the npm registry once,
at setup, by :func:`fetch_vendor_assets`), the notebook CSS (from nbconvert's ``lab`` template) and
lab2land's own CSS and JS (``templates/site/static/``).

Run ``python -m lab2land.assets fetch`` once (``make setup`` does) before publishing.
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

import plotly

import lab2land

from lab2land.store import write_atomic
from lab2land.templating import TEMPLATES_DIR
VENDOR_DIR = Path(lab2land.__file__).resolve().parent / "static" / "vendor"

# Third-party JS fetched once from the npm registry, pinned with its registry integrity so
# a re-published tarball cannot slip in unnoticed. `files` maps tarball paths (prefixes) to
# paths under vendor/<key>/; `assets` is where install_assets puts vendor/<key>/.
VENDOR_PACKAGES = {
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
}


class AssetError(RuntimeError):
    """A shared asset is missing or could not be fetched; the message says how to fix it."""


def install_assets(site_dir: Path) -> Path:
    """Write the shared assets once under ``site_dir/'assets'``.

    Idempotent: a file whose content is unchanged is not rewritten; changed files are
    written to a temporary file and moved into place with ``os.replace``, so a reader never
    sees a half-written asset.

    Args:
        site_dir: The site's root (the ``reports/`` directory).

    Returns:
        The assets directory.

    Raises:
        AssetError: The widget manager bundle has not been fetched yet.
    """
    assets = Path(site_dir) / "assets"
    for rel, data in _asset_files():
        _write_if_changed(assets / rel, data)
    return assets


def fetch_vendor_assets() -> None:
    """Download third-party JS needed offline from the npm registry into lab2land/static/vendor/.

    Uses ``npm pack`` (the registry's ordinary client) for each pinned package in
    ``VENDOR_PACKAGES`` (the Jupyter widget manager, MathJax) and checks its integrity.
    Packages already there at the pinned version are skipped. Called once at setup
    (``python -m lab2land.assets fetch``).

    Raises:
        AssetError: npm is missing, ``npm pack`` failed, or a tarball is not the pinned one.
    """
    manifest = {k: v for k, v in _vendor_manifest().items() if k in VENDOR_PACKAGES}
    wanted = {key: {k: pkg[k] for k in ("name", "version", "integrity")} for key, pkg in VENDOR_PACKAGES.items()}
    todo = [key for key in VENDOR_PACKAGES
            if manifest.get(key) != wanted[key] or not (VENDOR_DIR / key).is_dir()]
    if not todo:
        return
    npm = shutil.which("npm")
    if npm is None:
        raise AssetError("npm is not installed, and it is needed once to fetch the Jupyter widget "
                         "manager and MathJax: install it (Debian: `apt-get install npm`) and run "
                         "`python -m lab2land.assets fetch`")
    VENDOR_DIR.mkdir(parents=True, exist_ok=True)
    for key in todo:
        with tempfile.TemporaryDirectory(dir=VENDOR_DIR) as tmp:
            tarball = _npm_pack(npm, Path(tmp), VENDOR_PACKAGES[key])
            staged = Path(tmp) / key
            _extract(tarball, staged, VENDOR_PACKAGES[key]["files"])
            if (VENDOR_DIR / key).exists():
                shutil.rmtree(VENDOR_DIR / key)
            os.replace(staged, VENDOR_DIR / key)
        manifest[key] = wanted[key]
        _write_if_changed(VENDOR_DIR / "manifest.json", json.dumps(manifest, indent=2).encode() + b"\n")


# --- internals ---------------------------------------------------------------------------

def _asset_files() -> list[tuple[str, bytes]]:
    """(path under assets/, content) of every shared asset."""
    files = [("plotly.min.js", _plotly_js()), ("notebook.css", _notebook_css())]
    static = TEMPLATES_DIR / "site" / "static"
    files += [(p.relative_to(static).as_posix(), p.read_bytes())
              for p in sorted(static.rglob("*")) if p.is_file()]
    for key, pkg in VENDOR_PACKAGES.items():
        source = VENDOR_DIR / key
        if _vendor_manifest().get(key, {}).get("version") != pkg["version"] or not source.is_dir():
            raise AssetError(f"{pkg['name']} {pkg['version']} is missing from {source}: run "
                             "`python -m lab2land.assets fetch` (part of `make setup`) once")
        files += [(f"{pkg['assets']}/{p.relative_to(source).as_posix()}", p.read_bytes())
                  for p in sorted(source.rglob("*")) if p.is_file()]
    return files


def _plotly_js() -> bytes:
    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise AssetError(f"plotly {plotly.__version__} does not ship {path}: reinstall plotly")
    return path.read_bytes()


def _notebook_css() -> bytes:
    """nbconvert's ``lab`` CSS and light theme plus the code highlighting styles, as one
    shared file (inlined, as nbconvert does, it would add ~270 KB to every page)."""
    from nbconvert.exporters.templateexporter import TemplateExporter
    from pygments.formatters import HtmlFormatter

    parts = []
    for name in ("index.css", "theme-light.css"):
        path = _find_lab_static(TemplateExporter, name)
        parts.append(f"/* nbconvert lab/static/{name} */\n" + path.read_text(encoding="utf-8"))
    try:
        from jupyterlab_pygments import JupyterStyle as style
    except ImportError:  # optional: pygments' default style reads fine too
        style = "default"
    parts.append("/* code highlighting */\n" + HtmlFormatter(style=style).get_style_defs(".highlight"))
    return "\n".join(parts).encode("utf-8")


def _find_lab_static(exporter_cls, name: str) -> Path:
    for root in exporter_cls().get_prefix_root_dirs():
        path = Path(root) / "nbconvert" / "templates" / "lab" / "static" / name
        if path.is_file():
            return path
    raise AssetError(f"nbconvert's lab template file static/{name} was not found: reinstall nbconvert")


def _write_if_changed(path: Path, data: bytes) -> bool:
    """Write ``data`` atomically unless ``path`` already holds it; True if written."""
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return False
    write_atomic(path, data)
    return True


def _vendor_manifest() -> dict:
    path = VENDOR_DIR / "manifest.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _npm_pack(npm: str, workdir: Path, pkg: dict) -> Path:
    spec = f"{pkg['name']}@{pkg['version']}"
    proc = subprocess.run([npm, "pack", "--json", spec], cwd=workdir, capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        raise AssetError(f"`npm pack {spec}` failed (exit {proc.returncode}); is the npm registry "
                         f"reachable?\n{proc.stderr.strip()}")
    try:
        filename = json.loads(proc.stdout)[0]["filename"]
    except (ValueError, IndexError, KeyError) as exc:
        raise AssetError(f"`npm pack --json {spec}` printed no package info: {proc.stdout[:500]!r}") from exc
    # npm names scoped tarballs without the "@"; be tolerant of either spelling.
    tarball = workdir / filename.lstrip("@").replace("/", "-")
    algorithm, expected = pkg["integrity"].split("-", 1)
    actual = base64.b64encode(hashlib.new(algorithm, tarball.read_bytes()).digest()).decode()
    if actual != expected:
        raise AssetError(f"{tarball.name} does not match the pinned integrity of {spec}: refusing to use it")
    return tarball


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
            raise AssetError(f"{tarball.name} has no {pattern}: the pinned version changed layout")


def main(argv: list[str] | None = None) -> int:
    """``python -m lab2land.assets fetch``: fetch vendor assets (used by ``make setup``)."""
    args = sys.argv[1:] if argv is None else argv
    if args != ["fetch"]:
        print("usage: python -m lab2land.assets fetch", file=sys.stderr)
        return 2
    try:
        fetch_vendor_assets()
    except AssetError as exc:
        print(f"lab2land: {exc}", file=sys.stderr)
        return 1
    print(f"lab2land: vendor assets ready in {VENDOR_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
