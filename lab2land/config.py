"""Typed schema of ``publish.toml`` and its loader.

Every key has a default (or is required) and a one-line description. Loading reports *all*
problems at once, each naming the file, the key, the offending value and what was expected::

    publish.toml: reports.sales.parameters.region: expected str, got 3
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .cache import schedule_problem
from .errors import ConfigError
from .notify import DEFAULT_EVENTS, address_problem, events_problem, url_problem

__all__ = ["Config", "ConfigError", "ReportConfig", "SiteConfig", "SourceConfig", "NotifyConfig", "load_config"]

CONFIG_NAME = "publish.toml"

ParameterSet = dict[str, Any]

# A report's name is a folder of the site and part of its URLs: letters, digits, "-" and "_",
# starting with a letter or digit (so never "..", a dot-name or a path), and not a name the site
# or `serve` uses for itself.
REPORT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
RESERVED_REPORT_NAMES = frozenset({"assets", "dashboards", "voila", "api", "static", "login", "logout",
                                   "latest", "index", "catalog", "feed", "search"})
# A source's name is also the notebook parameter that receives its snapshot path.
SOURCE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SiteConfig(_Strict):
    """The ``[site]`` table."""

    title: str = Field("lab2land reports", description="Title shown on every page of the site.")
    description: str = Field("", description="One paragraph shown on the site's index page.")
    output: str = Field("reports", description="Folder (relative to the project) the site is written to.")
    templates: str | None = Field(
        None, description="Folder of template overrides, searched before lab2land's own templates."
    )
    max_output_mb: float = Field(
        10, gt=0, description="Outputs larger than this many MB are cut short in the page (the notebook keeps all)."
    )
    keep: int | None = Field(
        None, ge=1, description="Keep at most this many versions per report variant (None keeps all)."
    )
    jobs: int | None = Field(None, ge=1, description="Runs executed at once (default: CPU cores).")
    executor: str = Field("local", description="Where runs execute: 'local' processes or 'dask'.")
    scheduler: str | None = Field(
        None, description="Dask scheduler address for executor = 'dask' (None starts a local cluster)."
    )
    warm_kernels: bool = Field(
        True, description="Fork each run's fresh kernel from a warm parent that preloaded the notebooks' imports."
    )
    preload: list[str] = Field(
        default_factory=list, description="Extra modules the warm parent imports (beyond the notebooks' own imports)."
    )
    url: str | None = Field(
        None, description="Public address the site is served at, for absolute links in notifications."
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value):
        return value if value is None else _no_problem(value, url_problem)


class SourceConfig(_Strict):
    """A ``[sources.<name>]`` table: one data source that reports can read."""

    path: str | None = Field(None, description="A CSV/Parquet/JSON file or a folder, relative to the project.")
    url: str | None = Field(None, description="SQLAlchemy database URL for a SQL source.")
    sql: str | None = Field(None, description="Query whose result becomes the snapshot (with `url`).")
    loader: str | None = Field(None, description="Python script whose stdout or output file becomes the snapshot.")
    format: Literal["csv", "parquet", "json"] = Field(
        "csv", description="File format of SQL and loader snapshots."
    )
    columns: dict[str, str] | None = Field(
        None, description="Expected columns and their pandas dtypes kinds (int, float, str, bool, datetime)."
    )

    @property
    def kind(self) -> str | None:
        """Which loader reads this source: "path", "sql" or "loader" (None if not exactly one)."""
        given = {"path": bool(self.path), "sql": bool(self.url and self.sql), "loader": bool(self.loader)}
        kinds = [k for k, v in given.items() if v]
        return kinds[0] if len(kinds) == 1 and bool(self.url) == bool(self.sql) else None

    @model_validator(mode="after")
    def _one_kind(self):
        if self.kind is None:
            given = ", ".join(k for k in ("path", "url", "sql", "loader") if getattr(self, k)) or "none"
            raise ValueError(f"expected exactly one of `path`, `url` + `sql`, or `loader`, got {given}")
        return self


class ReportConfig(_Strict):
    """A ``[reports.<name>]`` table: one notebook published as a report."""

    notebook: str = Field(description="Path of the notebook, relative to the project.")
    title: str = Field(description="Title shown on the report's pages.")
    description: str = Field("", description="One paragraph shown on the index and history pages.")
    parameters: ParameterSet | list[ParameterSet] = Field(
        default_factory=dict,
        description="Parameter values, or a list of parameter sets (one version line per set).",
    )
    takes_parameters: bool = Field(
        True, description="False for a notebook without a `parameters` cell (otherwise an error)."
    )
    kernel: str | None = Field(None, description="Kernel to run with (default: the notebook's kernelspec).")
    timeout: int | None = Field(600, ge=1, description="Seconds one cell may run (None: no limit).")
    run_timeout: int = Field(1800, ge=1, description="Seconds the whole run may take, kernel start included.")
    tags: list[str] = Field(default_factory=list, description="Labels shown on the index page.")
    show_code: bool = Field(False, description="Show code cells in the published page.")
    layout: Literal["flow", "grid"] = Field(
        "flow", description="'grid' lays the static page out with the notebook's dashboard grid metadata."
    )
    dashboard: bool = Field(False, description="Serve this notebook as a live Voila dashboard too.")
    pool_size: int = Field(1, ge=0, le=16, description="Preheated kernels kept ready for the dashboard.")
    publish_notebook: bool = Field(
        True, description="Put the executed notebook (with its code) in each version; false keeps it off the site."
    )
    sources: list[str] = Field(default_factory=list, description="Names of `[sources]` the notebook reads.")
    keep: int | None = Field(
        None, ge=1, description="Versions kept per variant of this report (default: `[site] keep`)."
    )
    schedule: str | None = Field(
        None, description="When `build --due` re-runs it: cron syntax, or 'hourly' / 'daily' / 'weekly'."
    )
    checks: dict[str, str] = Field(
        default_factory=dict,
        description="Bounds on recorded metrics, e.g. { auc = \">= 0.9\" }; a breach publishes a degraded version.",
    )
    promote_degraded: bool = Field(
        False, description="Let a degraded version become latest (with its banner) instead of the last one that passed."
    )

    @field_validator("checks")
    @classmethod
    def _valid_checks(cls, value):
        from .checks import parse_rule

        problems = []
        for metric, rule in value.items():
            try:
                parse_rule(rule)
            except ValueError as exc:
                problems.append(f"{metric}: {exc}")
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @field_validator("parameters")
    @classmethod
    def _at_least_one_set(cls, value):
        if isinstance(value, list) and not value:
            raise ValueError("expected a table or a non-empty list of tables, got an empty list")
        return value

    @field_validator("schedule")
    @classmethod
    def _valid_schedule(cls, value):
        problem = value and schedule_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    def parameter_sets(self) -> list[ParameterSet]:
        """The parameter sets of this report: one per version line."""
        return list(self.parameters) if isinstance(self.parameters, list) else [dict(self.parameters)]


class WebhookConfig(_Strict):
    """One ``[[notify.webhooks]]`` table: an address that receives a POST per build event."""

    url: str = Field(description="http(s) address to POST to (its path may hold a token: never logged).")
    on: list[str] = Field(default_factory=lambda: list(DEFAULT_EVENTS),
                          description="Events sent: 'failed', 'degraded', 'recovered', 'published' (every version).")
    format: Literal["json", "slack"] = Field("json", description="'json' or 'slack' (a Slack-compatible body).")

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value):
        return _no_problem(value, url_problem)

    @field_validator("on")
    @classmethod
    def _valid_on(cls, value):
        return _no_problem(value, events_problem)


class EmailConfig(_Strict):
    """The ``[notify.email]`` table: an SMTP server and who receives a mail per build event."""

    smtp_host: str = Field(description="SMTP server to send through.")
    port: int = Field(587, ge=1, le=65535, description="SMTP port.")
    starttls: bool = Field(True, description="Upgrade the connection with STARTTLS before logging in.")
    sender: str = Field(alias="from", description="From address.")
    to: list[str] = Field(min_length=1, description="Addresses that receive the mails.")
    user: str | None = Field(None, description="SMTP login (with `password_env`; none: no login).")
    password_env: str | None = Field(
        None, description="Environment variable holding the SMTP password (the password never goes in the file)."
    )
    on: list[str] = Field(default_factory=lambda: list(DEFAULT_EVENTS), description="Events sent, as for webhooks.")

    @field_validator("on")
    @classmethod
    def _valid_on(cls, value):
        return _no_problem(value, events_problem)

    @field_validator("sender", "to")
    @classmethod
    def _valid_addresses(cls, value):
        return _no_problem(value, address_problem)

    @model_validator(mode="after")
    def _login_pair(self):
        if bool(self.user) != bool(self.password_env):
            raise ValueError("expected both `user` and `password_env` (login) or neither (no login)")
        return self


class NotifyConfig(_Strict):
    """The ``[notify]`` tables: who hears about failed, degraded, recovered or new versions."""

    webhooks: list[WebhookConfig] = Field(default_factory=list, description="Webhooks, one `[[notify.webhooks]]` each.")
    email: EmailConfig | None = Field(None, description="Mail through an SMTP server.")


class ServeConfig(_Strict):
    """The ``[serve]`` table: limits of ``publish.py serve``."""

    max_kernels: int | None = Field(
        None, ge=1, description="Live dashboard kernels at most (pooled ones included); beyond it a viewer "
        "gets a 'busy, try again' page. Default: available memory / 150 MB, at least 2."
    )


def _no_problem(value, checker):
    """``value``, or a ValueError with what ``checker`` found wrong with it."""
    problem = checker(value)
    if problem:
        raise ValueError(problem)
    return value


class Config(_Strict):
    """The whole ``publish.toml``."""

    site: SiteConfig = Field(default_factory=SiteConfig, description="Site-wide settings.")
    sources: dict[str, SourceConfig] = Field(default_factory=dict, description="Data sources by name.")
    reports: dict[str, ReportConfig] = Field(default_factory=dict, description="Reports by name.")
    notify: NotifyConfig = Field(default_factory=NotifyConfig, description="Notifications of build events.")
    serve: ServeConfig = Field(default_factory=ServeConfig, description="Limits of `publish.py serve`.")

    # Set by load_config, not read from the file.
    project_dir: Path = Field(Path("."), exclude=True)
    config_path: Path = Field(Path(CONFIG_NAME), exclude=True)

    @property
    def output_dir(self) -> Path:
        """The folder the site is written to."""
        return self.project_dir / self.site.output

    def notebook_path(self, report: str) -> Path:
        """Absolute path of a report's notebook."""
        return self.project_dir / self.reports[report].notebook


