"""The typed version model: manifests of every schema read into it; a site written by an older
lab2land (schema 1, ``tests/data/site_schema1``) keeps working when the current code publishes on it."""

from __future__ import annotations

import json
import os
import shutil
import textwrap
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from pydantic import ValidationError

from conftest import ROOT, run_cli
from lab2land.store import Store, latest_by_variant
from lab2land.version import MANIFEST_SCHEMA, Status, Version, read_manifest

OLD_SITE = ROOT / "tests" / "data" / "site_schema1"
OLD_NORTH, OLD_SOUTH = "20261202T054806Z-north", "20261202T054806Z-south-true"


def test_status_is_an_enum_and_complete_means_ran_to_the_end():
    assert [s.value for s in Status] == ["ok", "degraded", "failed"]
    assert Status.OK.complete and Status.DEGRADED.complete and not Status.FAILED.complete
    assert Status("degraded") is Status.DEGRADED and Status.OK == "ok"


def test_unknown_status_or_time_is_refused_with_the_value():
    with pytest.raises(ValidationError, match="'finished'"):
        Version(report="r", version_id="20260101T000000Z", status="finished")
    with pytest.raises(ValidationError, match="yesterday"):
        Version(report="r", version_id="20260101T000000Z", status="ok", created="yesterday")


def test_schema_1_manifest_reads_and_writes_as_the_current_schema():
    text = (OLD_SITE / "sales" / OLD_SOUTH / "manifest.json").read_text()
    version = read_manifest(text, OLD_SOUTH)
    assert version.schema_version == 1 and version.status is Status.FAILED and not version.complete
    assert version.error.kind == "cell_error" and version.summary.endswith("raised ValueError: boom")
    assert version.metrics == {} and version.breaches == [] and version.previous is None
    written = version.to_manifest()
    assert written["schema"] == MANIFEST_SCHEMA and "log_tail" not in written and "path" not in written
    assert read_manifest(json.dumps(written), OLD_SOUTH) == version.model_copy(update={"schema_version": 2})


def test_store_skips_manifests_it_cannot_read(tmp_path):
    report = tmp_path / "r"
    shutil.copytree(OLD_SITE / "sales" / OLD_NORTH, report / OLD_NORTH)
    for name, text in {"20260101T000000Z": "{not json", "20260102T000000Z": '{"report": "r"}',
                       "20260103T000000Z": "[1, 2]"}.items():
        (report / name).mkdir()
        (report / name / "manifest.json").write_text(text)
    assert [v.path for v in Store(tmp_path).versions("r")] == [OLD_NORTH]


def old_site_project(root: Path) -> Path:
    """A project whose site was built by lab2land at f15ab59 (two versions, one failed)."""
    (root / "notebooks").mkdir(parents=True)
    shutil.copy(OLD_SITE / "sales.ipynb", root / "notebooks" / "sales.ipynb")
    shutil.copytree(OLD_SITE / "sales", root / "reports" / "sales")
    (root / "publish.toml").write_text(textwrap.dedent("""
        [site]
        title = "Old site"

        [reports.sales]
        notebook = "notebooks/sales.ipynb"
        title = "Sales"
        parameters = [{region = "north"}, {region = "south", fail = true}]
    """))
    return root


def test_current_code_publishes_on_a_schema_1_site(tmp_path):
    root = old_site_project(tmp_path)
    old_manifests = {p: p.read_bytes() for p in (root / "reports" / "sales").glob("*/manifest.json")}

    built = run_cli("build", "--force", project=root)
    assert built.returncode == 1, built.stderr  # south fails on purpose, as it did then

    # Old versions are never rewritten; the new ones are written with the current schema.
    assert {p: p.read_bytes() for p in old_manifests} == old_manifests
    versions = Store(root / "reports").versions("sales")
    new = [v for v in versions if v.path not in (OLD_NORTH, OLD_SOUTH)]
    assert len(versions) == 4 and {v.variant for v in new} == {"north", "south-true"}
    assert all(v.schema_version == MANIFEST_SCHEMA for v in new)
    latest = latest_by_variant(versions)
    assert latest["north"].path in {v.path for v in new} and "south-true" not in latest

    catalog = json.loads((root / "reports" / "catalog.json").read_text())["reports"]["sales"]
    listed = {v["id"]: v for v in catalog["versions"]}
    assert listed[OLD_NORTH]["status"] == "ok" and listed[OLD_NORTH]["metrics"] == {}
    assert listed[OLD_SOUTH]["status"] == "failed" and "ValueError: boom" in listed[OLD_SOUTH]["error"]
    assert catalog["variants"]["north"]["latest"] == latest["north"].version_id

    history = BeautifulSoup((root / "reports" / "sales" / "index.html").read_text(), "html.parser")
    links = {a["href"] for a in history.find_all("a", href=True)}
    assert f"{OLD_NORTH}/index.html" in links and f"{OLD_SOUTH}/index.html" in links
    # The new north version is compared with the old one: its changes page exists and links back.
    assert latest["north"].previous == OLD_NORTH
    changes = (root / "reports" / "sales" / latest["north"].path / "changes.html").read_text()
    assert f"../{OLD_NORTH}/index.html" in changes

    diffed = run_cli("diff", "sales", OLD_NORTH, latest["north"].version_id, "--format", "json", project=root)
    assert diffed.returncode == 0, diffed.stderr
    [found] = json.loads(diffed.stdout)
    assert found["old"] == OLD_NORTH and found["parameters"] == [] and found["cells"] == []
    listing = run_cli("list", project=root, env={**os.environ, "COLUMNS": "200"})
    assert listing.returncode == 0 and latest["north"].version_id in " ".join(listing.stdout.split())
