"""Command line: parse arguments, load the config, call the library. Nothing else happens here.

Exit status: 0 success, 1 one or more runs failed, 2 bad input (config, parameters, usage),
4 an environment problem (see :mod:`lab2land.errors`), 130 interrupted. Errors are caught once,
in :func:`main`, and printed one line each; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
from pathlib import Path

from . import lean  # noqa: F401 - first: before anything imports nbformat

# isort: split

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import __version__
from .config import load_config
from .errors import (
    EXIT_DEGRADED,
    EXIT_ENVIRONMENT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    Lab2landError,
    ParameterError,
    UsageError,
)
from .params import parse_assignments


def _console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def cmd_build(args: argparse.Namespace) -> int:
    from .build import build
    from .notify import echo_to
    from .progress import ConsoleReporter

    config = load_config(args.project)
    reporter = ConsoleReporter()
    echo_to(reporter.console)  # what notifications do after the versions are committed
    summary = build(config, reports=args.reports or None, overrides=parse_assignments(args.param),
                    jobs=args.jobs, force=args.force, due=args.due, reporter=reporter, wait_s=args.wait)
    reporter.summary(summary)
    if summary.failed:
        return EXIT_FAILED
    return EXIT_DEGRADED if summary.degraded else EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    from .pins import latest_with_pins, read_pins
    from .plan import report_variants
    from .store import Store

    config = load_config(args.project)
    store = Store(config.output_dir)
    table = Table(title=f"{config.site.title} — {config.output_dir}", title_justify="left")
    for column in ("report", "parameters", "latest good version", "newest run"):
        table.add_column(column)
    for name, report in config.reports.items():
        versions = store.versions(name)
        pins = read_pins(store, name)
        latest = latest_with_pins(versions, report.promote_degraded, pins)
        for key, _, params in report_variants(report):
            good = latest.get(key)
            newest = next((v for v in versions if v.variant == key), None)
            shown = ", ".join(f"{k}={v!r}" for k, v in params.items()) or "—"
            newest_text = "never built" if newest is None else f"{newest.version_id} {newest.status}"
            style = {"failed": "red", "degraded": "yellow"}.get(newest.status, "") if newest else ""
            held = " (pinned)" if good and key in pins and pins[key].version == good.version_id else ""
            table.add_row(escape(name), escape(shown), escape(f"{good.version_id}{held}" if good else "—"),
                          f"[{style}]{escape(newest_text)}[/]" if style else escape(newest_text))
    Console().print(table)
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from .serve import serve

    serve(load_config(args.project), host=args.host, port=args.port, token=args.token)
    return EXIT_OK


def cmd_new(args: argparse.Namespace) -> int:
    from .new import new_project

    folder = Path(args.folder)
    written = new_project(folder, title=args.title)
    console = _console()
    names = ", ".join(escape(str(p.relative_to(folder))) for p in written)
    console.print(f"created {escape(str(folder))}/ with {names}")
    shown = escape(str(folder))
    console.print(f"next: cd {shown} && lab2land build, then open {shown}/reports/index.html (or `lab2land serve`)")
    return EXIT_OK


def cmd_restore(args: argparse.Namespace) -> int:
    from .restore import restore

    config = load_config(args.project)
    result = restore(args.url, config.output_dir)
    console = _console()
    if result is None:
        console.print(f"nothing deployed yet at {escape(args.url)} (no catalog.json): starting a new site")
        return EXIT_OK
    console.print(f"restored {result.written} version(s) from {escape(args.url)} into {escape(str(config.output_dir))}"
                  f" ({result.present} already here, {len(result.missed)} could not be downloaded)")
    for folder in result.missed:
        console.print(f"[yellow]warning:[/] could not download {escape(folder)}")
    return EXIT_OK


def cmd_repair(args: argparse.Namespace) -> int:
    from .repair import repair

    config = load_config(args.project)
    result = repair(config, wait_s=args.wait)
    console = _console()
    site = escape(str(config.output_dir))
    if not result.had_catalog:
        console.print(f"{site}: there was no catalog.json (or it was unreadable): wrote every page from the versions "
                      "on disk")
        return EXIT_OK
    for entry in result.unlisted:
        console.print(f"fixed {escape(entry)}: on disk but not in the catalog, now listed")
    for entry in result.gone:
        console.print(f"fixed {escape(entry)}: in the catalog but its folder is gone, no longer listed")
    for entry in result.unconfigured:
        console.print(f"fixed {escape(entry)}: in the catalog but its report is not in publish.toml, no longer listed")
    for entry in result.latest:
        console.print(f"fixed latest {escape(entry)}")
    summary = f"{result.problems} problem(s) fixed" if result.problems else "nothing to fix"
    console.print(f"{site}: {summary}; every page, latest page, versions.js and the catalog rewritten")
    return EXIT_OK


def cmd_rollback(args: argparse.Namespace) -> int:
    from .rollback import rollback

    done = rollback(load_config(args.project), args.report, args.version, variant=args.variant,
                    reason=args.reason, wait_s=args.wait)
    was = f" (was {done.was})" if done.was else ""
    _console().print(f"{escape(done.report)}/{escape(done.variant)}: latest pinned to "
                     f"{escape(done.pin.version)}{escape(was)}; builds keep publishing but leave it there "
                     f"until `lab2land unpin {escape(done.report)}`")
    return EXIT_OK


def cmd_unpin(args: argparse.Namespace) -> int:
    from .rollback import unpin

    gone = unpin(load_config(args.project), args.report, variant=args.variant, wait_s=args.wait)
    shown = ", ".join(f"{args.report}/{key}" for key in gone)
    _console().print(escape(f"{shown}: unpinned; latest is the newest good version again") if gone
                     else escape(f"{args.report}: nothing was pinned"))
    return EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    import json

    from .diff import choose_pairs, format_text, load
    from .store import Store

    config = load_config(args.project)
    if args.report not in config.reports:
        raise UsageError(f"unknown report {args.report!r} (valid: {', '.join(config.reports) or 'none defined'})")
    store = Store(config.output_dir)
    pairs = choose_pairs(store.versions(args.report), args.old, args.new, args.variant)
    diffs = [load(config.output_dir, args.report, old, new) for old, new in pairs]
    if args.format == "json":
        print(json.dumps([d.to_json() for d in diffs], indent=2, default=str))
    else:
        print("\n\n".join(format_text(d) for d in diffs) or f"{args.report}: fewer than two versions to compare")
    return EXIT_OK


def cmd_notify(args: argparse.Namespace) -> int:
    from .notify import echo_to, send_test, targets

    config = load_config(args.project)
    found = targets(config)
    if not found:
        raise UsageError(f"{config.config_path.name} has no notification targets: add a [[notify.webhooks]] "
                         "or [notify.email] table (see README, Notifications)")
    console = _console()
    if not args.test:
        for target in found:
            console.print(f"{escape(target.name)}: on {', '.join(target.on)}")
        console.print("(`lab2land notify --test` sends each a test message)")
        return EXIT_OK
    echo_to(console)
    sent = send_test(config)
    console.print(f"[green]✓[/] test message sent to all {len(sent)} target(s)")
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


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of printing and exiting, so that every error
    leaves through :func:`main` (usage text first, then one ``error:`` line)."""

    def error(self, message: str):
        raise UsageError(f"{self.prog}: {message} (see `{self.prog} --help`)")