def _describe(value: Any) -> str:
    return repr(value) if not isinstance(value, (dict, list)) else type(value).__name__


def _expected(error: dict) -> str:
    kind, msg = error["type"], error["msg"]
    names = {"string_type": "str", "int_type": "int", "bool_type": "bool", "float_type": "float",
             "list_type": "list", "dict_type": "table", "model_type": "table"}
    if kind in names:
        return f"expected {names[kind]}, got {_describe(error['input'])}"
    if kind == "value_error":  # our validators phrase the whole message, value included
        return msg.removeprefix("Value error, ")
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        return f"unknown key (value {_describe(error['input'])})"
    return f"{msg}, got {_describe(error['input'])}"


def _wrong_union_branch(error: dict) -> bool:
    # For `parameters` (a table or a list of tables) pydantic reports the failure of both union
    # members; only the one matching the value's shape is useful to the user.
    for part in error["loc"]:
        if isinstance(part, str) and part.startswith("dict[") and isinstance(error["input"], list):
            return True
        if isinstance(part, str) and part.startswith("list[") and isinstance(error["input"], dict):
            return True
    return False


def _format_errors(path: Path, exc: ValidationError) -> list[str]:
    problems = []
    for error in exc.errors():
        if _wrong_union_branch(error):
            continue
        # Union members add their own path segment ("list[dict[str,any]]"); drop those.
        loc = [str(p) for p in error["loc"] if not (isinstance(p, str) and ("[" in p or p in ("dict", "list")))]
        key = ".".join(loc) or "(top level)"
        problems.append(f"{path.name}: {key}: {_expected(error)}")
    # A value that fails every member of a Union yields one line per member; keep the first.
    return list(dict.fromkeys(problems))


