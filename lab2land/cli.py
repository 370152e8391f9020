"""Command line: parse arguments, load the config, call the library. Nothing else happens here.

Exit status: 0 success, 1 one or more runs failed, 2 bad input (config, parameters, usage),
130 interrupted.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Optional

# jsonschema (via nbformat) eagerly imports rfc3987_syntax, an optional checker for "iri" formats
# that compiles ~35 parsers at import: ~0.8 s of every command (jsonschema #1428). No notebook
# schema uses those formats; marking the module absent, before anything imports nbformat, makes
# jsonschema skip it. Only the command-line process is affected, never a library user's.
sys.modules.setdefault("rfc3987_syntax", None)

from rich.console import Console  # noqa: E402
from rich.markup import escape  # noqa: E402
from rich.table import Table  # noqa: E402

from .config import ConfigError, load_config  # noqa: E402
from .params import ParameterError, parse_assignments  # noqa: E402
from .store import PublishLocked  # noqa: E402

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def cmd_build(args: argparse.Namespace) -> int:
    from .build import build
    from .progress import ConsoleReporter

    config = load_config(args.project)
    reporter = ConsoleReporter()
    summary = build(config, reports=args.reports or None, overrides=parse_assignments(args.param),
                    jobs=args.jobs, force=args.force, due=args.due, reporter=reporter)
    reporter.summary(summary)
    return EXIT_FAILED if summary.failed else EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    from .plan import report_variants
    from .store import Store, latest_by_variant

    config = load_config(args.project)
    store = Store(config.output_dir)
    table = Table(title=f"{config.site.title} — {config.output_dir}", title_justify="left")
    for column in ("report", "parameters", "latest good version", "newest run"):
        table.add_column(column)
    for name, report in config.reports.items():
        versions = store.versions(name)
        latest = latest_by_variant(versions)
        for key, _, params in report_variants(report):
            good = latest.get(key)
            newest = next((m for m in versions if m.get("variant") == key), None)
            shown = ", ".join(f"{k}={v!r}" for k, v in params.items()) or "—"
            newest_text = "never built" if newest is None else f"{newest['version_id']} {newest['status']}"
            style = "red" if newest and newest["status"] != "ok" else ""
            table.add_row(escape(name), escape(shown), escape(good["version_id"] if good else "—"),
                          f"[{style}]{escape(newest_text)}[/]" if style else escape(newest_text))
    Console().print(table)
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from .serve import serve

    serve(load_config(args.project), host=args.host, port=args.port, token=args.token)
    return EXIT_OK


def cmd_layout(args: argparse.Namespace) -> int:
    from .grid import layout_command

    return layout_command(Path(args.notebook), check=args.check)


def cmd_demo_data(args: argparse.Namespace) -> int:
    from . import demo

    project = Path(args.project)
    if args.advance:
        added = demo.advance(project, days=_days(args.advance))
        _console().print(f"demo data advanced: {added}")
    elif args.reset or not (project / "data" / "shop.sqlite").exists():
        _console().print(f"demo data generated: {demo.generate(project)}")
    else:
        _console().print("demo data present (use --reset to regenerate, --advance 1d to add a day)")
    return EXIT_OK


def _days(text: str) -> int:
    value = text[:-1] if text.endswith("d") else text
    if not value.isdigit() or int(value) < 1:
        raise ParameterError([f"--advance {text!r}: expected a number of days like 1d or 7"])
    return int(value)


def parser() -> argparse.ArgumentParser:
    """The argument parser (documented in README.md)."""
    p = argparse.ArgumentParser(prog="publish.py", description="Publish notebooks as versioned reports.")
    p.add_argument("--project", default=".", help="project folder holding publish.toml (default: .)")
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="execute and publish reports")
    b.add_argument("reports", nargs="*", help="report names (default: all)")
    b.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                   help="override a parameter for the selected reports (repeatable)")
    b.add_argument("--jobs", type=int, default=None, help="runs at once (default: CPU cores)")
    b.add_argument("--force", action="store_true", help="re-run even when nothing changed")
    b.add_argument("--due", action="store_true",
                   help="only reports whose schedule came due since they were last published (for cron)")
    b.set_defaults(func=cmd_build)

    sub.add_parser("list", help="reports, parameter sets and latest versions").set_defaults(func=cmd_list)

    s = sub.add_parser("serve", help="serve the site and live dashboards")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    s.add_argument("--port", type=int, default=8866)
    s.add_argument("--token", default=None, help="require this token (or env LAB2LAND_TOKEN)")
    s.set_defaults(func=cmd_serve)

    g = sub.add_parser("layout", help="write grid metadata from grid:... cell tags")
    g.add_argument("notebook")
    g.add_argument("--check", action="store_true", help="only report what would change")
    g.set_defaults(func=cmd_layout)

    d = sub.add_parser("demo-data", help="generate or advance the demo database")
    d.add_argument("--reset", action="store_true", help="regenerate from scratch")
    d.add_argument("--advance", metavar="DAYS", help="append new days of activity, e.g. 1d")
    d.set_defaults(func=cmd_demo_data)
    return p


def _terminate(signum, frame):
    # cron and CI stop jobs with SIGTERM: unwind like Ctrl-C so runs and kernels are killed.
    raise KeyboardInterrupt


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point of ``publish.py`` and the ``lab2land`` console script."""
    args = parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    console = _console()
    try:
        return args.func(args)
    except (ConfigError, ParameterError) as exc:
        for line in exc.problems:
            console.print(f"[red]error:[/] {escape(line)}")
        return EXIT_USAGE
    except PublishLocked as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: runs stopped; published versions are unchanged")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