def _global_options(top: bool) -> argparse.ArgumentParser:
    """Options accepted before and after the command: ``lab2land --project D build`` and
    ``lab2land build --project D``. After the command they default to SUPPRESS, so that they
    do not overwrite a value given before it."""
    options = argparse.ArgumentParser(add_help=False)
    default = (lambda value: value) if top else (lambda value: argparse.SUPPRESS)
    options.add_argument("--project", default=default("."), metavar="DIR",
                         help="project folder holding publish.toml (default: .)")
    options.add_argument("--debug", action="store_true", default=default(False),
                         help="show the Python traceback of an error")
    return options


def parser(prog: str = "lab2land") -> argparse.ArgumentParser:
    """The argument parser (documented in README.md)."""
    p = _Parser(prog=prog, description="Publish notebooks as versioned reports.", parents=[_global_options(True)])
    p.add_argument("--version", action="version", version=f"lab2land {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    options = [_global_options(False)]

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, parents=options)

    n = command("new", "start a new project: publish.toml, an example notebook, .gitignore, CI workflow")
    n.add_argument("folder", metavar="DIR", help="folder to create the project in (may exist, but hold no project)")
    n.add_argument("--title", default=None, help="the site's title (default: the folder's name)")
    n.set_defaults(func=cmd_new)

    b = command("build", "execute and publish reports")
    b.add_argument("reports", nargs="*", help="report names (default: all)")
    b.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                   help="override a parameter for the selected reports (repeatable)")
    b.add_argument("--jobs", type=int, default=None, help="runs at once (default: CPU cores)")
    b.add_argument("--force", action="store_true", help="re-run even when nothing changed")
    b.add_argument("--due", action="store_true",
                   help="only reports whose schedule came due since they were last published (for cron)")
    b.add_argument("--wait", type=float, default=600, metavar="SECONDS",
                   help="how long to wait for another publish of the same site (default: 600)")
    b.set_defaults(func=cmd_build)

    command("list", "reports, parameter sets and latest versions").set_defaults(func=cmd_list)

    s = command("serve", "serve the site and live dashboards")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    s.add_argument("--port", type=int, default=8866)
    s.add_argument("--token", default=None, help="require this token (or env LAB2LAND_TOKEN)")
    s.set_defaults(func=cmd_serve)

    r = command("restore", "download the versions of a deployed site that the site folder lacks (CI)")
    r.add_argument("url", help="where the site is deployed, e.g. https://org.github.io/project/")
    r.set_defaults(func=cmd_restore)

    f = command("repair", "rewrite every page and the catalog from the versions on disk; say what was wrong")
    f.add_argument("--wait", type=float, default=600, metavar="SECONDS",
                   help="how long to wait for another publish of the same site (default: 600)")
    f.set_defaults(func=cmd_repair)

    c = command("diff", "what changed between two versions of a report: parameters, data, metrics, outputs")
    c.add_argument("report")
    c.add_argument("old", nargs="?", help="older version id (default: the one before the latest of each variant)")
    c.add_argument("new", nargs="?", help="newer version id (default: the latest of OLD's variant)")
    c.add_argument("--variant", default=None, help="only this variant (default: every variant)")
    c.add_argument("--format", choices=("text", "json"), default="text")
    c.set_defaults(func=cmd_diff)

    k = command("rollback", "make an earlier version the latest of its variant again (pin it); runs nothing")
    k.add_argument("report")
    k.add_argument("version", nargs="?", help="version id to pin (default: the good version before the latest)")
    k.add_argument("--variant", default=None, help="the variant (needed when the report has several)")
    k.add_argument("--reason", default="", help="why, shown on the history page and in the catalog")
    k.add_argument("--wait", type=float, default=600, metavar="SECONDS",
                   help="how long to wait for another publish of the same site (default: 600)")
    k.set_defaults(func=cmd_rollback)

    u = command("unpin", "let builds move the latest again (undo rollback)")
    u.add_argument("report")
    u.add_argument("--variant", default=None, help="only this variant (default: every pinned variant)")
    u.add_argument("--wait", type=float, default=600, metavar="SECONDS",
                   help="how long to wait for another publish of the same site (default: 600)")
    u.set_defaults(func=cmd_unpin)

    t = command("notify", "list the notification targets of publish.toml, or send each a test message")
    t.add_argument("--test", action="store_true", help="send a test message to every webhook and mail target")
    t.set_defaults(func=cmd_notify)

    g = command("layout", "write grid metadata from grid:... cell tags")
    g.add_argument("notebook")
    g.add_argument("--check", action="store_true", help="only report what would change")
    g.set_defaults(func=cmd_layout)

    d = command("demo-data", "generate or advance the demo database")
    d.add_argument("--reset", action="store_true", help="regenerate from scratch")
    d.add_argument("--advance", metavar="DAYS", help="append new days of activity, e.g. 1d")
    d.set_defaults(func=cmd_demo_data)
    return p


