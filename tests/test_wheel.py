"""The way a new user starts: build lab2land's wheel from a clean copy of the sources, install it
into a fresh virtualenv outside the checkout (no ``-e``, no npm on PATH), then ``lab2land new`` +
``lab2land build``, and look at the page in headless Chromium: plotly drawn, nothing fetched from
another host."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow


def _tracked_sources(dest: Path) -> Path:
    """The files git tracks, as a fresh clone has them: no fetched assets, no build leftovers."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        elif source.is_file():
            shutil.copy2(source, target)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = _tracked_sources(tmp_path_factory.mktemp("src"))
    assert not (src / "lab2land" / "static" / "vendor").exists()
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(src)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (built,) = out.glob("lab2land-*.whl")
    return built


def test_wheel_carries_templates_scaffold_and_offline_assets(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("lab2land/templates/report/index.html.j2", "lab2land/templates/grid/index.html.j2",
                 "lab2land/templates/site/index.html.j2", "lab2land/scaffold/publish.toml",
                 "lab2land/scaffold/notebooks/example.ipynb", "lab2land/static/vendor/html-manager/embed.js",
                 "lab2land/static/vendor/html-manager/.pinned.json",
                 "lab2land/static/vendor/mathjax/tex-chtml-full.js",
                 "lab2land/static/vendor/plotly-cartesian/plotly-cartesian.min.js"):
        assert name in names, name


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> tuple[Path, dict]:
    """A fresh virtualenv holding only the wheel and its dependencies, and an environment whose
    PATH has nothing but that virtualenv (so no npm, and no checkout on sys.path)."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    proc = subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], capture_output=True, text=True,
                          timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "JUPYTER"))}
    env["PATH"] = str(env_dir / "bin")
    assert shutil.which("npm", path=env["PATH"]) is None
    return env_dir, env


def test_new_project_builds_offline_from_the_installed_wheel(installed, tmp_path, page):
    env_dir, env = installed
    where = subprocess.run([str(env_dir / "bin" / "python"), "-c", "import lab2land; print(lab2land.__file__)"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, check=True).stdout
    assert where.startswith(str(env_dir)), where
    made = subprocess.run(["lab2land", "new", "myreports"], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=120)
    assert made.returncode == 0, made.stderr
    project = tmp_path / "myreports"
    built = subprocess.run(["lab2land", "build"], capture_output=True, text=True, env=env, cwd=project, timeout=600)
    assert built.returncode == 0, built.stdout + built.stderr
    assert "Traceback" not in built.stderr

    latest = project / "reports" / "example" / "latest"
    assert {p.name for p in latest.glob("*.html")} >= {"steady.html", "volatile-3-0.html"}  # one per parameter set
    page.goto((latest / "steady.html").as_uri())
    page.wait_for_selector(".js-plotly-plot .main-svg", timeout=30_000)
    assert page.locator(".js-plotly-plot").count() == 1
    page.goto((project / "reports" / "index.html").as_uri())
    assert "Example report" in page.inner_text("body")
    assert page.external_requests == []
    assert page.page_errors == []
