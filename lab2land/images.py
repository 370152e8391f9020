"""Images a notebook shows by relative path (``![chart](figures/q3.png)``, ``<img src="logo.svg">``),
embedded into its page as ``data:`` URLs.

A version page lives in ``reports/<report>/<version>/``, far from the notebook's folder, and must
work from ``file://`` and any host, so a relative ``src`` cannot stay a link. Embedding (rather
than copying files next to the page) keeps a version one immutable HTML file plus its notebook.

Only files inside the notebook's own folder are read: no absolute paths, no ``..`` escape, no
symlink that leads out (paths are resolved before the check), only image types, at most
:data:`MAX_IMAGE_BYTES` each and :data:`MAX_PAGE_BYTES` a page. Anything else keeps its
original ``src`` and shows its alt text, as it does in Jupyter when the file is missing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_PAGE_BYTES = 20 * 1024 * 1024  # all the images one page embeds

# By extension: the browser sniffs nothing for data: URLs, and an <img> never runs an SVG's script.
IMAGE_TYPES = {
    ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
    ".svg": "image/svg+xml", ".webp": "image/webp", ".bmp": "image/bmp", ".ico": "image/x-icon",
    ".avif": "image/avif",
}

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def resolver(folder: Path | None, max_bytes: int = MAX_IMAGE_BYTES,
             max_total: int = MAX_PAGE_BYTES) -> Callable[[str], str | None] | None:
    """A function mapping an ``<img src>`` to a ``data:`` URL of the file it names in ``folder``.

    Args:
        folder: The notebook's folder (the run's working directory); None: embed nothing.
        max_bytes: Largest file embedded.
        max_total: Most bytes embedded by all calls of the returned function (one page).

    Returns:
        None when ``folder`` is None; else a function returning the ``data:`` URL, or None when
        ``src`` is not a relative path to an image file inside ``folder``.
    """
    if folder is None:
        return None
    root = Path(folder).resolve()
    embedded = 0

    def resolve(src: str) -> str | None:
        nonlocal embedded
        path = _inside(root, src)
        if path is None:
            return None
        mime = IMAGE_TYPES.get(path.suffix.lower())
        try:
            if mime is None or not path.is_file() or path.stat().st_size > min(max_bytes, max_total - embedded):
                return None
            data = path.read_bytes()
        except OSError:
            return None
        embedded += len(data)
        return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"

    return resolve


def _inside(root: Path, src: str) -> Path | None:
    """The file ``src`` names under ``root``, or None if it is a URL, absolute or leads outside."""
    src = src.strip()
    if not src or _SCHEME.match(src) or src.startswith(("/", "\\", "#")):
        return None  # http:, data:, attachment:, file:, C:\..., //host/..., absolute
    rel = unquote(urlsplit(src).path)
    if not rel or "\\" in rel or "\x00" in rel:
        return None
    parts = PurePosixPath(rel).parts
    if any(p == ".." for p in parts):
        return None
    path = (root / rel).resolve()  # follows symlinks: one pointing out of root fails below
    return path if path.is_relative_to(root) and path != root else None


# Where markdown and HTML in markdown cells name images: ![alt](src "title") and <img src="...">.
_MARKDOWN_IMAGE = re.compile(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)")
_HTML_IMAGE = re.compile(r"<img\b[^>]*?\bsrc\s*=\s*[\"']?([^\"'\s>]+)", re.IGNORECASE)


def images_digest(notebook: Path) -> str:
    """sha256 over the image files (inside the notebook's folder) that its markdown cells show, so
    a build re-runs a report whose picture changed even though its notebook did not."""
    try:
        cells = json.loads(notebook.read_text(encoding="utf-8")).get("cells", [])
    except (OSError, ValueError, AttributeError):
        return ""
    root, digest = notebook.parent.resolve(), hashlib.sha256()
    sources = ("".join(c.get("source", "")) if isinstance(c.get("source"), list) else str(c.get("source", ""))
               for c in cells if isinstance(c, dict) and c.get("cell_type") == "markdown")
    for src in sorted({m for text in sources for rx in (_MARKDOWN_IMAGE, _HTML_IMAGE) for m in rx.findall(text)}):
        path = _inside(root, src)
        if path is not None and path.suffix.lower() in IMAGE_TYPES and path.is_file():
            digest.update(src.encode("utf-8", "surrogatepass") + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()
