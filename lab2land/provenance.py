"""Which packages a version was made with: the ones its notebook imported, with their versions.

A fixed list of names misses what a notebook really uses (matplotlib, seaborn, scipy, ...) and
lists what it never touched. The notebook's code cells are read for ``import x`` and
``from x import y`` (IPython magics and shell lines are translated first, as the kernel does),
each top-level module is mapped to the distribution that provides it
(:func:`importlib.metadata.packages_distributions`) and its installed version recorded, beside
the tools that executed and rendered the notebook. Versions are read from the environment that
publishes, which is the kernel's own for the default ``python3`` kernel.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import platform
import sys
import threading
from importlib import metadata

from . import __version__

# What turned the notebook into the page, whatever it imported.
BUILD_TOOLS = ("papermill", "nbconvert", "nbclient", "nbformat", "ipykernel", "jupyter_client")


def package_versions(nb=None) -> dict[str, str]:
    """Python, lab2land, the build tools and every distribution the notebook imports.

    Args:
        nb: The executed notebook (None: the build tools only).

    Returns:
        Distribution name -> installed version (modules of the standard library and imports
        nothing installed provides are left out).
    """
    found = {"python": platform.python_version(), "lab2land": __version__}
    names = list(BUILD_TOOLS)
    if nb is not None:
        owners = _owners()
        for module in sorted(imported_modules(nb)):
            names += owners.get(module, [])
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found.setdefault(name, metadata.version(name))
    return found


def imported_modules(nb) -> set[str]:
    """Top-level names of the modules the notebook's code cells import (standard library left out)."""
    modules: set[str] = set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(_python(cell.source))
        except SyntaxError:
            continue  # a cell that does not parse imported nothing it could run
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                modules.add(node.module.split(".")[0])
    return {m for m in modules if m not in sys.stdlib_module_names}


def _python(source: str) -> str:
    """A cell's source as the kernel runs it: ``%magic`` and ``!shell`` lines become calls."""
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        return TransformerManager().transform_cell(source)
    except Exception:  # IPython refuses some malformed cells; read what plain Python can
        return source


_OWNERS_LOCK = threading.Lock()


def prefetch() -> None:
    """Read the module -> distribution map in the background (it reads every installed
    distribution's file list: ~0.8 s in the demo's environment), so that it overlaps the
    build's first runs instead of delaying its first publish."""
    threading.Thread(target=_owners, daemon=True, name="lab2land-provenance").start()


def _owners() -> dict[str, list[str]]:
    with _OWNERS_LOCK:  # a second caller waits for the first instead of reading it all again
        return _read_owners()


@functools.lru_cache(maxsize=1)
def _read_owners() -> dict[str, list[str]]:
    return metadata.packages_distributions()
