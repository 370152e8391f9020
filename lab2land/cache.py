"""When to re-run: cache keys and schedules.

A run's key covers everything that can change its output: the notebook's bytes, the resolved
parameters, the hashes of the data snapshots it reads, the installed package versions, the kernel,
the report template, and the report's page options that differ from their defaults
(``show_code``, ``layout``, ``publish_notebook``: turning one on or off republishes). A run
whose key equals that of the newest good version of its parameter set is "unchanged": no
kernel starts and no version is written.

Schedules (``schedule = "0 6 * * *"`` or ``"daily"``) decide which reports ``build --due``
considers; a due report still goes through the cache, and the check is remembered in
``.lab2land/state.json`` so calling ``--due`` from cron every few minutes is cheap.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import sys
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from croniter import croniter

from .store import write_atomic

STATE = Path(".lab2land") / "state.json"
ALIASES = {"hourly": "@hourly", "daily": "@daily", "weekly": "@weekly", "monthly": "@monthly"}


@lru_cache(maxsize=1)
def environment_fingerprint() -> str:
    """sha256 of the Python version and every installed distribution's name and version (the
    kernel's environment too when, as by default, kernels run in the same environment).

    Read from the ``*.dist-info`` / ``*.egg-info`` folder names on ``sys.path`` rather than from
    each distribution's METADATA: same facts, but ~1 ms instead of ~0.1-0.3 s, which matters for
    a no-op rebuild run from cron.
    """
    pairs = {f"python=={platform.python_implementation()}-{platform.python_version()}"}
    for entry in sys.path:
        if not entry:  # the current directory is incidental to what the kernel imports
            continue
        try:
            with os.scandir(entry) as found:
                pairs.update(filter(None, (_distribution(e) for e in found)))
        except OSError:  # a zip file, or a folder that vanished
            continue
    return hashlib.sha256("\n".join(sorted(pairs)).encode()).hexdigest()


def _distribution(entry: os.DirEntry) -> str | None:
    """``name==version`` of a distribution's metadata folder (or egg-info file), else None."""
    name = entry.name
    if name.endswith(".dist-info"):  # "{name}-{version}.dist-info" (the wheel spec)
        dist, _, version = name[: -len(".dist-info")].partition("-")
    elif name.endswith(".egg-info"):  # "{name}-{version}[-pyX.Y].egg-info", or "{name}.egg-info"
        dist, _, version = name[: -len(".egg-info")].partition("-")
        version = version.split("-py")[0] or _egg_version(Path(entry.path))
    else:
        return None
    return f"{re.sub(r'[-_.]+', '_', dist).lower()}=={version}"


def _egg_version(path: Path) -> str:
    info = path / "PKG-INFO" if path.is_dir() else path
    try:
        with open(info, encoding="utf-8", errors="replace") as fh:
            return next((line.split(":", 1)[1].strip() for line in fh if line.startswith("Version:")), "")
    except OSError:
        return ""


def cache_key(*, notebook_sha256: str, parameters: dict[str, Any], snapshots: dict[str, str], kernel: str,
              template: str, environment: str, images: str = "", page: dict[str, Any] | None = None) -> str:
    """The key of one run (see module docstring); ``images`` digests the pictures its markdown
    shows, ``page`` holds the report's page options that are not at their defaults."""
    payload = {"notebook": notebook_sha256, "parameters": parameters, "snapshots": snapshots, "kernel": kernel,
               "template": template, "environment": environment}
    if images:  # only then, so keys of notebooks without pictures stay what they were
        payload["images"] = images
    if page:  # likewise: reports with default page options keep their keys
        payload["page"] = page
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def cron_expression(schedule: str) -> str:
    """The cron expression of a schedule (aliases like ``daily`` expanded)."""
    return ALIASES.get(schedule.strip().lower(), schedule.strip())


def schedule_problem(schedule: str) -> str | None:
    """Why ``schedule`` is invalid, or None."""
    if croniter.is_valid(cron_expression(schedule)):
        return None
    return (f"expected cron syntax like \"0 6 * * *\" or one of {', '.join(ALIASES)}, got {schedule!r}")


def last_due(schedule: str, now: datetime) -> datetime:
    """The most recent time at or before ``now`` when the schedule fired (times are UTC when
    ``now`` is, as in builds)."""
    expression = cron_expression(schedule)
    previous = croniter(expression, now).get_prev(datetime)
    # get_prev is strictly before ``now``: at 06:00:00 sharp "0 6 * * *" fired now, not yesterday.
    following = croniter(expression, previous).get_next(datetime)
    return following if following <= now else previous


def _parse(text: str | None) -> datetime | None:
    if not text:
        return None
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class State:
    """When each report variant was last checked by a build (``.lab2land/state.json``)."""

    def __init__(self, project: Path):
        self.path = project / STATE
        try:
            self.data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.data = {}

    def checked(self, report: str, variant: str) -> datetime | None:
        return _parse(self.data.get("checked", {}).get(f"{report}/{variant}"))

    def mark_checked(self, report: str, variant: str, when: datetime) -> None:
        self.data.setdefault("checked", {})[f"{report}/{variant}"] = when.isoformat(timespec="seconds")

    def save(self) -> None:
        write_atomic(self.path, json.dumps(self.data, indent=2, sort_keys=True))


def is_due(schedule: str | None, now: datetime, last_good: str | None, checked: datetime | None) -> bool:
    """True if the schedule fired since the variant was last published or checked.

    A report without a schedule is never due; one never published is always due.
    """
    if not schedule:
        return False
    seen = [t for t in (_parse(last_good), checked) if t is not None]
    return not seen or last_due(schedule, now) > max(seen)
