"""The typed version model: what a version's ``manifest.json`` holds.

The store writes a :class:`Version` and reads it back; build, site, cli, diff and trends use its
fields instead of raw manifest dicts. Manifests of every schema lab2land has written read into it:

- schema 1 (lab2land 0.1 before metrics): no ``metrics``/``breaches``; a ``log_tail`` that is
  dropped on reading (tracebacks and paths stay in ``.lab2land/logs``); absolute snapshot paths.
- schema 2: metrics, breaches and the ``degraded`` status; ``previous``/``changes`` once a
  version has one before it.

Versions are immutable on disk, so an old manifest is never rewritten: it reads as a schema-2
:class:`Version`, and the catalog and pages built from it are schema 2.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .metrics import Metric

MANIFEST_SCHEMA = 2
__all__ = ["MANIFEST_SCHEMA", "Breach", "Status", "Version", "VersionError", "read_manifest"]


class Status(StrEnum):
    """How a version's run ended."""

    OK = "ok"  # ran to the end and passed its checks
    DEGRADED = "degraded"  # ran to the end but breached a check of its report
    FAILED = "failed"  # stopped early (cell error, timeout, kernel death, rendering)

    @property
    def complete(self) -> bool:
        """The run went to the end: its outputs and metrics are whole (ok or degraded)."""
        return self is not Status.FAILED


class _Record(BaseModel):
    # Unknown keys are ignored, so a manifest written by a newer lab2land still reads.
    model_config = ConfigDict(extra="ignore")


class VersionError(_Record):
    """Why a version's run failed (``kind`` names the failure, ``summary`` says it to a reader)."""

    kind: str
    summary: str = ""
    cell_index: int | None = None
    ename: str = ""
    evalue: str = ""


class SnapshotRecord(_Record):
    """One data snapshot a version read: name, content hash, rows and when it was loaded."""

    name: str
    hash: str | None = None
    rows: int | None = None
    loaded: str | None = None
    kind: str | None = None
    path: str | None = None
    file: str | None = None


class Breach(_Record):
    """A check the version did not pass: the metric, the rule, the value and a sentence."""

    metric: str
    rule: str
    value: Any = None
    message: str = ""


class Changes(_Record):
    """How many things changed since the previous complete version of the variant."""

    parameters: int = 0
    data: int = 0
    metrics: int = 0
    outputs: int = 0


class Version(_Record):
    """One published version of a report variant, as its manifest records it."""

    model_config = ConfigDict(extra="ignore", validate_assignment=True)

    schema_version: int = Field(1, alias="schema", description="Manifest schema the version was written with.")
    report: str
    version_id: str
    status: Status
    title: str = ""
    variant: str = ""
    variant_label: str = ""
    parameters: dict[str, Any] = Field(default_factory=dict)
    created: str | None = None
    started: str | None = None
    finished: str | None = None
    duration_s: float | None = None
    attempts: int = 1
    notebook: str = ""
    notebook_sha256: str = ""
    kernel: str = ""
    executed_notebook: str = ""
    error: VersionError | None = None
    packages: dict[str, str] = Field(default_factory=dict)
    lab2land_version: str = ""
    sources: list[SnapshotRecord] = Field(default_factory=list)
    cache_key: str | None = None
    metrics: dict[str, dict[str, Any]] = Field(default_factory=dict)
    breaches: list[Breach] = Field(default_factory=list)
    previous: str | None = None
    changes: Changes | None = None
    # The version's folder name: the store sets it on reading; never written to the manifest.
    path: str = Field("", exclude=True)

    @field_validator("created", "started", "finished")
    @classmethod
    def _iso_time(cls, value: str | None) -> str | None:
        if value is not None:
            datetime.fromisoformat(value)  # raises ValueError: "not an ISO time"
        return value

    @property
    def complete(self) -> bool:
        """The run went to the end (ok or degraded)."""
        return self.status.complete

    @property
    def folder(self) -> str:
        """The version's folder under its report (its id unless the store read it elsewhere)."""
        return self.path or self.version_id

    @property
    def summary(self) -> str:
        """One line for a reader: the error, or the breached checks, or nothing."""
        if self.error and self.error.summary:
            return self.error.summary
        return "; ".join(b.message for b in self.breaches)

    @property
    def data_taken(self) -> str | None:
        """When the oldest snapshot the version read was loaded (None without sources)."""
        return min((s.loaded for s in self.sources if s.loaded), default=None)

    def metric_values(self) -> dict[str, Metric]:
        """The recorded metrics as :class:`~lab2land.metrics.Metric` objects."""
        return {name: Metric.from_json(data) for name, data in self.metrics.items()}

    def to_manifest(self) -> dict[str, Any]:
        """The manifest to write: always the current schema, JSON-ready."""
        data = self.model_dump(mode="json", by_alias=True)
        data["schema"] = MANIFEST_SCHEMA
        return data


def read_manifest(text: str | bytes, folder: str = "") -> Version:
    """Parse a ``manifest.json`` of any schema.

    Raises:
        ValueError: the text is not JSON or not a manifest (pydantic's ValidationError is one).
    """
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"manifest: expected a JSON object, got {type(data).__name__}")
    version = Version.model_validate(data)
    version.path = folder or version.version_id
    return version

