"""Shared, offline assets of a published site: written once under ``reports/assets/``.

Every page references these by relative URL, so the site works from any static host and
from ``file://`` with no network: plotly.js (shipped by the plotly package), the Jupyter
widget manager bundle and MathJax (fetched from the npm registry when lab2land is built, see
:mod:`lab2land.vendor`, and shipped in its wheel), the notebook CSS (from nbconvert's ``lab``
template) and lab2land's own CSS and JS (``templates/site/static/``).
"""

from __future__ import annotations

from pathlib import Path

import plotly

from lab2land import vendor
from lab2land.errors import AssetError
from lab2land.store import write_atomic
from lab2land.templating import TEMPLATES_DIR

__all__ = ["AssetError", "install_assets"]


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
        AssetError: This install lacks its offline JavaScript (a checkout never built).
    """
    assets = Path(site_dir) / "assets"
    for rel, data in _asset_files():
        _write_if_changed(assets / rel, data)
    return assets


# --- internals ---------------------------------------------------------------------------

def _asset_files() -> list[tuple[str, bytes]]:
    """(path under assets/, content) of every shared asset."""
    files = [("plotly.min.js", _plotly_js()), ("notebook.css", _notebook_css())]
    static = TEMPLATES_DIR / "site" / "static"
    files += [(p.relative_to(static).as_posix(), p.read_bytes())
              for p in sorted(static.rglob("*")) if p.is_file()]
    absent = vendor.missing()
    if absent:
        names = ", ".join(f"{vendor.PACKAGES[k]['name']} {vendor.PACKAGES[k]['version']}" for k in absent)
        raise AssetError(f"this lab2land install lacks its offline page assets ({names}) in {vendor.VENDOR_DIR}: "
                         "install lab2land from a wheel, or in a source checkout run `pip install -e .` "
                         "(or `python -m lab2land.vendor fetch`), which fetches them with npm")
    for key, pkg in vendor.PACKAGES.items():
        if pkg["assets"] is None:
            continue  # used by serve only
        source = vendor.VENDOR_DIR / key
        files += [(f"{pkg['assets']}/{p.relative_to(source).as_posix()}", p.read_bytes())
                  for p in sorted(source.rglob("*")) if p.is_file() and p.name != vendor.PINNED]
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
