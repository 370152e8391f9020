"""The third-party corpus (``shared/corpus``, see its SOURCES.md) published as it is.

Every notebook either publishes (status ok, page written, its printed text on the page) or
fails clearly (a failed version whose summary names the cell and the exception, and which
never becomes "latest"), exactly as SOURCES.md's "expected behaviour when published" column
says. Notebooks that name a kernel other than ``python3`` are tested both ways: with their own
kernel (a config error naming report and kernel, exit 2, no kernel started) and forced to
``python3`` (the behaviour SOURCES.md states for that case).

All notebooks that run share ONE build (``--jobs 2``) to keep the module under two minutes;
the tests of that build are marked ``slow``. The config-error cases start no kernel and cost
about a second each.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest
from bs4 import BeautifulSoup

from conftest import ROOT, run_cli, write_project
from lab2land import executors
from lab2land.build import build
from lab2land.config import ConfigError, load_config

WIDGET_STATE_MIME = "application/vnd.jupyter.widget-state+json"


CELL_TIMEOUT = 60


def _report(notebook: str, **keys) -> dict:
    """One report's table: ``notebook`` from the project's copy of the corpus, and ``keys``.

    Cells get 60 s, not the default 600: widget cells sometimes see their execute_reply only
    when the cell time limit expires (nbclient issue #312; it completes then, late), and such
    a stall must not cost this module ten minutes.
    """
    return {"notebook": f"corpus/{notebook}", "title": notebook, "timeout": CELL_TIMEOUT, **keys}


# --- what SOURCES.md says, one row per report -------------------------------------------------
# Notebooks with no parameters cell need takes_parameters = false; the rest keep the default.
NO_PARAMS = {"takes_parameters": False}
FORCED = {"kernel": "python3", "takes_parameters": False}

# report -> (notebook, config keys, texts its page must show)
PUBLISHES = {
    "interactive": ("voila/interactive.ipynb", NO_PARAMS, []),
    "gridspec_layout": ("voila/gridspecLayout.ipynb", NO_PARAMS, []),
    "query_strings": ("voila/query-strings.ipynb", NO_PARAMS, ["{}", "Hi Kim"]),
    "multiple_widgets": ("voila/multiple_widgets.ipynb", NO_PARAMS, []),
    "many_iopub": ("voila/many_iopub_messages.ipynb", NO_PARAMS, ["4999", "you should see me"]),
    "gridstack_basics": ("voila-gridstack/gridstack-basics.ipynb", NO_PARAMS, ["hello"]),
    # The grid layout must read the old `cellHeight`/`numColumns` spelling ...
    "gridstack_basics_grid": ("voila-gridstack/gridstack-basics.ipynb", {**NO_PARAMS, "layout": "grid"},
                              ["hello"]),
    "nb_without_metadata": ("voila-gridstack/nb_without_metadata.ipynb", NO_PARAMS, ["Hi !", "2"]),
    # ... and fall back to a flow when there is no grid metadata at all.
    "nb_without_metadata_grid": ("voila-gridstack/nb_without_metadata.ipynb", {**NO_PARAMS, "layout": "grid"},
                                 ["Hi !", "2"]),
    "simple_execute": ("papermill/simple_execute.ipynb", {}, ["None"]),
    "report_mode": ("papermill/report_mode_test.ipynb", {}, ["2"]),
    "simple_with_tags": ("papermill/simple_with_tags.ipynb", NO_PARAMS, ["1"]),
    "nb_version_44": ("papermill/nb_version_4.4.ipynb", {}, ["1"]),
    "no_parameters_forced": ("papermill/no_parameters.ipynb", FORCED, ["None"]),
}

# report -> (notebook, config keys, exception names (any one), first line of the failing cell)
FAILS = {
    "basics": ("voila/basics.ipynb", NO_PARAMS, ["URLError", "gaierror", "HTTPError"],
               "import pandas as pd"),
    "dashboard": ("voila/dashboard.ipynb", NO_PARAMS, ["ModuleNotFoundError"], "import numpy as np"),
    "matplotlib": ("voila/matplotlib.ipynb", NO_PARAMS, ["ModuleNotFoundError"], "import pandas as pd"),
    "dashboard_grid": ("voila/dashboard-grid.ipynb", NO_PARAMS, ["ModuleNotFoundError"], "import numpy as np"),
    "syntax_error": ("voila/syntax_error.ipynb", NO_PARAMS, ["SyntaxError"], "this is a syntax error"),
    "scotch_dashboard": ("voila-gridstack/scotch_dashboard.ipynb", NO_PARAMS, ["ModuleNotFoundError"],
                         "from bqplot import"),
    # SOURCES.md: scipy first; scikit-learn pulls scipy into this venv, so matplotlib comes first here.
    "iris_example": ("voila-gridstack/iris_example.ipynb", NO_PARAMS, ["ModuleNotFoundError"],
                     "import pandas as pd"),
    "broken1_forced": ("papermill/broken1.ipynb", FORCED, ["AssertionError"], "assert False"),
    "sysexit1_forced": ("papermill/sysexit1.ipynb", FORCED, ["SystemExit"], "sys.exit(1)"),
    # papermill reports sys.exit(0) as success; lab2land must not.
    "sysexit0_forced": ("papermill/sysexit0.ipynb", FORCED, ["SystemExit", "sys.exit(0)"], "sys.exit(0)"),
    # sleep(60) under a 2 s cell limit, and under a run limit (kernel start-up included).
    "keyboard_interrupt_cell": ("papermill/keyboard_interrupt.ipynb", {**NO_PARAMS, "timeout": 2},
                                ["CellTimeoutError", "longer than 2 s"], "from time import sleep"),
    "keyboard_interrupt_run": ("papermill/keyboard_interrupt.ipynb", {**NO_PARAMS, "run_timeout": 8},
                               ["run_timeout", "longer than 8 s"], "from time import sleep"),
}
MISSING_MODULES = {"dashboard": ["bqplot"], "dashboard_grid": ["bqplot"], "scotch_dashboard": ["bqplot"],
                   "matplotlib": ["matplotlib"], "iris_example": ["scipy", "matplotlib", "seaborn"]}

# Notebooks naming a kernel that is not installed: report -> (notebook, kernel in its metadata)
OWN_KERNEL = {
    "broken1": ("papermill/broken1.ipynb", "python2"),
    "no_parameters": ("papermill/no_parameters.ipynb", "python2"),
    "sysexit0": ("papermill/sysexit0.ipynb", "dev"),
    "sysexit1": ("papermill/sysexit1.ipynb", "dev"),
}


def _project(root: Path, corpus: Path, reports: dict[str, dict]) -> Path:
    """A project under ``root`` with a private copy of the corpus and ``reports`` as config."""
    shutil.copytree(corpus, root / "corpus", ignore=shutil.ignore_patterns("*.md"))
    for path in (root / "corpus").rglob("*"):  # the shared corpus is read-only; our copy need not be
        path.chmod(0o755 if path.is_dir() else 0o644)
    return write_project(root, reports=reports, site={"title": "Corpus"})


def _versions(site: Path) -> list[Path]:
    return [p for p in site.glob("*/*/manifest.json")]


@pytest.fixture(scope="module")
def published(tmp_path_factory, corpus):
    """Every corpus notebook that runs, published in one build with two runs at a time."""
    tables = {name: _report(nb, **keys) for name, (nb, keys, _) in PUBLISHES.items()}
    tables |= {name: _report(nb, **keys) for name, (nb, keys, _, _) in FAILS.items()}
    project = _project(tmp_path_factory.mktemp("corpus"), corpus, tables)
    config = load_config(project)
    summary = build(config, jobs=2, force=True)
    outcomes = {o.run.report: o for o in summary.outcomes}
    return config, outcomes, json.loads((config.output_dir / "catalog.json").read_text(encoding="utf-8"))


def _page(config, outcome) -> BeautifulSoup:
    path = config.output_dir / outcome.run.report / outcome.version_id / "index.html"
    assert path.is_file(), f"{outcome.run.report}: no page at {path}"
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def _output_texts(soup: BeautifulSoup) -> list[str]:
    """Text of each output area of the page (what the notebook printed or displayed)."""
    return [o.get_text("\n", strip=True) for o in soup.select(".jp-OutputArea-output")]


@pytest.mark.slow
def test_every_run_was_built(published):
    _, outcomes, _ = published
    assert set(outcomes) == set(PUBLISHES) | set(FAILS)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PUBLISHES))
def test_publishes(published, name):
    config, outcomes, catalog = published
    outcome = outcomes[name]
    assert outcome.status == "ok", f"{name}: {outcome.summary}"
    soup = _page(config, outcome)
    assert soup.body["data-status"] == "ok"
    assert not soup.select(".l2l-banner-error")
    outputs = _output_texts(soup)
    for text in PUBLISHES[name][2]:
        assert any(text in out.splitlines() or text == out for out in outputs) or \
            any(text in out for out in outputs), f"{name}: {text!r} not among the page's outputs {outputs[:5]}"
    entry = catalog["reports"][name]["variants"]["default"]
    assert entry["latest"] == outcome.version_id
    assert (config.output_dir / name / "latest" / "default.html").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("name, text", [("simple_execute", "None"), ("report_mode", "2"),
                                        ("nb_version_44", "1"), ("no_parameters_forced", "None")])
def test_printed_value_is_the_whole_output(published, name, text):
    """`None`, `2`, `1` are short: check the stream output is exactly that, not just contains it."""
    config, outcomes, _ = published
    outputs = _output_texts(_page(config, outcomes[name]))
    assert text in outputs, f"{name}: outputs are {outputs}"


@pytest.mark.slow
@pytest.mark.parametrize("name, models", [("interactive", None), ("gridspec_layout", 203),
                                          ("multiple_widgets", 1242)])
def test_widgets_keep_their_saved_state(published, name, models):
    """A static page shows widgets in their saved state: the state travels in the page."""
    config, outcomes, _ = published
    soup = _page(config, outcomes[name])
    scripts = soup.find_all("script", attrs={"type": WIDGET_STATE_MIME})
    assert scripts, f"{name}: no widget state in the page"
    state = json.loads(scripts[0].string)["state"]
    if models is not None:
        assert len(state) == models
    assert soup.find_all("script", attrs={"type": "application/vnd.jupyter.widget-view+json"})


@pytest.mark.slow
def test_many_outputs_are_all_published(published):
    config, outcomes, _ = published
    nb_path = config.output_dir / "many_iopub" / outcomes["many_iopub"].version_id / "many_iopub_messages.ipynb"
    nb = nbformat.read(nb_path, as_version=4)
    assert len(nb.cells[0].outputs) == 5001
    outputs = _output_texts(_page(config, outcomes["many_iopub"]))
    assert "0" in outputs and "4999" in outputs and "'you should see me'" in outputs


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FAILS))
def test_fails_clearly(published, name):
    config, outcomes, catalog = published
    outcome = outcomes[name]
    _, _, enames, first_line = FAILS[name]
    assert outcome.status == "failed", f"{name} should fail ({enames}) but was {outcome.status}"
    assert any(e in outcome.summary for e in enames), f"{name}: summary {outcome.summary!r} names none of {enames}"
    assert "cell" in outcome.summary and first_line in outcome.summary, \
        f"{name}: summary {outcome.summary!r} does not name the cell starting {first_line!r}"
    for module in MISSING_MODULES.get(name, []):
        if module in outcome.summary:
            break
    else:
        assert name not in MISSING_MODULES, f"{name}: {outcome.summary!r} names none of {MISSING_MODULES[name]}"
    # The failed version is published, with an error page that says what went wrong ...
    soup = _page(config, outcome)
    assert soup.body["data-status"] == "failed"
    banner = soup.select_one(".l2l-banner-error")
    assert banner is not None and any(e in banner.get_text() for e in enames)
    manifest = json.loads((config.output_dir / name / outcome.version_id / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["error"]["summary"] == outcome.summary
    # ... but never becomes "latest".
    assert catalog["reports"][name]["variants"]["default"]["latest"] is None
    assert not (config.output_dir / name / "latest").exists() or \
        not list((config.output_dir / name / "latest").iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dashboard", "sysexit1_forced", "broken1_forced", "syntax_error"])
def test_failing_cell_is_marked_on_the_page(published, name):
    config, outcomes, _ = published
    soup = _page(config, outcomes[name])
    failed = soup.select_one("#l2l-failed-cell")
    assert failed is not None, f"{name}: failing cell not marked"
    assert FAILS[name][3] in failed.get_text()


@pytest.mark.slow
def test_sysexit0_stops_before_the_last_cell(published):
    config, outcomes, _ = published
    nb_path = config.output_dir / "sysexit0_forced" / outcomes["sysexit0_forced"].version_id / "sysexit0.ipynb"
    nb = nbformat.read(nb_path, as_version=4)
    printed = [o.get("text", "") for c in nb.cells for o in c.get("outputs", [])]
    assert not any("Cell should not execute" in t for t in printed)


@pytest.mark.slow
def test_broken1_never_reaches_its_py2_print(published):
    config, outcomes, _ = published
    text = _page(config, outcomes["broken1_forced"]).get_text()
    assert "We're good." in text or "We’re good." in text
    assert "Shouldn't get here." not in "".join(_output_texts(_page(config, outcomes["broken1_forced"])))


@pytest.mark.slow
def test_failure_after_success_keeps_latest_on_the_good_version(published):
    """A report that published, then fails: latest stays on the good version."""
    config, outcomes, _ = published
    good = outcomes["nb_without_metadata"].version_id
    nb = config.project_dir / "corpus" / "voila-gridstack" / "nb_without_metadata.ipynb"
    shutil.copy(config.project_dir / "corpus" / "voila" / "syntax_error.ipynb", nb)
    summary = build(load_config(config.project_dir), reports=["nb_without_metadata"], jobs=1)
    [outcome] = summary.outcomes
    assert outcome.status == "failed" and "SyntaxError" in outcome.summary
    catalog = json.loads((config.output_dir / "catalog.json").read_text(encoding="utf-8"))
    entry = catalog["reports"]["nb_without_metadata"]
    assert entry["variants"]["default"]["latest"] == good
    assert [v["status"] for v in entry["versions"]] == ["failed", "ok"]
    redirect = (config.output_dir / "nb_without_metadata" / "latest" / "default.html").read_text()
    assert f"../{good}/index.html" in redirect and outcome.version_id not in redirect


# --- config-time errors: no kernel may start ---------------------------------------------------

@pytest.fixture
def no_kernel(monkeypatch):
    """Fail the test if any run (and so any kernel) is started in this process."""
    def refuse(job, **_):
        raise AssertionError(f"a run was started for {job.report}")
    monkeypatch.setattr(executors, "run_isolated", refuse)


def test_own_kernel_is_a_config_error_naming_report_and_kernel(tmp_path, corpus, no_kernel):
    tables = {name: _report(nb, takes_parameters=False) for name, (nb, _) in OWN_KERNEL.items()}
    project = _project(tmp_path, corpus, tables)
    with pytest.raises(ConfigError) as caught:
        build(load_config(project), jobs=2)
    problems = caught.value.problems
    for name, (_, kernel) in OWN_KERNEL.items():
        assert any(f"reports.{name}" in p and repr(kernel) in p for p in problems), \
            f"no problem names report {name} and kernel {kernel!r}: {problems}"
    assert not _versions(project / "reports")


def test_own_kernel_cli_exits_2_without_running(tmp_path, corpus):
    tables = {name: _report(nb, takes_parameters=False) for name, (nb, _) in OWN_KERNEL.items()}
    project = _project(tmp_path, corpus, tables)
    done = run_cli("build", "--jobs", "2", project=project, timeout=120, cwd=ROOT)
    assert done.returncode == 2, done.stderr
    for name, (_, kernel) in OWN_KERNEL.items():
        assert f"reports.{name}" in done.stderr and f"'{kernel}'" in done.stderr
    assert not _versions(project / "reports")


def test_complex_parameters_is_a_config_error_naming_notebook_and_line(tmp_path, corpus, no_kernel):
    project = _project(tmp_path, corpus, {"complex": _report("papermill/complex_parameters.ipynb")})
    with pytest.raises(ConfigError) as caught:
        build(load_config(project), jobs=1)
    [problem] = caught.value.problems
    assert "complex_parameters.ipynb" in problem and "parameters cell" in problem
    # The offending line is `c = 2` written as `= 2`... whatever the line, it is named.
    source = nbformat.read(project / "corpus/papermill/complex_parameters.ipynb", as_version=4).cells[0].source
    bad = next(i for i, line in enumerate(source.splitlines(), 1) if line.lstrip().startswith("="))
    assert f"line {bad}" in problem, problem
    assert not _versions(project / "reports")


def test_complex_parameters_cli_exits_2(tmp_path, corpus):
    project = _project(tmp_path, corpus, {"complex": _report("papermill/complex_parameters.ipynb")})
    done = run_cli("build", project=project, timeout=120, cwd=ROOT)
    assert done.returncode == 2, done.stderr
    assert "complex_parameters.ipynb" in done.stderr and "line" in done.stderr
    assert not _versions(project / "reports")


def test_kernelspec_named_python_publishes(tmp_path, corpus):
    """print_parameterized names kernel `python`, which jupyter_client resolves to python3.

    Built on its own, not in the shared build: if lab2land refuses the name, the whole shared
    build would stop with a config error and hide every other result.
    """
    project = _project(tmp_path, corpus, {"print_parameterized": _report("voila/print_parameterized.ipynb")})
    summary = build(load_config(project), jobs=1)
    [outcome] = summary.outcomes
    assert outcome.status == "ok", outcome.summary
    outputs = _output_texts(_page(load_config(project), outcome))
    assert "Hi Voila!" in outputs
