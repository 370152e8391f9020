"""Plan a build: reports × parameter sets = runs, validated before any kernel starts.

Every problem (unknown report, unknown parameter, wrong type, missing kernel, invalid parameters
cell) is collected and raised together as one :class:`ConfigError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.kernelspec import NATIVE_KERNEL_NAME, KernelSpecManager

from .config import Config, ConfigError, ReportConfig
from .metrics import can_record
from .params import (
    RUN_ID,
    NotebookParam,
    ParameterError,
    notebook_parameters,
    read_notebook,
    resolve_parameters,
)
from .store import slug


@dataclass
class Run:
    """One planned execution: a report with one parameter set."""

    report: str
    variant: str  # URL-safe key of the parameter set, unique within the report
    label: str  # what a reader sees, e.g. "region=north"
    parameters: dict[str, Any]  # validated values passed to the notebook
    notebook: Path
    kernel: str
    declared: dict[str, NotebookParam] = field(default_factory=dict)
    multi: bool = False  # the report has several parameter sets

    @property
    def name(self) -> str:
        return f"{self.report}[{self.variant}]" if self.multi else self.report


def variant_names(sets: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(key, label) per parameter set, named by the values that differ between the sets."""
    if len(sets) == 1:
        return [("default", "")]
    varying = [k for k in dict.fromkeys(k for s in sets for k in s) if len({repr(s.get(k)) for s in sets}) > 1]
    names, seen = [], set()
    for index, values in enumerate(sets):
        label = ", ".join(f"{k}={values[k]}" for k in varying if k in values) or f"set {index + 1}"
        key = slug("-".join(str(values[k]) for k in varying if k in values) or f"set-{index + 1}")
        if key in seen or key in ("latest", "default"):
            key = f"{key}-{index + 1}"
        seen.add(key)
        names.append((key, label))
    return names


def report_variants(report: ReportConfig) -> list[tuple[str, str, dict[str, Any]]]:
    """(key, label, parameter set) of each of a report's version lines, in config order."""
    sets = report.parameter_sets()
    return [(key, label, values) for (key, label), values in zip(variant_names(sets), sets, strict=False)]


def _installed_kernels() -> dict[str, str]:
    return KernelSpecManager().find_kernel_specs()


def _kernel(name: str, report: ReportConfig, nb: nbformat.NotebookNode, installed: dict[str, str],
            problems: list[str]) -> str:
    if report.kernel:
        kernel, where = report.kernel, f"reports.{name}.kernel: kernel {report.kernel!r}"
    else:
        kernel = nb.metadata.get("kernelspec", {}).get("name", "python3")
        where = f"reports.{name}: kernel {kernel!r} (from {report.notebook}'s metadata)"
    if kernel == "python" and "python" not in installed:
        kernel = NATIVE_KERNEL_NAME  # jupyter_client's KernelManager maps this alias the same way
    if kernel not in installed:
        problems.append(f"{where} is not installed (installed: {', '.join(sorted(installed))}); "
                        f"set `kernel = \"python3\"` in [reports.{name}] or install it")
    return kernel


def _source_problems(cfg_name: str, name: str, report: ReportConfig, declared: dict) -> list[str]:
    """Each source a report reads arrives as the parameter of the same name: it must exist."""
    problems = []
    for source in report.sources:
        if source not in declared:
            problems.append(f"{cfg_name}: reports.{name}.sources: notebook {report.notebook} has no parameter "
                            f"{source!r} to receive source {source!r} (add `{source} = \"...\"` to its "
                            f"parameters cell)")
        if any(source in values for values in report.parameter_sets()):
            problems.append(f"{cfg_name}: reports.{name}.parameters.{source}: {source!r} is filled from "
                            f"[sources.{source}]; remove it from parameters")
    return problems


def plan_runs(config: Config, selected: list[str] | None = None,
              overrides: dict[str, str] | None = None) -> list[Run]:
    """The runs of a build, in config order.

    Args:
        config: The loaded project config.
        selected: Report names to build (default: all).
        overrides: ``-p name=value`` text values applied to every parameter set of every selected
            report, coerced to the notebook's types.

    Raises:
        ConfigError: every problem found, before anything runs.
    """
    cfg_name = config.config_path.name
    names = list(selected or config.reports)
    problems = [f"unknown report {n!r} (valid: {', '.join(config.reports) or 'none defined'})"
                for n in names if n not in config.reports]
    if not config.reports:
        problems.append(f"{cfg_name}: no [reports.<name>] tables: nothing to publish")
    installed = _installed_kernels()
    runs: list[Run] = []
    for name in (n for n in names if n in config.reports):
        report, path = config.reports[name], config.notebook_path(name)
        try:
            nb = read_notebook(path)
            declared = notebook_parameters(path, nb)
        except (ParameterError, nbformat.ValidationError, ValueError) as exc:
            problems.extend(getattr(exc, "problems", [f"{cfg_name}: reports.{name}.notebook: {report.notebook} "
                                                      f"is not a notebook: it {exc}"]))
            continue
        kernel = _kernel(name, report, nb, installed, problems)
        if report.checks and not can_record(c.source for c in nb.cells if c.cell_type == "code"):
            problems.append(f"{cfg_name}: reports.{name}.checks: notebook {report.notebook} records no metrics "
                            "(no `record(...)` or scrapbook `glue(...)` call), so every check would fail; add "
                            "`from lab2land import record` and `record(\"name\", value)` to it")
        problems.extend(_source_problems(cfg_name, name, report, declared or {}))
        variants = report_variants(report)
        for index, (key, label, values) in enumerate(variants):
            suffix = f"[{index}]" if isinstance(report.parameters, list) else ""  # which set, for messages
            try:
                resolved = resolve_parameters(
                    name, path, values, declared=declared, takes_parameters=report.takes_parameters,
                    origin=f"{cfg_name}: reports.{name}.parameters{suffix}")
                if overrides:
                    resolved.update(resolve_parameters(name, path, overrides, declared=declared, from_text=True,
                                                       takes_parameters=report.takes_parameters,
                                                       origin="-p"))
            except ParameterError as exc:
                problems.extend(exc.problems)
                continue
            runs.append(Run(name, key, label, resolved, path, kernel, declared or {}, multi=len(variants) > 1))
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)))
    return runs


def injected(run: Run, version_id: str) -> dict[str, Any]:
    """Parameters lab2land fills in itself, for notebooks that declare them."""
    return {RUN_ID: version_id} if RUN_ID in run.declared and RUN_ID not in run.parameters else {}
