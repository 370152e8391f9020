"""Metrics across versions, for the site pages: a report's trend charts and the index's
headline values with their change since the previous good version.

The charts are plotly figures (JSON), drawn by the site's shared plotly.js (the basic bundle:
they are scatter lines) from a data block, like the figures of the version pages: they work
from ``file://`` and any static host.
"""

from __future__ import annotations

from .metrics import Metric
from .store import previous_complete
from .version import Status, Version

HEADLINE = 3  # metrics shown per variant on the index


def _points(versions: list[Version]) -> list[tuple[Version, dict[str, Metric]]]:
    """Complete versions, oldest first, with their metrics."""
    return [(v, v.metric_values()) for v in reversed(versions) if v.complete and v.metrics]


def trend_figures(versions: list[Version], variants: list[tuple[str, str, dict]]) -> list[dict]:
    """One figure per numeric metric: a line per variant across its versions; hovering shows the
    version and the value, a click opens the version (its URL is the point's ``customdata``)."""
    points = _points(versions)
    names = list(dict.fromkeys(name for _, metrics in points for name, m in metrics.items()
                               if m.numeric is not None))
    labels = {key: label or key for key, label, _ in variants}
    figures = []
    for name in names:
        traces, title = [], name
        for key in dict.fromkeys(v.variant for v, _ in points):
            line = [(v, ms[name]) for v, ms in points if v.variant == key and name in ms]
            if not line:
                continue
            title = line[-1][1].label or name
            degraded = [v.status is Status.DEGRADED for v, _ in line]
            traces.append({
                "type": "scatter", "mode": "lines+markers", "name": labels.get(key, key),
                "x": [v.created for v, _ in line], "y": [metric.numeric for _, metric in line],
                "customdata": [f"{v.folder}/index.html" for v, _ in line],
                "text": [f"{v.version_id}{' (degraded)' if bad else ''}"
                         for (v, _), bad in zip(line, degraded, strict=True)],
                "hovertemplate": "%{text}<br>%{y}<extra>%{fullData.name}</extra>",
                "marker": {"symbol": ["x" if bad else "circle" for bad in degraded], "size": 8},
            })
        unit = next((ms[name].unit for _, ms in reversed(points) if name in ms), "")
        figures.append({"data": traces, "layout": {
            "title": {"text": title + (f" ({unit})" if unit else "")}, "height": 260,
            "margin": {"l": 50, "r": 20, "t": 40, "b": 40}, "showlegend": len(traces) > 1,
            "xaxis": {"type": "date"}, "hovermode": "closest"}, "metric": name})
    return figures


def headline(versions: list[Version], latest: Version | None) -> list[dict]:
    """The first metrics of ``latest`` (one variant's versions, newest first), each with its
    change since the previous complete version of that variant."""
    if not latest or not latest.metrics:
        return []
    older = previous_complete(versions, latest.variant, before=latest.created or "")
    before = older.metric_values() if older else {}
    shown = []
    for name, metric in list(latest.metric_values().items())[:HEADLINE]:
        prior = before.get(name)
        delta = None
        if prior is not None and metric.numeric is not None and prior.numeric is not None:
            delta = metric.numeric - prior.numeric
        shown.append({"name": name, "label": metric.label or name, "value": metric.shown(), "delta": delta})
    return shown
