"""Metrics a notebook records, and how a publish reads them back from the executed notebook.

In a notebook::

    from lab2land import record
    record("auc", 0.91)
    record("fraud_rate", 0.012, label="Fraud rate", unit="%")

``record`` displays the value (so a notebook run by hand in JupyterLab shows it, with no
lab2land service running) as an output carrying the metric under :data:`MIMETYPE`. Publishing
reads those outputs (:func:`extract`), and also scrapbook's ``sb.glue("name", value)`` scraps,
whose format is read without depending on scrapbook. The last value recorded under a name wins.

This module is imported inside kernels: standard library only at import time.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

MIMETYPE = "application/vnd.lab2land.metric+json"
# scrapbook (papermill's record/read successor): display data {"name", "data", "encoder", "version"}
SCRAPBOOK_MIMETYPES = ("application/scrapbook.scrap.json+json", "application/scrapbook.scrap.text+json")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
CURRENCIES = ("$", "€", "£", "¥")  # written before the number
MAX_TEXT = 200  # a string metric is a short label ("champion", "v2"), not a document

Value = bool | int | float | str


@dataclass(frozen=True)
class Metric:
    """One recorded value; ``label`` and ``unit`` are how pages show it."""

    name: str
    value: Value
    label: str = ""
    unit: str = ""

    @property
    def numeric(self) -> float | None:
        """The value as a number for trends and deltas (bools count 0/1), or None for text."""
        if isinstance(self.value, bool):
            return float(self.value)
        return float(self.value) if isinstance(self.value, (int, float)) else None

    def shown(self) -> str:
        """``0.912`` → ``"0.912"``, with the unit: what a page or the CLI prints."""
        text = f"{self.value:.4g}" if isinstance(self.value, float) else str(self.value)
        if self.unit in CURRENCIES:
            return f"{self.unit}{text}"
        if not self.unit:
            return text
        return f"{text}{self.unit}" if self.unit == "%" else f"{text} {self.unit}"

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Metric:
        return cls(str(data["name"]), data["value"], str(data.get("label") or ""), str(data.get("unit") or ""))


def problem(name: Any, value: Any) -> str | None:
    """Why ``name``/``value`` cannot be recorded, or None."""
    if not isinstance(name, str) or not NAME.match(name):
        return (f"metric name {name!r}: expected up to 64 letters, digits, '_', '.' or '-', "
                "starting with a letter or '_'")
    if isinstance(value, bool) or (isinstance(value, (int, float)) and math.isfinite(value)):
        return None
    if isinstance(value, str) and len(value) <= MAX_TEXT:
        return None
    return (f"metric {name!r}: expected a finite number, a bool or a string of at most {MAX_TEXT} "
            f"characters, got {type(value).__name__} {str(value)[:60]!r}")


def record(name: str, value: Value, *, label: str = "", unit: str = "") -> Metric:
    """Record a metric of this run (shown as ``label: value unit`` where the notebook runs).

    Raises:
        ValueError: the name or value cannot be recorded (see :func:`problem`).
    """
    reason = problem(name, value)
    if reason:
        raise ValueError(reason)
    if hasattr(value, "item"):  # numpy scalars: plain Python values in the JSON
        value = value.item()
    metric = Metric(name, value, str(label), str(unit))
    try:
        from IPython.display import display
    except ImportError:  # plain Python: nothing to display to
        return metric
    display({MIMETYPE: metric.to_json(), "text/plain": f"{label or name}: {metric.shown()}"}, raw=True,
            metadata={"lab2land": {"metric": name}})
    return metric


def _from_output(output: dict) -> Metric | None:
    data = output.get("data") or {}
    if MIMETYPE in data and isinstance(data[MIMETYPE], dict):
        try:
            metric = Metric.from_json(data[MIMETYPE])
        except (KeyError, TypeError):
            return None
        return None if problem(metric.name, metric.value) else metric
    for mimetype in SCRAPBOOK_MIMETYPES:
        scrap = data.get(mimetype)
        if isinstance(scrap, dict) and "name" in scrap and "data" in scrap:
            name, value = scrap["name"], scrap["data"]
            return None if problem(name, value) else Metric(name, value)
    return None


def extract(cells: Iterable[dict]) -> dict[str, Metric]:
    """Every metric recorded in the outputs of ``cells`` (an executed notebook's), by name."""
    found: dict[str, Metric] = {}
    for cell in cells:
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            if output.get("output_type") in ("display_data", "execute_result", "update_display_data"):
                metric = _from_output(output)
                if metric is not None:
                    found[metric.name] = metric
    return found


_RECORDS = re.compile(r"\b(record|glue)\s*\(")


def can_record(sources: Iterable[str]) -> bool:
    """True if any of a notebook's code cell ``sources`` calls ``record(...)`` or ``glue(...)``."""
    return any(_RECORDS.search(source) for source in sources)
