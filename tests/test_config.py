"""publish.toml schema: every problem reported at once, naming file, key, value and expectation."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from conftest import ROOT, run_cli, write_notebook
from lab2land.config import Config, ConfigError, ReportConfig, SiteConfig, SourceConfig, load_config


def write(tmp: Path, toml: str) -> Path:
    """``toml`` as written (dedented): these tests feed the parser broken configs on purpose."""
    (tmp / "publish.toml").write_text(textwrap.dedent(toml), encoding="utf-8")
    return tmp


def problems(tmp: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(tmp)
    return info.value.problems


def test_every_problem_is_reported_at_once(tmp_path):
    write_notebook(tmp_path / "nb.ipynb", None, kernel=None)  # empty
    found = problems(write(tmp_path, """
        [site]
        title = 3
        [reports.sales]
        notebook = "nb.ipynb"
        title = "Sales"
        parameters = [{region = "north"}, 5]
        timeout = "x"
        bogus = 1
        [reports.other]
        title = "Other"
    """))
    assert found == [
        "publish.toml: site.title: expected str, got 3",
        "publish.toml: reports.sales.parameters.1: expected table, got 5",
        "publish.toml: reports.sales.timeout: expected int, got 'x'",
        "publish.toml: reports.sales.bogus: unknown key (value 1)",
        "publish.toml: reports.other.notebook: required key is missing",
    ]


def test_missing_notebook_and_unknown_source_name_the_key(tmp_path):
    found = problems(write(tmp_path, """
        [sources.sales]
        path = "sales.csv"
        [reports.kpi]
        notebook = "missing.ipynb"
        title = "KPI"
        sources = ["sales", "weather"]
    """))
    assert any("reports.kpi.notebook: file not found: 'missing.ipynb'" in p for p in found)
    assert any("reports.kpi.sources: unknown source 'weather' (defined: sales)" in p for p in found)


def test_source_needs_exactly_one_kind_and_schedule_must_parse(tmp_path):
    write_notebook(tmp_path / "nb.ipynb", None, kernel=None)  # empty
    found = problems(write(tmp_path, """
        [sources.both]
        path = "x.csv"
        url = "sqlite:///x.db"
        [sources.half]
        url = "sqlite:///x.db"
        [reports.r]
        notebook = "nb.ipynb"
        title = "R"
        schedule = "every tuesday"
    """))
    one_of = "expected exactly one of `path`, `url` + `sql`, or `loader`"
    assert f"publish.toml: sources.both: {one_of}, got path, url" in found
    assert f"publish.toml: sources.half: {one_of}, got url" in found
    assert any(p.startswith("publish.toml: reports.r.schedule: expected cron syntax") and "'every tuesday'" in p
               for p in found)


def test_invalid_toml_names_the_file_and_position(tmp_path):
    (tmp_path / "publish.toml").write_text("[site\ntitle = 1\n")
    [problem] = problems(tmp_path)
    assert problem.startswith("publish.toml: not valid TOML:") and "line 1" in problem


def test_missing_config_file_says_how_to_fix(tmp_path):
    [problem] = problems(tmp_path)
    assert "no publish.toml found" in problem and "--project" in problem


def test_demo_config_is_valid():
    config = load_config(ROOT)
    assert set(config.reports) == {"lead_scoring", "kpi", "fraud"}
    assert [s["region"] for s in config.reports["kpi"].parameter_sets()] == ["north", "south"]


@pytest.mark.parametrize("model", [Config, SiteConfig, ReportConfig, SourceConfig])
def test_every_setting_is_documented(model):
    """A key without a description, or missing from the README's reference, is a defect."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        assert field.description, f"{model.__name__}.{name} has no description"
        documented = f"`[{name}" if model is Config else f"`{name}`"  # tables appear as `[site]`, `[reports.<name>]`
        assert documented in readme, f"README.md does not document {documented}` ({model.__name__})"


def test_cli_reports_config_errors_with_exit_2_and_starts_no_kernel(tmp_path):
    write(tmp_path, """
        [reports.r]
        notebook = "nope.ipynb"
        title = "R"
    """)
    proc = run_cli("build", project=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert "error: publish.toml: reports.r.notebook: file not found: 'nope.ipynb'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "reports").exists()
