"""Notifications: tell webhooks and mail recipients that a version failed, degraded, recovered or
was published.

After a build has committed its versions and written the site, :func:`notify_build` turns each
new version into one :class:`Event` and sends it to every target of ``[notify]`` whose ``on``
asks for it. A target that fails (refused, timed out, a 5xx answer) is retried with backoff,
then given up on for the rest of the build; every attempt that fails is logged, to the build
output (the ``lab2land.notify`` logger) and to ``.lab2land/logs/notify.log``. Nothing here ever
fails the build: the versions are committed before the first message leaves.

Secrets stay out of every log line: a webhook is named by its scheme and host only (its path
and query often are the token), and the SMTP password is read from the environment at send
time, never from the file, and never shown.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .errors import EnvironmentProblem
from .notifiers import GiveUp, Mailer, Retry, Webhook

if TYPE_CHECKING:  # config imports this module's checks
    from .config import Config

EVENTS = ("published", "failed", "degraded", "recovered")
DEFAULT_EVENTS = ("failed", "degraded", "recovered")
ATTEMPTS = 3
BACKOFF_S = (0.5, 2.0)  # waits before the 2nd and 3rd attempt
LOG = Path(".lab2land") / "logs" / "notify.log"
ERROR_CHARS = 2000  # of an error in a message: enough to read, short enough for any chat
_UNSAFE = re.compile(r"[\s\x00-\x1f\x7f<>\"'|\\`]")
_ADDRESS = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+$")

log = logging.getLogger("lab2land.notify")


class NotifyError(EnvironmentProblem):
    """``notify --test``: one or more targets did not take the test message."""


# --- config checks (called by lab2land.config) ------------------------------------------------

def url_problem(url: str) -> str | None:
    """What is wrong with ``url`` as a webhook or site address (None: nothing). The message never
    repeats the address: its path may be a token."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return f"expected an http:// or https:// address, got {f'scheme {parts.scheme!r}' if parts.scheme else 'none'}"
    if not parts.hostname:
        return "expected an http(s) address with a host name"
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when asked
    except ValueError:
        return "expected a port number from 1 to 65535 after the host"
    if _UNSAFE.search(url):  # it goes into chat markup (<url|text>) and pages: nothing that can break out
        return "expected an address without spaces, control characters, quotes, <, >, |, \\ or backticks"
    return None


def events_problem(events: list[str]) -> str | None:
    """What is wrong with an ``on`` list (None: nothing)."""
    unknown = [e for e in events if e not in EVENTS]
    if unknown:
        return f"unknown event {unknown[0]!r} (valid: {', '.join(EVENTS)})"
    return None if events else f"expected at least one event (valid: {', '.join(EVENTS)})"


def address_problem(value: str | list[str]) -> str | None:
    """What is wrong with a mail address, or a list of them (None: nothing)."""
    for address in [value] if isinstance(value, str) else value:
        if not _ADDRESS.match(address):
            return f"expected a mail address like name@example.com, got {address!r}"
    return None


# --- events -----------------------------------------------------------------------------------

def field_of(manifest: Any, key: str, default: Any = None) -> Any:
    """A field of a version's manifest (a dict today, a typed model later: read it here only)."""
    if isinstance(manifest, dict):
        return manifest.get(key, default)
    return getattr(manifest, key, default)


@dataclass(frozen=True)
class Event:
    """One thing readers may want to hear about: a new version and what it means."""

    kind: str  # "failed", "degraded", "recovered", "published" or "test"
    site: str
    report: str
    title: str
    variant: str
    variant_label: str
    version: str | None
    status: str
    error: str | None = None
    breaches: list[str] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)
    created: str | None = None

    def to_json(self) -> dict:
        return {"event": self.kind, **{k: v for k, v in asdict(self).items() if k != "kind"}}

    @property
    def headline(self) -> str:
        """``Sales (region=north): FAILED``: what a subject line or chat message starts with."""
        label = f" ({self.variant_label})" if self.variant_label else ""
        return f"{self.title}{label}: {self.kind.upper()}"

    def detail_lines(self) -> list[str]:
        lines = [f"Report: {self.title} ({self.report})"]
        if self.variant_label:
            lines.append(f"Variant: {self.variant_label}")
        lines += [f"Status: {self.status}", f"Version: {self.version or '—'}"]
        if self.error:
            lines.append(f"Error: {self.error}")
        if self.breaches:
            lines += ["Breached checks:", *(f"  - {b}" for b in self.breaches)]
        return lines


