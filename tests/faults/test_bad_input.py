"""Bad input from the config and the notebooks, as a hostile or unlucky user gives it: each case
is a clear one-line error (or a failed version), a named exit status, and a site that stays
inside its folder and consistent."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from conftest import run_cli, write_notebook
from lab2land.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE


def project(root: Path, reports: str, site: str = "") -> Path:
    write_notebook(root / "nb" / "hello.ipynb", "name = 'x'", "print('hello', name)")
    (root / "publish.toml").write_text(textwrap.dedent("""
        [site]
        title = "Faults"
        {site}
    """).format(site=site) + textwrap.dedent(reports), encoding="utf-8")
    return root


def error_lines(proc) -> list[str]:
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out
    return [line for line in out.splitlines() if line.startswith("error:")]


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("name", ["../escape", "../../x", "ABSOLUTE", ".staging", "assets",
                                  "dashboards", "a/b", "x" * 80, "white space", "Kpi"])
def test_report_names_that_would_leave_or_clash_with_the_site_are_config_errors(tmp_path, name):
    name = str(tmp_path / "abs-report") if name == "ABSOLUTE" else name
    reports = f'[reports.kpi]\nnotebook = "nb/hello.ipynb"\ntitle = "K"\n[reports.{json.dumps(name)}]\n' \
              'notebook = "nb/hello.ipynb"\ntitle = "T"\n'
    proj = project(tmp_path / "p", reports)
    before = tree(tmp_path)
    proc = run_cli("build", project=proj)
    assert proc.returncode == EXIT_USAGE, proc.stdout + proc.stderr
    (line,) = [e for e in error_lines(proc) if name[:20] in e or "kpi" in e.lower()]
    assert "reports." in line
    assert tree(tmp_path) == before  # nothing written anywhere, the absolute path included


@pytest.mark.parametrize("name, expected", [("../x", 'sources."../x"'), ("my-data", 'sources."my-data"')])
def test_source_names_must_be_parameter_names(tmp_path, name, expected):
    site = f'[sources.{json.dumps(name)}]\npath = "data.csv"\n'
    proj = project(tmp_path, '[reports.r]\nnotebook = "nb/hello.ipynb"\ntitle = "R"\n', site)
    proc = run_cli("build", project=proj)
    assert proc.returncode == EXIT_USAGE
    assert any(expected in line and "identifier" in line for line in error_lines(proc)), proc.stderr


def test_a_300_character_parameter_value_publishes_with_a_bounded_version_id(tmp_path):
    long = "v" * 300
    reports = f"""
        [reports.r]
        notebook = "nb/hello.ipynb"
        title = "R"
        parameters = [{{ name = "{long}" }}, {{ name = "short" }}]
    """
    proc = run_cli("build", project=project(tmp_path, reports))
    assert proc.returncode == EXIT_OK, proc.stdout + proc.stderr
    versions = [p for p in (tmp_path / "reports" / "r").iterdir() if p.name[:1].isdigit()]
    assert len(versions) == 2
    assert all(len(p.name) <= 80 for p in versions), [p.name for p in versions]
    assert not (tmp_path / "reports" / ".staging").exists() or not any((tmp_path / "reports" / ".staging").iterdir())
    catalog = json.loads((tmp_path / "reports" / "catalog.json").read_text())
    assert len(catalog["reports"]["r"]["versions"]) == 2


def test_a_notebook_that_is_a_json_list_is_a_config_error_naming_it(tmp_path):
    proj = project(tmp_path, '[reports.r]\nnotebook = "nb/list.ipynb"\ntitle = "R"\n')
    (proj / "nb" / "list.ipynb").write_text("[1, 2, 3]")
    proc = run_cli("build", project=proj)
    assert proc.returncode == EXIT_USAGE
    (line,) = error_lines(proc)
    assert "nb/list.ipynb" in line and "not a notebook" in line


def test_a_file_named_like_a_stdlib_module_in_the_callers_folder_changes_nothing(tmp_path):
    proj = project(tmp_path / "p", '[reports.r]\nnotebook = "nb/hello.ipynb"\ntitle = "R"\n')
    caller = tmp_path / "caller"
    caller.mkdir()
    (caller / "concurrent.py").write_text("raise RuntimeError('imported from the caller folder')\n")
    (caller / "json.py").write_text("raise RuntimeError('imported from the caller folder')\n")
    proc = run_cli("build", project=proj, cwd=caller)
    assert proc.returncode == EXIT_OK, proc.stdout + proc.stderr


def test_lone_surrogates_in_output_keep_the_text_and_fail_nothing(tmp_path):
    proj = project(tmp_path, '[reports.r]\nnotebook = "nb/surrogate.ipynb"\ntitle = "R"\n')
    write_notebook(proj / "nb" / "surrogate.ipynb", "n = 1", "print('before \\ud800 after')", "print('next cell')")
    proc = run_cli("build", project=proj)
    assert proc.returncode == EXIT_OK, proc.stdout + proc.stderr
    (version,) = [p for p in (proj / "reports" / "r").iterdir() if p.name[:1].isdigit()]
    page = (version / "index.html").read_text(encoding="utf-8")
    assert "before" in page and "after" in page and "next cell" in page
    assert "UnicodeEncodeError" not in page and "json_packer" not in page


def test_a_huge_output_is_capped_in_the_page_with_a_note(tmp_path):
    proj = project(tmp_path, '[reports.r]\nnotebook = "nb/huge.ipynb"\ntitle = "R"\n', "max_output_mb = 1")
    write_notebook(proj / "nb" / "huge.ipynb", "n = 1", "print('x' * (3 * 1024 * 1024))", "print('the end')")
    proc = run_cli("build", project=proj)
    assert proc.returncode == EXIT_OK, proc.stdout + proc.stderr
    (version,) = [p for p in (proj / "reports" / "r").iterdir() if p.name[:1].isdigit()]
    page = (version / "index.html").read_text(encoding="utf-8")
    assert len(page.encode()) < 2.5 * 1024 * 1024
    assert "output truncated" in page and "the end" in page
    notebook = json.loads((version / "huge.ipynb").read_text(encoding="utf-8"))
    assert sum(len("".join(o.get("text", ""))) for c in notebook["cells"] for o in c.get("outputs", [])) > 3_000_000


def test_manifests_hold_no_traceback_or_build_machine_path(tmp_path):
    proj = project(tmp_path, '[reports.r]\nnotebook = "nb/fails.ipynb"\ntitle = "R"\n')
    write_notebook(proj / "nb" / "fails.ipynb", "n = 1", f"open({str(proj / 'missing.csv')!r})")
    proc = run_cli("build", project=proj)
    assert proc.returncode == EXIT_FAILED
    (version,) = [p for p in (proj / "reports" / "r").iterdir() if p.name[:1].isdigit()]
    manifest = (version / "manifest.json").read_text(encoding="utf-8")
    for secret in (str(proj), str(Path.home()), os.path.dirname(os.__file__), "Traceback"):
        assert secret not in manifest, secret
    assert "missing.csv" in manifest  # the reader still learns what failed
    logs = list((proj / ".lab2land" / "logs").rglob("*.log"))
    assert logs, "the run's log is kept beside the site, for the operator"
