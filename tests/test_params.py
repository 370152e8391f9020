"""Parameters: strict names, lossless coercion, clear errors — all before any kernel starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import write_notebook
from lab2land.params import ParameterError, notebook_parameters, parse_assignments, resolve_parameters


def notebook(tmp_path: Path, source: str | None, name: str = "nb.ipynb") -> Path:
    """A notebook whose parameters cell is ``source`` (None: no such cell), without a kernelspec."""
    return write_notebook(tmp_path / name, source, "print('body')", kernel=None)


PARAMS = 'region = "north"\nmonths = 3\nthreshold = 0.5\nverbose = False\nregions = ["a"]\nanything = None\n'


def test_types_come_from_the_defaults(tmp_path):
    declared = notebook_parameters(notebook(tmp_path, PARAMS))
    assert {n: p.type_name for n, p in declared.items()} == {
        "region": "str", "months": "int", "threshold": "float", "verbose": "bool", "regions": "list",
        "anything": "any"}


def test_text_from_the_command_line_is_coerced_losslessly(tmp_path):
    path = notebook(tmp_path, PARAMS)
    values = {"months": "6", "threshold": "1", "verbose": "yes", "regions": '["x", "y"]', "anything": "7"}
    assert resolve_parameters("r", path, values, from_text=True) == {
        "months": 6, "threshold": 1.0, "verbose": True, "regions": ["x", "y"], "anything": 7}


def test_wrong_types_and_unknown_names_are_all_reported(tmp_path):
    path = notebook(tmp_path, PARAMS)
    with pytest.raises(ParameterError) as info:
        resolve_parameters("kpi", path, {"months": "3.5", "regoin": "x", "verbose": "maybe"}, from_text=True,
                           origin="-p")
    assert info.value.problems[0] == "-p months: expected int (a whole number, default 3), got '3.5'"
    assert info.value.problems[1].startswith("-p regoin: unknown parameter 'regoin' for report 'kpi' (notebook "
                                             "nb.ipynb; valid: region: str = \"north\", months: int = 3")
    assert info.value.problems[2] == "-p verbose: expected bool (true or false, default False), got 'maybe'"


def test_toml_values_must_match_except_int_to_float(tmp_path):
    path = notebook(tmp_path, PARAMS)
    assert resolve_parameters("r", path, {"threshold": 1}) == {"threshold": 1.0}
    with pytest.raises(ParameterError) as info:
        resolve_parameters("r", path, {"region": 3, "months": True},
                           origin="publish.toml: reports.r.parameters")
    assert info.value.problems == [
        "publish.toml: reports.r.parameters.region: expected str (text, default \"north\"), got 3",
        "publish.toml: reports.r.parameters.months: expected int (a whole number, default 3), got True",
    ]


def test_notebook_without_parameters_cell_is_an_error_unless_declared(tmp_path):
    path = notebook(tmp_path, None)
    assert notebook_parameters(path) is None
    with pytest.raises(ParameterError, match="has no cell tagged 'parameters'; tag one"):
        resolve_parameters("r", path, {})
    assert resolve_parameters("r", path, {}, takes_parameters=False) == {}
    with pytest.raises(ParameterError, match="takes no parameters"):
        resolve_parameters("r", path, {"x": 1}, takes_parameters=False)


def test_parameters_cell_with_a_syntax_error_is_caught_statically(tmp_path):
    path = notebook(tmp_path, "a = 1\n= 2\n")
    with pytest.raises(ParameterError, match=r"nb.ipynb: the parameters cell \(cell 0\) is not valid Python: line 2"):
        notebook_parameters(path)


def test_parse_assignments():
    assert parse_assignments(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(ParameterError, match="expected name=value"):
        parse_assignments(["novalue"])


def test_annotations_help_comments_and_non_literal_defaults(tmp_path):
    path = notebook(tmp_path, 'ratio: float = 2  # share of traffic\ncolor = "#fff"  # hex colour\n'
                              'import os\nhome = os.environ.get("HOME", "/")\nx, y = 1, 2\n')
    declared = notebook_parameters(path)
    assert list(declared) == ["ratio", "color", "home"]  # imports and tuple unpacking are not parameters
    assert (declared["ratio"].type_name, declared["ratio"].help) == ("float", "share of traffic")
    assert (declared["color"].default, declared["color"].help) == ("#fff", "hex colour")
    assert declared["home"].type_name == "any" and declared["home"].default_source == 'os.environ.get("HOME", "/")'
    assert resolve_parameters("r", path, {"ratio": "0.5"}, from_text=True) == {"ratio": 0.5}
