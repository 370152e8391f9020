"""Where lab2land's templates live, and their fingerprint (part of every run's cache key).

Kept free of heavy imports: a no-op rebuild computes the fingerprint without importing
nbconvert or plotly.
"""

from __future__ import annotations

import hashlib
from importlib import metadata
from pathlib import Path

from .vendor import PACKAGES, PINNED, VENDOR_DIR

PACKAGE_DIR = Path(__file__).resolve().parent
# Package data, so a wheel carries them; the checkout's top-level templates/ links here.
TEMPLATES_DIR = PACKAGE_DIR / "templates"
# What shapes a published page: the report and site templates (not the Voila ``grid/``
# template, which only dashboards use), the render-stage modules and these packages.
PAGE_TEMPLATES = ("report", "site")
RENDER_MODULES = ("render.py", "assets.py", "sanitize.py", "css.py", "images.py", "page_needs.py", "cell_tags.py",
                  "provenance.py", "grid.py", "templating.py")
RENDER_PACKAGES = ("nbconvert", "plotly")


def template_fingerprint(template_dirs: list[Path] | None = None) -> str:
    """sha256 over everything that shapes a published page; a change to any of it re-renders.

    Args:
        template_dirs: Project template overrides (hashed whole), searched before ours.

    Returns:
        A hex sha256 digest.
    """
    digest = hashlib.sha256()
    digest.update(";".join(f"{p}={metadata.version(p)}" for p in RENDER_PACKAGES).encode())
    files = [(f"module/{name}", PACKAGE_DIR / name) for name in RENDER_MODULES]
    for i, root in enumerate(Path(d) for d in template_dirs or []):
        files += [(f"{i}/{p.relative_to(root).as_posix()}", p) for p in sorted(root.rglob("*")) if p.is_file()]
    for sub in PAGE_TEMPLATES:
        files += [(f"lab2land/{p.relative_to(TEMPLATES_DIR).as_posix()}", p)
                  for p in sorted((TEMPLATES_DIR / sub).rglob("*")) if p.is_file()]
    files += [(f"vendor/{key}", VENDOR_DIR / key / PINNED) for key in PACKAGES if (VENDOR_DIR / key / PINNED).is_file()]
    for name, path in files:
        digest.update(name.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()