def kind_of(status: str, previous_status: str | None) -> str:
    """The event a new version is: its own trouble, a recovery from the previous one's, or news."""
    if status in ("failed", "degraded"):
        return status
    return "recovered" if previous_status in ("failed", "degraded") else "published"


def wants(on: Iterable[str], kind: str) -> bool:
    """Whether a target with this ``on`` list gets an event: "published" means every new version."""
    return kind == "test" or kind in on or "published" in on


def links(config: Config, report: str, variant: str, version_path: str, changes: bool) -> dict[str, str]:
    """Where to read about a version: absolute under ``[site] url``, else relative to the site folder."""
    paths = {"version": f"{report}/{version_path}/index.html", "history": f"{report}/index.html",
             "latest": f"{report}/latest/{variant}.html"}
    if changes:
        paths["changes"] = f"{report}/{version_path}/changes.html"
    base = config.site.url
    return {k: f"{base.rstrip('/')}/{p}" for k, p in paths.items()} if base else paths


def events_of(config: Config, outcomes: Iterable, published: dict[str, list] | None = None) -> list[Event]:
    """One event per version this build committed (``unchanged`` runs made none).

    Args:
        config: The project.
        outcomes: The build's outcomes (each with ``run``, ``status`` and ``version_id``).
        published: Each report's manifests, newest first, including this build's (read from the
            site when missing).
    """
    from .store import Store

    versions = dict(published or {})
    events = []
    for outcome in outcomes:
        if outcome.status not in ("ok", "degraded", "failed") or not outcome.version_id:
            continue
        run = outcome.run
        if run.report not in versions:
            versions[run.report] = Store(config.output_dir).versions(run.report)
        line = [m for m in versions[run.report] if field_of(m, "variant") == run.variant]
        index = next((i for i, m in enumerate(line) if field_of(m, "version_id") == outcome.version_id), None)
        manifest = line[index] if index is not None else {}
        previous = line[index + 1] if index is not None and index + 1 < len(line) else None
        status = str(field_of(manifest, "status", outcome.status))  # a Status enum or a str
        error = field_of(manifest, "error") or {}
        events.append(Event(
            kind=kind_of(status, field_of(previous, "status") if previous is not None else None),
            site=config.site.title, report=run.report, title=config.reports[run.report].title,
            variant=run.variant, variant_label=run.label, version=outcome.version_id, status=status,
            error=_cut(field_of(error, "summary") or None),
            breaches=[field_of(b, "message", str(b)) for b in field_of(manifest, "breaches") or []],
            links=links(config, run.report, run.variant, field_of(manifest, "path") or outcome.version_id,
                        bool(field_of(manifest, "previous"))),
            created=field_of(manifest, "created")))
    return events


def _cut(text: str | None, limit: int = ERROR_CHARS) -> str | None:
    return text if text is None or len(text) <= limit else text[:limit - 1] + "…"


def sample_event(config: Config) -> Event:
    """The message ``notify --test`` sends."""
    return Event(kind="test", site=config.site.title, report="lab2land-test", title="Test notification",
                 variant="", variant_label="", version=None, status="ok",
                 error=None, links={"site": f"{config.site.url.rstrip('/')}/index.html" if config.site.url
                                    else "index.html"},
                 created=datetime.now(UTC).isoformat(timespec="seconds"))


# --- targets and delivery -------------------------------------------------------------------

def targets(config: Config) -> list:
    """Every target of ``[notify]``: the webhooks in order, then the mail."""
    found: list = [Webhook(w, i) for i, w in enumerate(config.notify.webhooks)]
    if config.notify.email is not None:
        found.append(Mailer(config.notify.email))
    return found


