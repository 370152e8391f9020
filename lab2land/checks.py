"""Checks on recorded metrics: ``[reports.<name>.checks]`` in ``publish.toml``.

::

    [reports.fraud.checks]
    auc = ">= 0.9"
    fraud_rate = "between 0.001 0.05"
    rows = "> 0"

A version whose metrics breach a check is published as ``degraded``; a metric that was not
recorded at all breaches its check too. Rules are parsed when the config loads, so a malformed
one is a config error before any kernel starts.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass

from .metrics import Metric

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq,
    "!=": operator.ne,
}
EXPECTED = 'expected "<op> NUMBER" (op one of >=, >, <=, <, ==, !=) or "between LOW HIGH", got {rule!r}'


@dataclass(frozen=True)
class Rule:
    """One parsed check: ``op`` with ``bounds`` (two numbers for ``between``)."""

    text: str
    op: str
    bounds: tuple[float, ...]

    def holds(self, value: float) -> bool:
        if self.op == "between":
            low, high = self.bounds
            return low <= value <= high
        return OPERATORS[self.op](value, self.bounds[0])


@dataclass(frozen=True)
class Breach:
    """A check a version did not pass; ``message`` says the value and the bound."""

    metric: str
    rule: str
    value: object | None
    message: str

    def to_json(self) -> dict:
        return {"metric": self.metric, "rule": self.rule, "value": self.value, "message": self.message}


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_rule(rule: str) -> Rule:
    """``">= 0.9"`` or ``"between 0.001 0.05"`` as a :class:`Rule`.

    Raises:
        ValueError: the rule is not of that form (the message says what is expected).
    """
    parts = str(rule).split()
    if len(parts) == 3 and parts[0].lower() == "between":
        low, high = _number(parts[1]), _number(parts[2])
        if low is not None and high is not None and low <= high:
            return Rule(rule, "between", (low, high))
    for op in sorted(OPERATORS, key=len, reverse=True):  # ">=" before ">"
        text = str(rule).strip()
        if text.startswith(op) and (value := _number(text[len(op):].strip())) is not None:
            return Rule(rule, op, (value,))
    raise ValueError(EXPECTED.format(rule=rule))


def evaluate(checks: dict[str, str], metrics: dict[str, Metric]) -> list[Breach]:
    """The checks ``metrics`` breach, in the order of ``checks`` (rules were validated already)."""
    breaches = []
    for name, text in checks.items():
        rule, metric = parse_rule(text), metrics.get(name)
        if metric is None:
            breaches.append(Breach(name, text, None, f"{name} was not recorded (check: {name} {text})"))
        elif metric.numeric is None:  # text; a bool counts as 0 or 1
            breaches.append(Breach(name, text, metric.value, f"{name} = {metric.value!r} is not a number "
                                                             f"(check: {name} {text})"))
        elif not rule.holds(metric.numeric):
            breaches.append(Breach(name, text, metric.value, f"{name} = {metric.shown()}, expected {text}"))
    return breaches
