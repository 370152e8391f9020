"""Notebook parameters: read the ``parameters`` cell, validate and coerce values strictly.

Papermill only warns about unknown parameters and missing parameters cells; lab2land treats both
as errors so a typo in ``publish.toml`` or on the command line never publishes a wrong report.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from .errors import ParameterError

# Parameters lab2land fills in itself when a notebook declares them.
RUN_ID = "run_id"
_NO_DEFAULT = object()


@dataclass(frozen=True)
class NotebookParam:
    """One parameter declared in a notebook's ``parameters`` cell."""

    name: str
    default_source: str
    default: Any  # the literal value, or _NO_DEFAULT when the default is an expression
    type_name: str  # "int", "float", "str", "bool", "list", "dict" or "any"
    help: str = ""

    def describe(self) -> str:
        return f"{self.name}: {self.type_name} = {self.default_source}"


_ANNOTATIONS = {"int": "int", "float": "float", "str": "str", "bool": "bool"}


def _type_name(inferred: str, default: Any) -> str:
    annotated = _ANNOTATIONS.get(inferred) or ("list" if inferred.lower().startswith("list") else None)
    if annotated:
        return annotated
    if default is _NO_DEFAULT or default is None:
        return "any"
    for kind in (bool, int, float, str, list, dict):  # bool before int: bool is an int subclass
        if isinstance(default, kind):
            return kind.__name__
    return "any"


def _language(nb: nbformat.NotebookNode) -> str:
    return (nb.metadata.get("kernelspec", {}).get("language")
            or nb.metadata.get("language_info", {}).get("name") or "python")


