"""Data sources → content-hashed snapshots.

Each source a build needs is loaded once into an immutable snapshot file under
``<project>/.lab2land/snapshots/`` named by its content hash; notebooks receive the snapshot's
path as the parameter named after the source. The hash is part of the rebuild cache key, so a
changed row re-runs exactly the reports that read it.

Loaders are a registry keyed by source kind (``path``, ``sql``, ``loader``).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from .config import Config, SourceConfig

SNAPSHOTS = Path(".lab2land") / "snapshots"
LOADER_TIMEOUT_S = 1800  # a loader script running longer is stopped and its source fails
_KINDS = {"int": "iu", "float": "fiu", "str": "OSU", "bool": "b", "datetime": "M"}


class SourceError(Exception):
    """A source could not be loaded or does not match what its report expects."""


@dataclass
class Snapshot:
    """One loaded source: where its snapshot is and what it contained."""

    name: str
    path: str  # absolute path of the snapshot file or folder
    hash: str  # sha256 of the content
    rows: int | None
    loaded: str  # ISO time
    kind: str

    def record(self, project: Path) -> dict:
        """What a manifest records of this snapshot: its path relative to ``project`` (manifests
        are served to readers and name no folder of the build machine)."""
        data = asdict(self)
        path = Path(self.path)
        data["path"] = path.relative_to(project).as_posix() if path.is_relative_to(project) else path.name
        data["file"] = path.name
        return data


def _hash_path(path: Path) -> str:
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        digest.update(str(file.relative_to(path if path.is_dir() else path.parent)).encode())
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _suffix(path: Path) -> str:
    return path.suffix.lower().lstrip(".")


def read_frame(path: Path):
    """Read a snapshot file with pandas, by its extension."""
    import pandas as pd

    readers = {"csv": pd.read_csv, "parquet": pd.read_parquet, "json": pd.read_json}
    if _suffix(path) not in readers:
        raise SourceError(f"{path.name}: cannot read files of type {path.suffix!r} (expected .csv, .parquet or .json)")
    return readers[_suffix(path)](path)


def _count_rows(path: Path) -> int | None:
    """Rows of a snapshot file, or None when the format does not say (folders, other JSON)."""
    if path.is_dir():
        return None
    if _suffix(path) == "csv":
        # Records, not lines: a quoted field may span lines.
        with open(path, newline="", encoding="utf-8", errors="replace") as fh:
            return max(sum(1 for _ in csv.reader(fh)) - 1, 0)
    if _suffix(path) == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    if _suffix(path) == "json":
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            return None
        return len(data) if isinstance(data, list) else None
    return None


def _store(project: Path, name: str, produced: Path, ext: str) -> tuple[Path, str]:
    """Move/copy ``produced`` into the content-addressed snapshot folder."""
    digest = _hash_path(produced)
    folder = project / SNAPSHOTS
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (f"{name}-{digest[:16]}.{ext}" if ext else f"{name}-{digest[:16]}")
    if target.exists():
        os.utime(target)  # in use again: prune_snapshots measures age from the last use
        return target, digest
    tmp = folder / f".{target.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
    if produced.is_dir():
        shutil.copytree(produced, tmp)
    else:
        shutil.copyfile(produced, tmp)
    try:
        os.replace(tmp, target)
    except OSError:  # a concurrent build stored the same folder first: same content, keep theirs
        if not target.exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    return target, digest


def _load_path(project: Path, name: str, source: SourceConfig, workdir: Path) -> Path:
    path = project / source.path
    if not path.exists():
        raise SourceError(f"file not found: {source.path!r} (looked in {project})")
    return path


def _sqlite_file(url) -> str | None:
    """The file a ``sqlite`` URL names, or None for in-memory and ``file:`` URI databases."""
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        return None
    return database


def resolve_url(project: Path, url: str) -> str:
    """The URL to connect to: a relative SQLite path is made absolute, relative to the project
    (``sqlite:///data/x.db``); ``postgresql://`` uses psycopg 3 when psycopg2 is not installed."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        return url  # create_engine reports it, with the source's name
    database = _sqlite_file(parsed)
    if database and not Path(database).is_absolute():
        parsed = parsed.set(database=str((project / database).resolve()))
    if parsed.drivername == "postgresql" and not _importable("psycopg2") and _importable("psycopg"):
        parsed = parsed.set(drivername="postgresql+psycopg")  # SQLAlchemy 2.0 defaults to psycopg2
    return parsed.render_as_string(hide_password=False)


def _importable(module: str) -> bool:
    from importlib.util import find_spec

    return find_spec(module) is not None


def _load_sql(project: Path, name: str, source: SourceConfig, workdir: Path) -> Path:
    import sqlalchemy
    from sqlalchemy.engine import make_url

    problem = url_problem(source.url)
    if problem:
        raise SourceError(problem)
    url = resolve_url(project, source.url)
    database = _sqlite_file(make_url(url))
    if database and not Path(database).exists():  # SQLite would create an empty file and fail later
        raise SourceError(f"database file not found: {source.url!r} (looked for {database})")
    try:
        engine = sqlalchemy.create_engine(url)
        try:
            with engine.connect() as conn:
                result = conn.execute(sqlalchemy.text(_literal_sql(source.sql)))
                columns = list(result.keys())
                rows = [tuple(row) for row in result]  # plain tuples: pandas probes Row objects slowly
        finally:
            engine.dispose()
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise SourceError(f"query failed against {_redact(source.url)}: {_db_message(exc)}") from None
    except ImportError as exc:
        raise SourceError(f"no database driver for {_redact(source.url)}: {exc} "
                          "(install it, e.g. `pip install 'psycopg[binary]'` for PostgreSQL)") from None
    out = workdir / f"{name}.{source.format}"
    if source.format == "csv":
        # The csv module writes what pandas' to_csv would, without importing pandas: a no-op
        # rebuild that only re-checks a query stays fast.
        with open(out, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator="\n")  # as pandas writes it
            writer.writerow(columns)
            writer.writerows(rows)
    else:
        import pandas as pd

        _write_frame(pd.DataFrame.from_records(rows, columns=columns, coerce_float=True), out, source.format)
    return out


# SQLAlchemy's own pattern for `:name` bind parameters in text() (sqlalchemy.sql.elements.TextClause).
_BIND_PARAM = re.compile(r"(?<![:\w\x5c]):(\w+)(?![:\w])", re.UNICODE)


def _literal_sql(sql: str) -> str:
    """``sql`` for ``text()`` with nothing taken as a bind parameter: a source's query has none, so a
    ``':x'`` or ``'{"a":1}'`` literal stays text (escaped ``\\:``); text() also escapes ``%`` for
    drivers whose placeholders use it (psycopg), which raw driver SQL would not."""
    return _BIND_PARAM.sub(lambda m: "\\:" + m.group(1), sql)


def _db_message(exc: Exception) -> str:
    """The driver's own words, first line only (no SQL echo, no links to SQLAlchemy's docs)."""
    orig = getattr(exc, "orig", None)
    if orig is not None:
        text = str(orig).strip().splitlines()
        return f"{type(orig).__name__}: {text[0] if text else ''}"
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _write_frame(frame, out: Path, fmt: str) -> None:
    if fmt == "csv":
        frame.to_csv(out, index=False)
    elif fmt == "parquet":
        frame.to_parquet(out, index=False)
    else:
        frame.to_json(out, orient="records", date_format="iso")


def url_problem(url: str) -> str | None:
    """Why ``url`` is not a database URL SQLAlchemy can read, or None if it is one."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(url)
    except ArgumentError:
        return (f"not a database URL: {_redact(url)} (expected e.g. sqlite:///data/shop.sqlite "
                "or postgresql://user@host/dbname)")
    return None


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL: still hide what looks like "user:password@"
        return repr(re.sub(r":[^:@/]*@", ":***@", url))


def _load_script(project: Path, name: str, source: SourceConfig, workdir: Path) -> Path:
    script = project / source.loader
    if not script.is_file():
        raise SourceError(f"loader script not found: {source.loader!r}")
    out = workdir / f"{name}.{source.format}"
    env = {**os.environ, "LAB2LAND_OUTPUT": str(out), "LAB2LAND_PROJECT": str(project)}
    try:
        with open(workdir / "stdout", "wb") as stdout:
            proc = subprocess.run([sys.executable, str(script), str(out)], cwd=project, env=env, stdout=stdout,
                                  stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=LOADER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise SourceError(f"loader {source.loader} did not finish within {LOADER_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-5:]
        raise SourceError(f"loader {source.loader} exited with status {proc.returncode}: " + " | ".join(tail))
    if out.exists():
        return out
    if (workdir / "stdout").stat().st_size == 0:
        raise SourceError(f"loader {source.loader} wrote nothing (print the data, or write it to sys.argv[1])")
    os.replace(workdir / "stdout", out)
    return out


LOADERS: dict[str, Callable[[Path, str, SourceConfig, Path], Path]] = {
    "path": _load_path, "sql": _load_sql, "loader": _load_script,
}


def _type_problem(series, kind: str) -> str | None:
    """Why ``series`` does not hold values of the declared ``kind``, or None."""
    import pandas as pd

    dtype = series.dtype
    if dtype.kind in _KINDS[kind] or (kind == "str" and isinstance(dtype, pd.StringDtype)):
        return None
    if kind == "datetime" and (dtype.kind == "O" or isinstance(dtype, pd.StringDtype)):
        # CSV and JSON have no date type: ISO text that parses counts as datetime.
        try:
            pd.to_datetime(series.dropna(), format="ISO8601")
            return None
        except (ValueError, TypeError):
            return f"expected datetime, got text that does not parse as ISO dates (first: {series.dropna().iloc[0]!r})"
    hint = ""
    if kind == "int" and dtype.kind == "f" and series.isna().any():
        hint = " (it has missing values, which pandas reads as float: declare it float)"
    return f"expected {kind}, got {dtype}{hint}"


def check_columns(name: str, source: SourceConfig, snapshot: Path) -> None:
    """Compare a snapshot's columns with the source's declared ``columns`` (if any)."""
    if not source.columns or snapshot.is_dir():
        return
    frame = read_frame(snapshot)
    problems = []
    for column, kind in source.columns.items():
        if column not in frame.columns:
            problems.append(f"missing column {column!r} (has: {', '.join(map(str, frame.columns))})")
        elif kind not in _KINDS:
            problems.append(f"column {column!r}: unknown type {kind!r} (expected one of {', '.join(_KINDS)})")
        elif (problem := _type_problem(frame[column], kind)):
            problems.append(f"column {column!r}: {problem}")
    if problems:
        raise SourceError("snapshot does not match the declared `columns`: " + "; ".join(problems))


def load_source(project: Path, name: str, source: SourceConfig) -> Snapshot:
    """Load one source into a snapshot. Raises SourceError naming what went wrong."""
    kind = source.kind  # exactly one, checked when the config was loaded
    with tempfile.TemporaryDirectory(prefix=f"lab2land-{name}-") as tmp:
        produced = LOADERS[kind](project, name, source, Path(tmp))
        ext = _suffix(produced) if produced.is_file() else ""
        check_columns(name, source, produced)
        target, digest = _store(project, name, produced, ext)
    return Snapshot(name, str(target), digest, _count_rows(target),
                    datetime.now(UTC).isoformat(timespec="seconds"), kind)


def load_sources(config: Config, names: set[str]) -> tuple[dict[str, Snapshot], dict[str, str]]:
    """Load each named source once. Returns (snapshots, errors) by source name."""
    snapshots, errors = {}, {}
    for name in sorted(names):
        try:
            snapshots[name] = load_source(config.project_dir, name, config.sources[name])
        except SourceError as exc:
            errors[name] = str(exc)
        except Exception as exc:  # a loader's own bug: report it on the affected runs, go on
            errors[name] = f"{type(exc).__name__}: {exc}"
    if snapshots:
        prune_snapshots(config.project_dir, {s.path for s in snapshots.values()})
    return snapshots, errors


def prune_snapshots(project: Path, keep: set[str], older_than_s: float = 7 * 86400) -> None:
    """Delete snapshots not in ``keep`` (paths) that no build has used for ``older_than_s``.

    Versions keep their fingerprint (hash, rows, time) in the manifest, not the file, so an old
    snapshot is only worth keeping while a build may still reuse it.
    """
    folder = project / SNAPSHOTS
    if not folder.is_dir():
        return
    cutoff = time.time() - older_than_s
    for child in folder.iterdir():
        try:
            if str(child) not in keep and child.stat().st_mtime < cutoff:
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        except FileNotFoundError:  # a concurrent build pruned it first
            continue