class _Echo(logging.Handler):
    def __init__(self, console):
        super().__init__(logging.INFO)
        self.console = console

    def emit(self, entry: logging.LogRecord) -> None:
        from rich.markup import escape

        style = "yellow" if entry.levelno >= logging.WARNING else "dim"
        self.console.print(f"  [{style}]notify[/]: {escape(entry.getMessage())}")


def echo_to(console) -> None:
    """Show what notifications do (sent, retried, not sent) on a rich ``console`` (the CLI's)."""
    for handler in [h for h in log.handlers if isinstance(h, _Echo)]:
        log.removeHandler(handler)  # main() may run more than once in one process
    log.addHandler(_Echo(console))
    log.setLevel(logging.INFO)


def record(config: Config, level: int, message: str) -> None:
    """Log ``message`` (already free of secrets) and append it to ``.lab2land/logs/notify.log``."""
    log.log(level, message)
    path = config.project_dir / LOG
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"{datetime.now(UTC).isoformat(timespec='seconds')} {logging.getLevelName(level)} {message}\n")
    except OSError as exc:  # a log that cannot be written must not stop the messages
        log.warning("cannot append to %s: %s", path, exc.strerror or exc)


def deliver(config: Config, target, event: Event, sleep: Callable[[float], None] = time.sleep) -> str | None:
    """Send ``event`` to ``target``, retrying what may pass later; the problem, or None if sent."""
    about = f"{event.kind} of {event.report}" + (f"[{event.variant}]" if event.variant else "")
    for attempt in range(1, ATTEMPTS + 1):
        try:
            target.send(event)
        except GiveUp as exc:
            problem = target.redact(str(exc))
            record(config, logging.ERROR, f"{target.name}: {about} not sent: {problem}")
            return problem
        except Retry as exc:
            problem = target.redact(str(exc))
            last = attempt == ATTEMPTS
            record(config, logging.ERROR if last else logging.WARNING,
                   f"{target.name}: {about}: attempt {attempt}/{ATTEMPTS} failed: {problem}"
                   + (" (giving up)" if last else ""))
            if last:
                return problem
            sleep(BACKOFF_S[min(attempt, len(BACKOFF_S)) - 1])
        else:
            record(config, logging.INFO, f"{target.name}: sent {about}")
            return None
    return None


def notify_build(config: Config, outcomes: Iterable, published: dict[str, list] | None = None) -> list[str]:
    """Send this build's events to every target that asks for them; never raises (but Ctrl-C).

    Returns:
        One line per message not sent (also logged).
    """
    problems: list[str] = []
    all_targets: list = []
    try:
        all_targets = targets(config)
        if not all_targets:
            return problems
        events = events_of(config, outcomes, published)
        for target in all_targets:
            wanted = [e for e in events if wants(target.on, e.kind)]
            for n, event in enumerate(wanted):
                problem = deliver(config, target, event)
                if problem:
                    problems.append(f"{target.name}: {problem}")
                    # It failed for good: the next events would only make the build wait as long again.
                    if n + 1 < len(wanted):
                        record(config, logging.ERROR, f"{target.name}: {len(wanted) - n - 1} more message(s) "
                                                      "not sent in this build (it failed above)")
                    break
    except Exception as exc:  # noqa: BLE001 - a notification bug must never fail a build that published
        shown = f"{type(exc).__name__}: {exc}"
        for target in all_targets:
            shown = target.redact(shown)
        record(config, logging.ERROR, f"notifications stopped by an internal error: {shown}")
        problems.append(f"internal error: {shown}")
    return problems


def send_test(config: Config) -> list[str]:
    """``lab2land notify --test``: send a test message to every target, whatever its ``on``.

    Raises:
        NotifyError: naming each target that did not take it.
    """
    sent, problems = [], []
    for target in targets(config):
        problem = deliver(config, target, sample_event(config))
        (problems if problem else sent).append(f"{target.name}: {problem}" if problem else target.name)
    if problems:
        raise NotifyError([f"test message not sent to {p}" for p in problems])
    return sent