def _parse_python(path: Path, index: int, source: str) -> list[tuple[str, str, str, str]]:
    """(name, default source, annotation, help) of each top-level assignment in a Python
    parameters cell: the fields papermill's inspection reports, read with Python's own parser.

    Papermill reads the cell line by line and silently skips lines it cannot parse, so a cell
    that is not valid Python would only fail in the kernel; here it is an error before any run.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ParameterError([f"{path.name}: the parameters cell (cell {index}) is not valid Python: "
                              f"line {exc.lineno}: {exc.msg}: {(exc.text or '').strip()!r}"]) from None
    lines, found = source.splitlines(), []
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, annotation = node.targets[0].id, ""
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            name, annotation = node.target.id, ast.get_source_segment(source, node.annotation) or ""
        else:
            continue
        rest = lines[node.end_lineno - 1][node.end_col_offset:]
        comment = rest.split("#", 1)[1].strip() if "#" in rest else ""
        found.append((name, ast.get_source_segment(source, node.value) or "", annotation, comment))
    return found


def _parse_other(nb: nbformat.NotebookNode, cell) -> list[tuple[str, str, str, str]]:
    # Other kernels' languages: papermill's translators (imported here, papermill is slow to load).
    from papermill.translators import papermill_translators

    kernel = nb.metadata.get("kernelspec", {}).get("name") or "python3"
    return [(p.name, p.default, p.inferred_type_name, p.help or "")
            for p in papermill_translators.find_translator(kernel, _language(nb)).inspect(cell)]


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """The notebook at ``path`` as nbformat 4.

    Raises:
        ValueError: the file cannot be read, is not JSON, or is JSON but not a notebook (a list,
            a dict without ``nbformat``...); the message says which.
    """
    try:
        return nbformat.read(str(path), as_version=4)
    except OSError as exc:
        raise ValueError(f"cannot be read: {exc.strerror}") from None
    except nbformat.reader.NotJSONError:
        raise ValueError("is not JSON (expected a Jupyter notebook, nbformat 4)") from None
    except (AttributeError, KeyError, TypeError, ValueError, nbformat.ValidationError) as exc:  # JSON, not a notebook
        raise ValueError(f"is JSON but not a notebook (expected nbformat 4; {type(exc).__name__}: {exc})") from None


def notebook_parameters(path: Path, nb: nbformat.NotebookNode | None = None) -> dict[str, NotebookParam] | None:
    """Parameters declared in the notebook's ``parameters`` cell; None if it has no such cell.

    Reads the cell's source only; no kernel is started.

    Raises:
        ParameterError: the parameters cell of a Python notebook is not valid Python.
        ValueError: the file is not a notebook (see :func:`read_notebook`).
    """
    nb = read_notebook(path) if nb is None else nb
    index = next((i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if index is None:
        return None
    cell = nb.cells[index]
    entries = _parse_python(path, index, cell.source) if _language(nb) == "python" else _parse_other(nb, cell)
    found = {}
    for name, source, annotation, help_text in entries:
        try:
            default = ast.literal_eval(source)
        except (ValueError, SyntaxError, TypeError):
            default = _NO_DEFAULT
        found[name] = NotebookParam(name, source, default, _type_name(annotation or "None", default), help_text)
    return found


def _from_text(text: str, kind: str) -> Any:
    if kind == "str":
        return text
    if kind == "bool":
        lowered = text.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise ValueError
    if kind == "int":
        return int(text.strip())
    if kind == "float":
        return float(text.strip())
    if kind in ("list", "dict"):
        value = json.loads(text)
        if type(value).__name__ != kind:
            raise ValueError
        return value
    # No typed default: a literal if it reads as one, else the text itself.
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _from_value(value: Any, kind: str) -> Any:
    if kind == "any":
        return value
    if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)  # lossless
    if kind == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    if type(value).__name__ == kind:
        return value
    raise ValueError


def coerce(param: NotebookParam, value: Any, *, from_text: bool) -> Any:
    """Return ``value`` converted to the parameter's type, or raise ValueError.

    Text (from the command line or a query string) is converted where that is lossless;
    typed values (from TOML) must already match, except int → float.
    """
    if from_text and isinstance(value, str):
        return _from_text(value, param.type_name)
    return _from_value(value, param.type_name)


def _expected(param: NotebookParam) -> str:
    examples = {"int": "a whole number", "float": "a number", "bool": "true or false",
                "list": "a JSON list", "dict": "a JSON object", "str": "text"}
    return f"{param.type_name} ({examples.get(param.type_name, 'any value')}, default {param.default_source})"


def _key(origin: str, name: str) -> str:
    # "publish.toml: reports.kpi.parameters" + ".region"; "-p" + " region"
    return f"{origin}.{name}" if origin.endswith(("parameters", "]")) else f"{origin} {name}"


def resolve_parameters(report: str, notebook_path: Path, values: dict[str, Any], *,
                       declared: dict[str, NotebookParam] | None = None,
                       from_text: bool = False, origin: str = "parameters",
                       takes_parameters: bool = True) -> dict[str, Any]:
    """Validate ``values`` against the notebook's parameters and return them coerced.

    Args:
        report: Report name, used in messages.
        notebook_path: The notebook whose ``parameters`` cell is the reference.
        values: Names and values to pass.
        declared: The notebook's parameters if already read (saves re-reading the file).
        from_text: Values are text from a command line or query string and may be converted.
        origin: Where the values came from, e.g. ``publish.toml: reports.kpi.parameters``.
        takes_parameters: False when the report declares that its notebook has no parameters cell.

    Raises:
        ParameterError: listing every unknown name and every value of the wrong type.
    """
    if declared is None:
        declared = notebook_parameters(notebook_path)
    if declared is None:
        if not takes_parameters and not values:
            return {}
        if takes_parameters:
            raise ParameterError([f"{origin}: notebook {notebook_path.name} has no cell tagged 'parameters'; "
                           f"tag one (papermill convention) or set takes_parameters = false "
                           f"in [reports.{report}]"])
        raise ParameterError([f"{origin}: report {report!r} takes no parameters "
                       f"(takes_parameters = false) but got {', '.join(sorted(values))}"])
    problems, resolved = [], {}
    valid = ", ".join(p.describe() for p in declared.values()) or "none"
    for name, value in values.items():
        param = declared.get(name)
        if param is None:
            problems.append(f"{_key(origin, name)}: unknown parameter {name!r} for report {report!r} "
                            f"(notebook {notebook_path.name}; valid: {valid})")
            continue
        try:
            resolved[name] = coerce(param, value, from_text=from_text)
        except (ValueError, TypeError, json.JSONDecodeError):
            problems.append(f"{_key(origin, name)}: expected {_expected(param)}, got {value!r}")
    if problems:
        raise ParameterError(problems)
    return resolved


def parse_assignments(items: list[str]) -> dict[str, str]:
    """Parse ``-p name=value`` command-line items into a dict of text values."""
    values, problems = {}, []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            problems.append(f"-p {item!r}: expected name=value")
            continue
        values[name.strip()] = value
    if problems:
        raise ParameterError(problems)
    return values
