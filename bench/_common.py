"""Helpers shared by the bench scripts: a throw-away demo project, checked CLI calls, timing.

Benchmarks print figures; they never assert on time. Every subprocess is checked
(``check=True``) and its stderr shown when it fails.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the venv's bin: papermill, jupyter
START = date(2026, 1, 1)  # demo data that does not depend on today's date


def demo_project(root: Path, notebooks: list[str], toml: str) -> Path:
    """A project at ``root``: 90 days of demo data, copies of ``notebooks``, ``toml`` as config."""
    from lab2land import demo

    demo.generate(root, days=90, start=START)
    (root / "notebooks").mkdir(parents=True, exist_ok=True)
    for name in notebooks:
        shutil.copy(ROOT / "notebooks" / name, root / "notebooks" / name)
    (root / "publish.toml").write_text(toml, encoding="utf-8")
    return root


def run(cmd: list[str], *, cwd: Path | None = None, env: dict | None = None) -> float:
    """Run ``cmd`` (checked); return its wall time in seconds."""
    start = time.perf_counter()
    try:
        subprocess.run(cmd, cwd=cwd, env={**os.environ, **(env or {})}, check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    except subprocess.CalledProcessError as exc:
        sys.exit(f"command failed ({exc.returncode}): {' '.join(map(str, cmd))}\n{exc.stderr[-3000:]}")
    return time.perf_counter() - start


def timed(fn) -> float:
    """Call ``fn()`` in this process; return its wall time in seconds."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def publish(project: Path, *args: str) -> float:
    """``publish.py --project PROJECT ARGS`` through the CLI, as a user runs it; wall seconds."""
    return run([sys.executable, str(ROOT / "publish.py"), "--project", str(project), *args], cwd=ROOT)


def machine() -> str:
    """One line describing where the figures were measured."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, load average {load}")


def kb(n: int) -> str:
    return f"{n / 1024:,.1f} KB"


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def keep_or_remove(tmp: Path, keep: bool, shown: Path | None = None) -> None:
    """End of a bench run: keep the temp project for a look (``--keep``) or delete it."""
    if keep:
        print(f"project kept at {shown or tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
