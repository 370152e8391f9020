"""The typed version: what ``manifest.json`` holds, written by the store and read by everyone.

Schema 2 adds recorded ``metrics``, the ``breaches`` of the report's checks and the ``degraded``
status. Schema 1 manifests (sites built before) read as they are: no metrics, no breaches.
"""

from __future__ import annotations

import enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .metrics import Metric

SCHEMA = 2


class Status(enum.StrEnum):
    """How a run ended: ``ok``; ``degraded`` (ran, but breached a check); ``failed``."""

    OK = "ok"
    DEGRADED = "degraded"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


class RunErrorInfo(BaseModel):
    """Why a run failed, as readers see it (no tracebacks, no build-machine paths)."""

    model_config = ConfigDict(extra="ignore")
    kind: str = ""
    summary: str = ""
    cell_index: int | None = None
    ename: str | None = None
    evalue: str | None = None


class Version(BaseModel):
    """One published version of a report variant."""

    model_config = ConfigDict(extra="ignore", use_enum_values=False)

    schema_: int = Field(SCHEMA, alias="schema")
    report: str
    title: str = ""
    variant: str = "default"
    variant_label: str = ""
    version_id: str
    status: Status
    parameters: dict[str, Any] = Field(default_factory=dict)
    created: str = ""
    started: str = ""
    finished: str = ""
    duration_s: float = 0.0
    attempts: int = 1
    notebook: str = ""
    notebook_sha256: str = ""
    kernel: str = ""
    executed_notebook: str = ""
    error: RunErrorInfo | None = None
    packages: dict[str, str] = Field(default_factory=dict)
    lab2land_version: str = ""
    sources: list[dict[str, Any]] = Field(default_factory=list)
    cache_key: str = ""
    metrics: dict[str, dict[str, Any]] = Field(default_factory=dict)
    breaches: list[dict[str, Any]] = Field(default_factory=list)
    # The version's folder name, set when read from disk (equal to version_id).
    path: str = Field("", exclude=True)

    @property
    def good(self) -> bool:
        """Ran to the end (``ok`` or ``degraded``): its outputs are complete."""
        return self.status in (Status.OK, Status.DEGRADED)

    def metric(self, name: str) -> Metric | None:
        data = self.metrics.get(name)
        return Metric.from_json(data) if data else None

    def manifest(self) -> dict:
        """The JSON that ``manifest.json`` holds."""
        return self.model_dump(mode="json", by_alias=True)
