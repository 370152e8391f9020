"""lab2land.vendor's packages built from a recipe (vendor/<name>/) rather than packed from npm.

The real build runs in test_wheel (a wheel built from the tracked sources builds the bundle),
and test_dashboard_paint checks in Chromium that the bundle registers its trace types."""

from __future__ import annotations

import json
import shutil

import pytest

from lab2land import vendor

BUILT = [key for key, pkg in vendor.PACKAGES.items() if "build" in pkg]


def test_some_packages_are_built_from_a_recipe():
    assert {"plotly-cartesian", "plotly-svg"} <= set(BUILT)


@pytest.mark.parametrize("key", BUILT)
def test_each_recipe_is_the_pinned_one_and_builds_the_pinned_release(key):
    pkg = vendor.PACKAGES[key]
    recipe = vendor.RECIPES_DIR / pkg["build"]
    assert vendor.recipe_integrity(recipe) == pkg["integrity"], (
        f"{recipe} changed: pin its new recipe_integrity() in lab2land/vendor.py")
    manifest = json.loads((recipe / "package.json").read_text(encoding="utf-8"))
    assert manifest["dependencies"][pkg["name"]] == pkg["version"]
    lock = json.loads((recipe / "package-lock.json").read_text(encoding="utf-8"))
    locked = lock["packages"][f"node_modules/{pkg['name']}"]
    assert locked["version"] == pkg["version"] and locked["integrity"].startswith("sha512-")
    # Every package npm ci installs is checked against the lockfile.
    assert all(entry.get("integrity") for path, entry in lock["packages"].items() if path)


def _copy_recipe(key, dest):
    recipe = dest / vendor.PACKAGES[key]["build"]
    shutil.copytree(vendor.RECIPES_DIR / vendor.PACKAGES[key]["build"], recipe,
                    ignore=shutil.ignore_patterns("node_modules"))
    return recipe


def test_a_changed_recipe_is_refused_before_anything_is_installed(tmp_path, monkeypatch):
    recipe = _copy_recipe("plotly-cartesian", tmp_path / "recipes")
    (recipe / "build.js").write_text('require("child_process").execSync("touch pwned");\n', encoding="utf-8")
    monkeypatch.setattr(vendor, "RECIPES_DIR", tmp_path / "recipes")
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(vendor.FetchError, match="does not match the pinned integrity of plotly.js@"):
        vendor._npm_install_recipe(shutil.which("npm") or "npm", work, vendor.PACKAGES["plotly-cartesian"])
    assert not list(work.rglob("node_modules")) and not list(tmp_path.rglob("pwned"))


def test_a_missing_recipe_says_where_it_was_looked_for(tmp_path, monkeypatch):
    monkeypatch.setattr(vendor, "RECIPES_DIR", tmp_path / "nowhere")
    with pytest.raises(vendor.FetchError, match=r"nowhere.*package-lock\.json.*full checkout or sdist"):
        vendor._npm_install_recipe("npm", tmp_path, vendor.PACKAGES["plotly-cartesian"])


def test_a_bundle_built_with_other_trace_types_is_not_the_pinned_one(tmp_path, monkeypatch):
    """The trace lists are lab2land's, passed to build.js: changing one rebuilds that bundle."""
    vendor_dir = tmp_path / "vendor"
    shutil.copytree(vendor.VENDOR_DIR / "plotly-svg", vendor_dir / "plotly-svg")
    assert vendor.present("plotly-svg", vendor_dir)
    changed = {**vendor.PACKAGES["plotly-svg"], "traces": ("scatter", "bar")}
    monkeypatch.setitem(vendor.PACKAGES, "plotly-svg", changed)
    assert not vendor.present("plotly-svg", vendor_dir)
