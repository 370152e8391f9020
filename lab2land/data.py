"""Data sources → content-hashed snapshots.

Each source a build needs is loaded once into an immutable snapshot file under
``<project>/.lab2land/snapshots/`` named by its content hash; notebooks receive the snapshot's
path as the parameter named after the source. The hash is part of the rebuild cache key, so a
changed row re-runs exactly the reports that read it.

Loaders are a registry keyed by source kind (``path``, ``sql``, ``loader``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional

from .config import Config, SourceConfig

SNAPSHOTS = Path(".lab2land") / "snapshots"
_KINDS = {"int": "iu", "float": "fiu", "str": "OSU", "bool": "b", "datetime": "M"}


class SourceError(Exception):
    """A source could not be loaded or does not match what its report expects."""


@dataclass
class Snapshot:
    """One loaded source: where its snapshot is and what it contained."""

    name: str
    path: str  # absolute path of the snapshot file or folder
    hash: str  # sha256 of the content
    rows: Optional[int]
    loaded: str  # ISO time
    kind: str

    def record(self) -> dict:
        """What a manifest records of this snapshot."""
        data = asdict(self)
        data["file"] = Path(self.path).name
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


def _count_rows(path: Path) -> Optional[int]:
    if path.is_dir():
        return None
    if _suffix(path) == "csv":
        with open(path, "rb") as fh:
            return max(sum(1 for _ in fh) - 1, 0)
    if _suffix(path) == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    return None


def _store(project: Path, name: str, produced: Path, ext: str) -> tuple[Path, str]:
    """Move/copy ``produced`` into the content-addressed snapshot folder."""
    digest = _hash_path(produced)
    folder = project / SNAPSHOTS
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (f"{name}-{digest[:16]}.{ext}" if ext else f"{name}-{digest[:16]}")
    if not target.exists():
        tmp = folder / f".{target.name}.{os.getpid()}.tmp"
        if produced.is_dir():
            shutil.copytree(produced, tmp)
        else:
            shutil.copyfile(produced, tmp)
        os.replace(tmp, target)
    return target, digest


def _load_path(project: Path, name: str, source: SourceConfig, workdir: Path) -> Path:
    path = project / source.path
    if not path.exists():
        raise SourceError(f"file not found: {source.path!r} (looked in {project})")
    return path


def resolve_url(project: Path, url: str) -> str:
    """Make a relative SQLite path absolute, relative to the project (``sqlite:///data/x.db``)."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        return prefix + str((project / url[len(prefix):]).resolve())
    return url


def _load_sql(project: Path, name: str, source: SourceConfig, workdir: Path) -> Path:
    import pandas as pd
    import sqlalchemy

    url = resolve_url(project, source.url)
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
        raise SourceError(f"database file not found: {source.url!r}")
    try:
        engine = sqlalchemy.create_engine(url)
        try:
            with engine.connect() as conn:
                frame = pd.read_sql_query(sqlalchemy.text(source.sql), conn)
        finally:
            engine.dispose()
    except sqlalchemy.exc.SQLAlchemyError as exc:
        first = str(exc).splitlines()[0]
        raise SourceError(f"query failed against {_redact(source.url)}: {first}") from None
    out = workdir / f"{name}.{source.format}"
    _write_frame(frame, out, source.format)
    return out


def _write_frame(frame, out: Path, fmt: str) -> None:
    if fmt == "csv":
        frame.to_csv(out, index=False)
    elif fmt == "parquet":
        frame.to_parquet(out, index=False)
    else:
        frame.to_json(out, orient="records", date_format="iso")


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable url>"


def _load_script(project: Path, name: str, source: SourceConfig, workdir: Path) -> Path:
    script = project / source.loader
    if not script.is_file():
        raise SourceError(f"loader script not found: {source.loader!r}")
    out = workdir / f"{name}.{source.format}"
    env = {**os.environ, "LAB2LAND_OUTPUT": str(out), "LAB2LAND_PROJECT": str(project)}
    with open(workdir / "stdout", "wb") as stdout:
        proc = subprocess.run([sys.executable, str(script), str(out)], cwd=project, env=env, stdout=stdout,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=1800)
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


def source_kind(source: SourceConfig) -> str:
    """Which loader a source uses; exactly one of path / url+sql / loader must be set."""
    if source.path and not (source.url or source.sql or source.loader):
        return "path"
    if source.url and source.sql and not (source.path or source.loader):
        return "sql"
    if source.loader and not (source.path or source.url or source.sql):
        return "loader"
    raise SourceError("set exactly one of `path`, `url` + `sql`, or `loader`")


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
        elif frame[column].dtype.kind not in _KINDS[kind] and not (kind == "str" and frame[column].dtype == "string"):
            problems.append(f"column {column!r}: expected {kind}, got {frame[column].dtype}")
    if problems:
        raise SourceError("; ".join(problems))


def load_source(project: Path, name: str, source: SourceConfig) -> Snapshot:
    """Load one source into a snapshot. Raises SourceError naming what went wrong."""
    kind = source_kind(source)
    with tempfile.TemporaryDirectory(prefix=f"lab2land-{name}-") as tmp:
        produced = LOADERS[kind](project, name, source, Path(tmp))
        ext = _suffix(produced) if produced.is_file() else ""
        check_columns(name, source, produced)
        target, digest = _store(project, name, produced, ext)
    return Snapshot(name, str(target), digest, _count_rows(target),
                    datetime.now(timezone.utc).isoformat(timespec="seconds"), kind)


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
    return snapshots, errors


def prune_snapshots(project: Path, keep: set[str], older_than_s: float = 7 * 86400) -> None:
    """Delete snapshots no longer referenced by ``keep`` (paths) and older than a week."""
    folder = project / SNAPSHOTS
    if not folder.is_dir():
        return
    cutoff = time.time() - older_than_s
    for child in folder.iterdir():
        if str(child) not in keep and child.stat().st_mtime < cutoff:
            shutil.rmtree(child) if child.is_dir() else child.unlink()
