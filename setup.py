"""Build hook: fetch the offline JavaScript for published pages before package data is collected.

Everything else about the package is declared in pyproject.toml. The fetch runs for a wheel, an
sdist and an editable install alike (``build_py`` runs in all three; ``sdist`` collects package
data itself), so a wheel or sdist carries the files and whoever installs it needs no npm. A wheel
built from an sdist finds them already there and fetches nothing.
"""

import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lab2land import vendor  # noqa: E402 - standard library only, importable in a build env


def _fetch_vendor() -> None:
    try:
        fetched = vendor.fetch()
    except vendor.FetchError as exc:
        raise SystemExit(f"lab2land build: {exc}") from None
    if fetched:
        print(f"lab2land build: fetched {', '.join(fetched)} into {vendor.VENDOR_DIR}")


class BuildPy(build_py):
    def run(self):
        _fetch_vendor()
        super().run()


class Sdist(sdist):
    def run(self):
        _fetch_vendor()
        super().run()


setup(cmdclass={"build_py": BuildPy, "sdist": Sdist})
