"""The version store: atomic commits, ids that never collide, immutability, retention."""

from __future__ import annotations

import json
import threading

import pytest

from lab2land.store import STAGING, PublishLocked, Store, latest_by_variant, slug, write_atomic
from lab2land.version import MANIFEST_SCHEMA, Version


def commit(store: Store, version_id: str, status: str = "ok", variant: str = "default", created: str = "") -> None:
    version = Version(report="r", version_id=version_id, status=status, variant=variant,
                      created=created or version_id[:16])
    store.commit_version(version, {"index.html": f"<p>{version_id}</p>", "nb.ipynb": b"{}"})


def test_commit_is_atomic_and_never_replaces_a_version(tmp_path):
    store = Store(tmp_path)
    commit(store, "20260101T000000Z")
    folder = tmp_path / "r" / "20260101T000000Z"
    assert sorted(p.name for p in folder.iterdir()) == ["index.html", "manifest.json", "nb.ipynb"]
    assert json.loads((folder / "manifest.json").read_text())["schema"] == MANIFEST_SCHEMA == 2
    with pytest.raises(FileExistsError, match="never replaced"):
        commit(store, "20260101T000000Z", status="failed")
    assert json.loads((folder / "manifest.json").read_text())["status"] == "ok"
    assert not any((tmp_path / STAGING).iterdir())  # the refused commit left only empty staging


def test_allocate_id_adds_a_counter_on_collision(tmp_path):
    store = Store(tmp_path)
    assert store.allocate_id("r", "20260101T000000Z", "north") == "20260101T000000Z-north"
    commit(store, "20260101T000000Z-north", variant="north")
    assert store.allocate_id("r", "20260101T000000Z", "north") == "20260101T000000Z-north-2"
    assert store.allocate_id("r", "20260101T000000Z", None) == "20260101T000000Z"


def test_versions_newest_first_and_latest_is_never_a_failure(tmp_path):
    store = Store(tmp_path)
    commit(store, "20260101T000000Z")
    commit(store, "20260102T000000Z")
    commit(store, "20260103T000000Z", status="failed")
    (tmp_path / "r" / "not-a-version").mkdir()
    (tmp_path / "r" / "20260104T000000Z").mkdir()  # no manifest: ignored, not a crash
    ids = [v.version_id for v in store.versions("r")]
    assert ids == ["20260103T000000Z", "20260102T000000Z", "20260101T000000Z"]
    assert latest_by_variant(store.versions("r"))["default"].version_id == "20260102T000000Z"


def test_prune_keeps_the_newest_and_always_the_latest_good(tmp_path):
    store = Store(tmp_path)
    commit(store, "20260101T000000Z")
    for day in range(2, 6):
        commit(store, f"2026010{day}T000000Z", status="failed")
    commit(store, "20260101T000000Z-south", variant="south")
    removed = store.prune("r", keep=2)
    assert sorted(removed) == ["20260102T000000Z", "20260103T000000Z"]
    ids = [v.version_id for v in store.versions("r")]
    assert ids == ["20260105T000000Z", "20260104T000000Z", "20260101T000000Z-south", "20260101T000000Z"]


def test_lock_serializes_publishes(tmp_path):
    store = Store(tmp_path)
    held, release = threading.Event(), threading.Event()

    def hold():
        with store.lock():
            held.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(10)
    other = Store(tmp_path)
    with pytest.raises(PublishLocked, match="another publish has held"), other.lock(wait_s=0.2):
        pass
    release.set()
    thread.join()
    with other.lock(wait_s=1):
        pass


def test_write_atomic_and_slug(tmp_path):
    target = tmp_path / "a" / "catalog.json"
    write_atomic(target, "one")
    write_atomic(target, b"two")
    assert target.read_bytes() == b"two" and [p.name for p in target.parent.iterdir()] == ["catalog.json"]
    assert slug("North America / EMEA") == "north-america-emea" and slug("!!!") == "x"
