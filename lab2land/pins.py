"""Pins: an operator puts an earlier version back as a report variant's latest, in seconds.

``lab2land rollback REPORT [VERSION]`` records a pin in ``<site>/<report>/pins.json`` and rewrites
the report's pages; no kernel starts and no version is written. While a variant is pinned, builds
still publish new versions, but its ``latest`` stays on the pinned one; ``lab2land unpin`` returns
it to "the newest good version". Pins live in the site, so a static host (and the GitHub Pages
workflow, which keeps the site) keeps them; the file is replaced atomically like every page.
"""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import SiteWriteError, UsageError
from .store import Store, latest_by_variant, write_atomic
from .version import Status, Version

PINS = "pins.json"
MAX_REASON = 500


class Pin(BaseModel):
    """One variant's pinned latest version: which, by whom, when and why."""

    model_config = ConfigDict(extra="forbid")

    version: str
    by: str = ""
    at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    reason: str = Field("", max_length=MAX_REASON)


class _PinsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: int = Field(1, alias="schema")
    pins: dict[str, Pin] = Field(default_factory=dict)


def read_pins(store: Store, report: str) -> dict[str, Pin]:
    """The pins of ``report`` by variant key (none if it has no pins file).

    Raises:
        SiteWriteError: the pins file exists but is not one lab2land wrote.
    """
    path = store.report_dir(report) / PINS
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise SiteWriteError(f"{path}: cannot read the pins: {exc.strerror or exc}") from None
    try:
        return _PinsFile.model_validate(json.loads(text)).pins
    except (ValueError, ValidationError) as exc:
        first = str(exc).splitlines()[0]
        raise SiteWriteError(f"{path}: not a pins file lab2land wrote ({first}); restore it, delete it "
                             f"or run `lab2land unpin {report}`") from None


def write_pins(store: Store, report: str, pins: dict[str, Pin]) -> None:
    """Replace ``report``'s pins atomically (no file when none are left)."""
    path = store.report_dir(report) / PINS
    if not pins:
        path.unlink(missing_ok=True)
        return
    data = _PinsFile(schema=1, pins=dict(sorted(pins.items())))
    write_atomic(path, data.model_dump_json(by_alias=True, indent=2) + "\n")


def pinned_latest(versions: list[Version], pins: dict[str, Pin]) -> dict[str, Version]:
    """The pinned version of each pinned variant that is still on disk."""
    by_id = {v.version_id: v for v in versions}
    return {key: by_id[pin.version] for key, pin in pins.items() if pin.version in by_id}


def variant_of(versions: list[Version], variants: list[str], version_id: str | None,
               variant: str | None, report: str) -> str:
    """The variant a rollback is about: that of ``version_id``, else ``variant``, else the only one.

    Raises:
        UsageError: unknown variant or version, a version of another variant, or several
            variants and none named.
    """
    if variant is not None and variant not in variants:
        raise UsageError(f"{report}: unknown variant {variant!r} (valid: {', '.join(variants)})")
    if version_id is not None:
        found = next((v for v in versions if v.version_id == version_id), None)
        if found is None:
            newest = ", ".join(v.version_id for v in versions[:5]) or "none published"
            raise UsageError(f"{report}: unknown version {version_id!r} (the newest are: {newest})")
        if variant is not None and found.variant != variant:
            raise UsageError(f"{report}: version {version_id} is of variant {found.variant!r}, not {variant!r}")
        return found.variant
    if variant is not None:
        return variant
    if len(variants) == 1:
        return variants[0]
    raise UsageError(f"{report} has several variants: name one with --variant ({', '.join(variants)})")


def choose(versions: list[Version], current: Version | None, variant: str, version_id: str | None,
           report: str, promote_degraded: bool) -> Version:
    """The version a rollback pins: ``version_id``, or the good version before ``current``.

    Raises:
        UsageError: the version failed, or there is no earlier good version.
    """
    line = [v for v in versions if v.variant == variant]  # newest first
    if version_id is not None:
        chosen = next(v for v in line if v.version_id == version_id)
        if not chosen.complete:
            raise UsageError(f"{report}: version {version_id} failed ({chosen.summary or 'no summary'}); "
                             "only a version that ran to the end can be pinned")
        return chosen
    good = [v for v in line if v.status is Status.OK or (promote_degraded and v.complete)]
    older = [v for v in good if current is None or (v.created or "", v.path) < (current.created or "", current.path)]
    if not older:
        shown = current.version_id if current else "none"
        raise UsageError(f"{report}/{variant}: no good version before the current latest ({shown}) to roll back to")
    return older[0]


def current_user() -> str:
    """Who is pinning: ``$USER`` (or the login name), for the history page."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in a container
        return ""


def latest_with_pins(versions: list[Version], promote_degraded: bool,
                     pins: dict[str, Pin]) -> dict[str, Version]:
    """Each variant's latest: its pinned version if it has one, else the newest good one."""
    return {**latest_by_variant(versions, promote_degraded), **pinned_latest(versions, pins)}
