"""Every error lab2land reports to a user, in one hierarchy.

The command line catches :class:`Lab2landError` once and prints its ``problems``, one line each,
then exits with its ``exit_code``; no user ever sees a traceback for an error that has a name
(``--debug`` shows it). Library callers catch the class they care about.

Exit codes: 0 success, 1 a run failed (the other reports still published), 2 bad input
(configuration, parameters, command-line usage), 3 a run breached a check of its report (its
version is published as ``degraded``), 4 an environment problem (missing assets, a
site folder that cannot be written, a port in use, a site locked by another publish),
130 interrupted.
"""

from __future__ import annotations

from collections.abc import Iterable

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_DEGRADED, EXIT_ENVIRONMENT, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130


class Lab2landError(Exception):
    """Base of lab2land's errors: one or more problems, each a line naming what is wrong.

    Args:
        problems: One message, or one line per problem (all are reported at once).
    """

    exit_code = EXIT_USAGE

    def __init__(self, problems: str | Iterable[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class ConfigError(Lab2landError):
    """Problems in the project's configuration or inputs, found before any kernel starts."""


class ParameterError(Lab2landError, ValueError):
    """Invalid parameter names or values (``-p``, ``publish.toml`` or a dashboard's address)."""


class UsageError(Lab2landError):
    """A command was called with arguments it cannot use."""


class ProjectExists(UsageError):
    """``lab2land new`` was pointed at a folder that already holds a project."""


class EnvironmentProblem(Lab2landError):
    """The machine, not the input, is in the way: something is missing, taken or not writable."""

    exit_code = EXIT_ENVIRONMENT


class AssetError(EnvironmentProblem):
    """A shared offline asset is missing or could not be fetched; the message says how to fix it."""


class PublishLocked(EnvironmentProblem):
    """Another publish holds the site's lock."""


class ServeError(EnvironmentProblem):
    """The server cannot start (e.g. the port is taken)."""


class SiteWriteError(EnvironmentProblem):
    """The site folder (or the project's state folder) cannot be created or written."""