def _terminate(signum, frame):
    # cron and CI stop jobs with SIGTERM: unwind like Ctrl-C so runs and kernels are killed.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Entry point of ``lab2land``, ``python -m lab2land`` and ``publish.py``.

    Every error lab2land names (:class:`~lab2land.errors.Lab2landError`) is printed as one line
    per problem with its exit code; an OS error that escapes (a folder that cannot be written)
    is printed with the file it concerns; anything else is a bug, reported in one line that
    asks for ``--debug``. With ``--debug`` the traceback is shown as well.
    """
    console = _console()
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    try:
        args = parser(prog or os.path.basename(sys.argv[0]) or "lab2land").parse_args(argv)
        signal.signal(signal.SIGTERM, _terminate)
        return args.func(args)
    except Lab2landError as exc:
        return _report(console, exc, exc.problems, exc.exit_code, debug)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: runs stopped; published versions are unchanged")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `lab2land diff ... | head`: the reader has what it wanted. Python would complain again
        # when it flushes stdout at exit, so stdout goes to /dev/null first (as the docs advise).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:
        where = exc.filename or "lab2land"
        return _report(console, exc, [f"{where}: {exc.strerror or exc}"], EXIT_ENVIRONMENT, debug)
    except Exception as exc:  # noqa: BLE001 - a bug: one line, and the traceback on request
        return _report(console, exc, [f"internal error: {type(exc).__name__}: {exc} "
                                      "(run again with --debug for the traceback, and report it)"], EXIT_FAILED, debug)


def _report(console: Console, exc: BaseException, problems: list[str], code: int, debug: bool) -> int:
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    for line in problems:
        console.print(f"[red]error:[/] {escape(line)}")
    return code


if __name__ == "__main__":
    sys.exit(main())
