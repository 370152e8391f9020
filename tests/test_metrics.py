"""Metrics and checks without a kernel: the record format, scrapbook scraps, rule parsing."""

from __future__ import annotations

import pytest

from lab2land.checks import evaluate, parse_rule
from lab2land.metrics import MIMETYPE, Metric, can_record, extract, problem, record


def cell(*outputs: dict) -> dict:
    return {"cell_type": "code", "source": "", "outputs": list(outputs)}


def display(data: dict) -> dict:
    return {"output_type": "display_data", "data": data, "metadata": {}}


def test_record_outside_a_kernel_returns_the_metric_and_validates():
    assert record("auc", 0.91, label="AUC") == Metric("auc", 0.91, "AUC", "")
    with pytest.raises(ValueError, match="metric name 'bad name'"):
        record("bad name", 1)
    with pytest.raises(ValueError, match="finite number"):
        record("x", float("nan"))
    with pytest.raises(ValueError, match="at most 200"):
        record("x", "y" * 201)
    assert problem("ok", True) is None and problem("ok", "champion") is None


def test_extract_reads_lab2land_and_scrapbook_outputs_last_value_wins():
    ours = display({MIMETYPE: {"name": "auc", "value": 0.8, "label": "AUC", "unit": ""}, "text/plain": "AUC: 0.8"})
    again = display({MIMETYPE: {"name": "auc", "value": 0.9}, "text/plain": "auc: 0.9"})
    scrap = display({"application/scrapbook.scrap.json+json": {"name": "rows", "data": 120, "encoder": "json",
                                                               "version": 1}})
    text_scrap = display({"application/scrapbook.scrap.text+json": {"name": "model", "data": "v2",
                                                                    "encoder": "text", "version": 1}})
    junk = display({MIMETYPE: {"name": "x"}})  # no value: ignored, not a crash
    found = extract([cell(ours, junk), cell(scrap, again), cell(text_scrap), {"cell_type": "markdown"}])
    assert found == {"auc": Metric("auc", 0.9), "rows": Metric("rows", 120), "model": Metric("model", "v2")}


@pytest.mark.parametrize("rule, value, holds", [
    (">= 0.9", 0.9, True), ("> 0", 0, False), ("< 5", 4.9, True), ("<=1e-3", 0.002, False),
    ("== 3", 3, True), ("!= 3", 3, False), ("between 0.001 0.05", 0.012, True), ("between 0.001 0.05", 0.2, False),
])
def test_rules(rule, value, holds):
    assert parse_rule(rule).holds(value) is holds


@pytest.mark.parametrize("rule", [">= x", "0.9", "between 2 1", "between 1", "=> 1", "> inf", ""])
def test_malformed_rules_say_what_is_expected(rule):
    with pytest.raises(ValueError, match='expected "<op> NUMBER"'):
        parse_rule(rule)


def test_evaluate_names_each_breach_with_value_and_bound_and_missing_metrics():
    metrics = {"auc": Metric("auc", 0.85), "rate": Metric("rate", 1.2, unit="%"), "model": Metric("model", "v2")}
    breaches = evaluate({"auc": ">= 0.9", "rate": "between 0.1 5", "rows": "> 0", "model": "> 1"}, metrics)
    assert [b.message for b in breaches] == [
        "auc = 0.85, expected >= 0.9",
        "rows was not recorded (check: rows > 0)",
        "model = 'v2' is not a number (check: model > 1)",
    ]


def test_can_record_finds_record_and_glue_calls():
    assert can_record(["x = 1", "from lab2land import record\nrecord('a', 1)"])
    assert can_record(["import scrapbook as sb\nsb.glue('a', 1)"])
    assert not can_record(["recorder = 1", "print('record')"])