def _check_names(config: Config) -> list[str]:
    """Names from the config that would become paths outside the site, or clash with its own."""
    file, problems, seen = config.config_path.name, [], {}
    for name in config.reports:
        shown = name if REPORT_NAME.match(name) else json.dumps(name)
        if not REPORT_NAME.match(name):
            problems.append(f"{file}: reports.{shown}: invalid report name: expected 1-64 letters, digits, '-' "
                            "or '_', starting with a letter or digit (it becomes a folder and URL of the site)")
        elif name.lower() in RESERVED_REPORT_NAMES:
            problems.append(f"{file}: reports.{shown}: report name {name!r} is reserved by the site "
                            f"(reserved: {', '.join(sorted(RESERVED_REPORT_NAMES))})")
        elif name.lower() in seen:
            problems.append(f"{file}: reports.{shown}: report name differs from reports.{seen[name.lower()]} only "
                            "in case (the two would share a folder on case-insensitive disks)")
        seen.setdefault(name.lower(), name)
    for name in config.sources:
        if not SOURCE_NAME.match(name):
            problems.append(f"{file}: sources.{json.dumps(name)}: invalid source name: expected a Python "
                            "identifier of up to 64 characters (it is the notebook parameter that receives the "
                            "snapshot)")
    return problems


def _check_references(config: Config) -> list[str]:
    name = config.config_path.name
    problems = _check_names(config)
    for report_name, report in config.reports.items():
        nb = config.notebook_path(report_name)
        if not nb.is_file():
            problems.append(f"{name}: reports.{report_name}.notebook: file not found: {report.notebook!r} "
                            f"(looked in {config.project_dir})")
        for source in report.sources:
            if source not in config.sources:
                valid = ", ".join(sorted(config.sources)) or "none defined"
                problems.append(f"{name}: reports.{report_name}.sources: unknown source {source!r} "
                                f"(defined: {valid})")
    problems += _check_urls(config)
    return problems


def _check_urls(config: Config) -> list[str]:
    if not any(s.url for s in config.sources.values()):
        return []
    from .data import url_problem  # data imports config; only projects with databases need it

    return [f"{config.config_path.name}: sources.{name}.url: {problem}" for name, source in config.sources.items()
            if source.url and (problem := url_problem(source.url))]


def load_config(project_dir: Path | str = ".", config_path: Path | str | None = None) -> Config:
    """Read and validate ``publish.toml``; raise ConfigError listing every problem."""
    project_dir = Path(project_dir).resolve()
    path = Path(config_path) if config_path else project_dir / CONFIG_NAME
    if not path.is_file():
        raise ConfigError([f"{path}: no {CONFIG_NAME} found (pass --project DIR or create one)"])
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path.name}: not valid TOML: {exc}"]) from None
    try:
        config = Config.model_validate({**data, "project_dir": project_dir, "config_path": path})
    except ValidationError as exc:
        raise ConfigError(_format_errors(path, exc)) from None
    problems = _check_references(config)
    if problems:
        raise ConfigError(problems)
    return config
