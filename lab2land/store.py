"""Versions on disk: ``<site>/<report>/<version>/`` with ``index.html``, the executed notebook and
``manifest.json``.

A version is written to a staging folder on the same filesystem and renamed into place
(``os.replace``), so a reader never sees half a version and a killed publish leaves nothing
behind but staging, which the next build removes. A published version is never modified.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock, Timeout

from .errors import PublishLocked, SiteWriteError
from .version import Status, Version, read_manifest

MANIFEST = "manifest.json"
STAGING = ".staging"
LOCK = ".publish.lock"
LOCK_WAIT_S = 600  # how long a publish waits for another one of the same site
VERSION_RE = re.compile(r"^\d{8}T\d{6}Z(-[a-z0-9][a-z0-9-]*)?$")
# A file or folder name that stays where it is put: no separators, no dot-names, no "..".
SAFE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    mode = "wb" if isinstance(data, bytes) else "w"
    try:
        with open(tmp, mode, **({} if isinstance(data, bytes) else {"encoding": "utf-8"})) as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def slug(text: str, max_length: int = 40) -> str:
    """A URL-friendly lower-case form of ``text`` (``"North America"`` → ``"north-america"``).

    Longer than ``max_length``, it is cut and ends with a hash of the whole text, so that long
    parameter values still give short, distinct names (file names are limited to 255 bytes).
    """
    value = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "x"
    if len(value) > max_length:
        digest = hashlib.sha256(str(text).encode("utf-8", "surrogatepass")).hexdigest()[:10]
        value = f"{value[:max_length - 11].rstrip('-')}-{digest}"
    return value


def safe_file_name(name: str, max_length: int = 100) -> str:
    """``name`` as a file name a version folder accepts (``SAFE_NAME_RE``): every run of other
    characters becomes "-" (``"My Report (draft).ipynb"`` → ``"My-Report-draft.ipynb"``)."""
    stem, dot, suffix = name.rpartition(".") if "." in name[1:] else (name, "", "")
    clean = re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-_")[:max_length] or "notebook"
    suffix = re.sub(r"[^A-Za-z0-9]+", "", suffix)[:16]
    return f"{clean}.{suffix}" if dot and suffix else clean


def version_stamp(when: datetime) -> str:
    """The time part of a version id: sorts by time and reads well in a URL."""
    return when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


class Store:
    """The published versions under one site folder."""

    def __init__(self, site_dir: Path):
        self.site_dir = Path(site_dir)

    # --- locking and staging ---------------------------------------------------------------

    @contextmanager
    def lock(self, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
        """Serialize publishes of one site (cron and a person may start one at the same time).

        Raises:
            PublishLocked: another publish held the lock for ``wait_s`` seconds.
            SiteWriteError: the site folder cannot be created or written.
        """
        lock = FileLock(str(self.site_dir / LOCK))
        try:
            self.site_dir.mkdir(parents=True, exist_ok=True)
            lock.acquire(timeout=wait_s)
        except Timeout:
            raise PublishLocked(f"{self.site_dir}: another publish has held {LOCK} for over {wait_s:.0f} s "
                                "(wait longer with `build --wait SECONDS`)") from None
        except OSError as exc:
            raise SiteWriteError(f"{self.site_dir}: cannot write the site folder ([site] output): "
                                 f"{exc.strerror or exc}") from None
        try:
            yield
        finally:
            lock.release()

    def clean_staging(self) -> None:
        """Remove what a killed publish left in staging (never a published version)."""
        shutil.rmtree(self.site_dir / STAGING, ignore_errors=True)

    def new_staging(self) -> Path:
        path = self.site_dir / STAGING / uuid.uuid4().hex
        path.mkdir(parents=True)
        return path

    # --- versions --------------------------------------------------------------------------

    def report_dir(self, report: str) -> Path:
        """The folder of ``report``'s versions; a name that would lead elsewhere is refused."""
        return self._inside(self.site_dir, report)

    @staticmethod
    def _inside(folder: Path, name: str) -> Path:
        # The config refuses such names first; this is the last line, for library callers.
        if not SAFE_NAME_RE.match(name):
            raise ValueError(f"{name!r}: not a safe file name inside {folder} (letters, digits, '.', '-', '_')")
        return folder / name

    def allocate_id(self, report: str, stamp: str, variant: str | None) -> str:
        """A version id not yet used by ``report``: ``<stamp>[-<variant>][-<n>]``."""
        base = f"{stamp}-{variant}" if variant else stamp
        candidate, n = base, 2
        while (self.report_dir(report) / candidate).exists():
            candidate, n = f"{base}-{n}", n + 1
        return candidate

    def commit_version(self, version: Version, files: dict[str, str | bytes]) -> Path:
        """Publish one version atomically: its ``files`` (names to contents) and its manifest."""
        final = self._inside(self.report_dir(version.report), version.version_id)
        if final.exists():
            raise FileExistsError(f"{final}: version already published; versions are never replaced")
        staging = self.new_staging()
        try:
            for name, content in files.items():
                target = self._inside(staging, name)
                if isinstance(content, bytes):
                    target.write_bytes(content)
                else:
                    target.write_text(content, encoding="utf-8")
            (staging / MANIFEST).write_text(json.dumps(version.to_manifest(), indent=2, sort_keys=True),
                                            encoding="utf-8")
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging, final)  # atomic on one filesystem; staging lives inside the site
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        version.path = version.version_id
        return final

    def versions(self, report: str) -> list[Version]:
        """A report's published versions, newest first. Unreadable manifests are skipped."""
        found: list[Version] = []
        folder = self.report_dir(report)
        if not folder.is_dir():
            return found
        for child in folder.iterdir():
            if not VERSION_RE.match(child.name):
                continue
            try:
                found.append(read_manifest((child / MANIFEST).read_bytes(), child.name))
            except (OSError, ValueError):  # pydantic's ValidationError is a ValueError
                continue
        found.sort(key=lambda v: (v.created or "", v.path), reverse=True)
        return found

    def prune(self, report: str, keep: int, protect: frozenset[str] = frozenset()) -> list[str]:
        """Delete all but the newest ``keep`` versions of each variant.

        Never deleted: the latest good version (under either ``promote_degraded`` rule), the
        folders in ``protect`` (pinned versions), and the version each kept version's "What
        changed" page compares with, so no kept page links to a removed version. Returns the ids
        removed; each is moved into staging first, so it disappears atomically.
        """
        removed = []
        by_variant: dict[str, list[Version]] = {}
        for version in self.versions(report):
            by_variant.setdefault(version.variant, []).append(version)
        for versions in by_variant.values():
            kept = {v.path for v in versions[:keep]} | set(protect)
            kept |= {v.path for rule in (False, True) for v in latest_by_variant(versions, rule).values()}
            kept |= {v.previous for v in versions if v.path in kept and v.previous}
            for version in versions[keep:]:
                if version.path in kept:
                    continue
                trash = self.new_staging()
                os.replace(self.report_dir(report) / version.path, trash / "old")
                shutil.rmtree(trash, ignore_errors=True)
                removed.append(version.path)
        return removed


def latest_by_variant(versions: list[Version], promote_degraded: bool = False) -> dict[str, Version]:
    """For each variant, the newest version readers should see: the newest that passed (``ok``),
    or with ``promote_degraded`` also one that breached a check. Failed versions never are."""
    latest: dict[str, Version] = {}
    for version in versions:  # newest first
        if version.status is Status.OK or (promote_degraded and version.complete):
            latest.setdefault(version.variant, version)
    return latest


def previous_complete(versions: list[Version], variant: str, before: str | None = None) -> Version | None:
    """The newest complete version of ``variant`` (created before ``before``, if given)."""
    return next((v for v in versions if v.variant == variant and v.complete
                 and (before is None or (v.created or "") < before)), None)
