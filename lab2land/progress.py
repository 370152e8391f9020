"""Build progress for people: a line per run as it starts and finishes, a summary table at the end.

Uses rich, which degrades to plain lines when the output is not a terminal (cron, CI logs).
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .build import BuildSummary, Reporter
from .plan import Run
from .publisher import Outcome

_STYLE = {"ok": "green", "degraded": "bold yellow", "failed": "bold red", "unchanged": "dim"}
_MARK = {"ok": "[green]✓[/]", "degraded": "[yellow]![/]", "failed": "[red]✗[/]", "unchanged": "[dim]=[/]"}


class ConsoleReporter(Reporter):
    """Prints build events to stderr."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True, highlight=False, soft_wrap=True)
        self.total = 0
        self.done = 0
        self.clock = time.monotonic()

    def planned(self, runs: list[Run]) -> None:
        self.total = len(runs)
        self.console.print(f"[bold]lab2land[/]: {len(runs)} run(s) planned")

    def started(self, run: Run) -> None:
        self.console.print(f"  [cyan]▶[/] {escape(run.name)} started")

    def finished(self, outcome: Outcome) -> None:
        self.done += 1
        mark = _MARK[outcome.status]
        tail = f" — {escape(outcome.summary)}" if outcome.summary else ""
        self.console.print(f"  {mark} \\[{self.done}/{self.total}] {escape(outcome.run.name)} {outcome.status} "
                           f"({outcome.duration_s:.1f} s){tail}")

    def summary(self, summary: BuildSummary) -> None:
        table = Table(title="Build summary", title_justify="left")
        for column in ("report", "parameters", "status", "version", "time"):
            table.add_column(column)
        for o in summary.outcomes:
            table.add_row(escape(o.run.report), escape(o.run.label or "—"), f"[{_STYLE[o.status]}]{o.status}[/]",
                          o.version_id or "—", f"{o.duration_s:.1f} s")
        self.console.print(table)
        failed, degraded = len(summary.failed), len(summary.degraded)
        elapsed = time.monotonic() - self.clock
        verdict = ", ".join(filter(None, [f"[red]{failed} failed[/]" if failed else "",
                                          f"[yellow]{degraded} degraded[/] (breached checks; not latest unless "
                                          "promote_degraded)" if degraded else ""])) or "[green]all good[/]"
        site = escape(str(summary.site_dir))
        self.console.print(f"{len(summary.outcomes)} run(s) in {elapsed:.1f} s: {verdict}. Site: {site}")
        for note in summary.notes:
            self.console.print(f"[yellow]note[/]: {escape(note)}")
