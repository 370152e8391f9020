"""Metrics across versions, for the site pages: a report's trend charts and the index's
headline values with their change since the previous good version.

The charts are plotly figures (JSON), drawn by the site's shared ``plotly.min.js`` from a data
block, like the figures of the version pages: they work from ``file://`` and any static host.
"""

from __future__ import annotations

from .metrics import Metric
from .store import COMPLETE

HEADLINE = 3  # metrics shown per variant on the index


def _points(versions: list[dict]) -> list[tuple[dict, dict[str, Metric]]]:
    """Complete versions, oldest first, with their metrics."""
    found = []
    for manifest in reversed(versions):  # versions come newest first
        if manifest.get("status") in COMPLETE and manifest.get("metrics"):
            found.append((manifest, {k: Metric.from_json(v) for k, v in manifest["metrics"].items()}))
    return found


def trend_figures(versions: list[dict], variants: list[tuple[str, str, dict]]) -> list[dict]:
    """One figure per numeric metric: a line per variant across its versions; hovering shows the
    version and the value, a click opens the version (its URL is the point's ``customdata``)."""
    points = _points(versions)
    names = list(dict.fromkeys(name for _, metrics in points for name, m in metrics.items()
                               if m.numeric is not None))
    labels = {key: label or key for key, label, _ in variants}
    figures = []
    for name in names:
        traces, title = [], name
        for key in dict.fromkeys(m.get("variant", "") for m, _ in points):
            line = [(m, ms[name]) for m, ms in points if m.get("variant", "") == key and name in ms]
            if not line:
                continue
            title = line[-1][1].label or name
            traces.append({
                "type": "scatter", "mode": "lines+markers", "name": labels.get(key, key),
                "x": [m.get("created") for m, _ in line], "y": [metric.numeric for _, metric in line],
                "customdata": [f"{m['version_id']}/index.html" for m, _ in line],
                "text": [f"{m['version_id']}{' (degraded)' if m.get('status') == 'degraded' else ''}"
                         for m, _ in line],
                "hovertemplate": "%{text}<br>%{y}<extra>%{fullData.name}</extra>",
                "marker": {"symbol": ["x" if m.get("status") == "degraded" else "circle" for m, _ in line],
                           "size": 8},
            })
        unit = next((ms[name].unit for _, ms in reversed(points) if name in ms), "")
        figures.append({"data": traces, "layout": {
            "title": {"text": title + (f" ({unit})" if unit else "")}, "height": 260,
            "margin": {"l": 50, "r": 20, "t": 40, "b": 40}, "showlegend": len(traces) > 1,
            "xaxis": {"type": "date"}, "hovermode": "closest"}, "metric": name})
    return figures


def headline(versions: list[dict], latest: dict | None) -> list[dict]:
    """The first metrics of ``latest`` (one variant's versions, newest first), each with its
    change since the previous complete version of that variant."""
    if not latest or not latest.get("metrics"):
        return []
    older = [m for m in versions if m.get("status") in COMPLETE and m.get("created", "") < latest.get("created", "")
             and m.get("variant") == latest.get("variant")]
    before = older[0].get("metrics", {}) if older else {}
    shown = []
    for name, data in list(latest["metrics"].items())[:HEADLINE]:
        metric, prior = Metric.from_json(data), before.get(name)
        delta = None
        if prior is not None and metric.numeric is not None and Metric.from_json(prior).numeric is not None:
            delta = metric.numeric - Metric.from_json(prior).numeric
        shown.append({"name": name, "label": metric.label or name, "value": metric.shown(), "delta": delta})
    return shown
