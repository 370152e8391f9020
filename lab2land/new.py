"""``lab2land new DIR``: start a project that ``lab2land build`` publishes as it is.

Like ``mkdocs new`` and ``quarto create``: a commented ``publish.toml``, one example notebook
with a ``parameters`` cell and a plotly chart, a ``.gitignore`` for the generated site and
state, a ``requirements.txt`` pinning this lab2land, and the scheduled-publish workflow for
GitHub Pages. The files are package data in ``lab2land/scaffold/``. An existing project is
never overwritten.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import __version__
from .config import CONFIG_NAME
from .errors import ProjectExists, SiteWriteError
from .templating import PACKAGE_DIR

SCAFFOLD_DIR = PACKAGE_DIR / "scaffold"
# Where each scaffold file goes in the new project.
FILES = {
    "publish.toml": CONFIG_NAME,
    "notebooks/example.ipynb": "notebooks/example.ipynb",
    "gitignore": ".gitignore",
    "requirements.txt": "requirements.txt",
    "publish.yml": ".github/workflows/publish.yml",
}
# The files that take the project's values ({title}, {version}); the others are copied as they are.
FILLED_IN = ("publish.toml", "requirements.txt")


def new_project(folder: Path, title: str | None = None) -> list[Path]:
    """Write a new project into ``folder`` (created if missing); return the files written.

    Args:
        folder: The project folder; it may exist, but must not hold any of the files written.
        title: The site's title (default: the folder's name).

    Raises:
        ProjectExists: ``folder`` already holds a ``publish.toml`` or another file this writes.
        SiteWriteError: the folder cannot be written.
    """
    folder = Path(folder)
    clashes = [dest for dest in FILES.values() if (folder / dest).exists()]
    if clashes:
        what = "a lab2land project" if CONFIG_NAME in clashes else "files lab2land new would write"
        raise ProjectExists(f"{folder}: already holds {what} ({', '.join(clashes)}); nothing was written. "
                            "Choose a new folder, or edit the existing project")
    values = {"{title}": json.dumps(title or folder.resolve().name), "{version}": __version__}
    written = []
    try:
        for source, dest in FILES.items():
            text = (SCAFFOLD_DIR / source).read_text(encoding="utf-8")
            for token, value in values.items() if source in FILLED_IN else ():
                text = text.replace(token, value)
            target = folder / dest
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "x", encoding="utf-8") as fh:  # "x": never replace a file
                fh.write(text)
            written.append(target)
    except FileExistsError as exc:
        raise ProjectExists(f"{exc.filename}: appeared while the project was written; nothing replaced") from None
    except OSError as exc:
        raise SiteWriteError(f"{exc.filename or folder}: cannot write the new project: {exc.strerror}") from None
    return written
