"""Grid placement from jupyter_dashboards metadata and grid: tags, and the layout helper."""

from __future__ import annotations

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_output, new_raw_cell

from conftest import save_notebook
from lab2land import grid
from serve_util import grid_notebook, view


def _out(text="x"):
    return [new_output("stream", name="stdout", text=text)]


def test_gridstack_basics_old_spelling_and_partial_metadata(corpus):
    nb = nbformat.read(corpus / "voila-gridstack" / "gridstack-basics.ipynb", as_version=4)
    assert grid.notebook_settings(nb) == grid.GridSettings(columns=12, cell_height=1, margin=1)
    places = grid.placements(nb)
    assert (places[0].shown, places[0].col, places[0].row, places[0].width, places[0].flow) == (True, 0, 0, 6, False)
    assert places[1].shown and places[1].flow and places[1].row == 2 and places[1].width == 12
    assert not places[2].shown and places[2].reason == "no output"


def test_iris_hidden_cells_with_null_positions(corpus):
    nb = nbformat.read(corpus / "voila-gridstack" / "iris_example.ipynb", as_version=4)
    places = grid.placements(nb)
    assert [p.index for p in places if not p.shown] == [0, 1, 10]
    assert not any(p.flow for p in places)
    assert (places[9].col, places[9].row, places[9].width, places[9].height) == (5, 17, 6, 17)
    assert grid.notebook_settings(nb) == grid.GridSettings(columns=12, cell_height=60, margin=10)


def test_scotch_ignores_the_report_view(corpus):
    nb = nbformat.read(corpus / "voila-gridstack" / "scotch_dashboard.ipynb", as_version=4)
    shown = [p.index for p in grid.placements(nb, drop_empty=False) if p.shown]
    assert shown == [0, 9, 10, 11, 12, 13]


def test_without_metadata_everything_flows_in_order(corpus):
    nb = nbformat.read(corpus / "voila-gridstack" / "nb_without_metadata.ipynb", as_version=4)
    places = grid.placements(nb)
    assert all(p.flow and p.width == 12 for p in places if p.shown)
    assert [p.row for p in places if p.shown] == sorted(p.row for p in places if p.shown)


def test_parameters_raw_and_empty_cells_are_not_shown():
    nb = grid_notebook([
        new_code_cell("a = 1", metadata={"tags": ["parameters"]}, outputs=_out()),
        new_code_cell("a = 2", metadata={"tags": ["injected-parameters"]}, outputs=_out()),
        new_raw_cell("raw"), new_markdown_cell("   "), new_code_cell("x = 1"),
        new_code_cell("print(1)", outputs=_out())])
    assert [p.reason for p in grid.placements(nb)] == ["parameters", "parameters", "raw cell", "no output",
                                                       "no output", ""]
    assert grid.placements(nb, drop_empty=False)[4].shown


def test_flow_cells_go_below_the_laid_out_ones_and_reading_order():
    nb = grid_notebook([
        new_code_cell("print('flow')", outputs=_out()),
        new_code_cell("print('right')", metadata=view(6, 0, 6, 3), outputs=_out()),
        new_code_cell("print('left')", metadata=view(0, 0, 6, 2), outputs=_out()),
        new_code_cell("print('below')", metadata=view(0, 4, 12, 1), outputs=_out())])
    places = grid.placements(nb)
    assert places[0].flow and places[0].row == 5
    assert [p.index for p in sorted(places, key=lambda p: p.order)] == [2, 1, 3, 0]


def test_out_of_range_values_are_clamped():
    nb = grid_notebook([new_code_cell("1", metadata=view(10, 0, 8, 0), outputs=_out()),
                        new_code_cell("2", metadata=view(-3, 1, "x", 2), outputs=_out())], columns=12)
    first, second = grid.placements(nb)
    assert (first.col, first.width, first.height) == (10, 2, 1)
    assert (second.col, second.width) == (0, 12)


def test_tags_win_over_metadata_and_are_one_based():
    cell = new_code_cell("1", metadata={**view(0, 0, 12, 2), "tags": ["grid:col=7;row=2;w=6;h=4"]}, outputs=_out())
    hidden = new_code_cell("2", metadata={"tags": ["grid:hidden"]}, outputs=_out())
    places = grid.placements(grid_notebook([cell, hidden]))
    assert (places[0].col, places[0].row, places[0].width, places[0].height) == (6, 1, 6, 4)
    assert not places[1].shown


@pytest.mark.parametrize("tag, message", [
    ("grid:col=1;row=x", "row must be a whole number, got 'x'"),
    ("grid:col=0;row=1", "col must be 1 or more"),
    ("grid:w=3", "missing col and row"),
    ("grid:left=3", "cannot read 'left=3'"),
])
def test_bad_tags_are_explained(tag, message):
    with pytest.raises(grid.GridError, match=message.replace("(", r"\(")):
        grid.parse_tag(tag)


def test_annotate_writes_css_lines_for_the_templates():
    nb = grid.annotate(grid_notebook([
        new_code_cell("1", metadata=view(2, 1, 4, 3), outputs=_out()), new_code_cell("2", outputs=_out()),
        new_code_cell("3", metadata={"tags": ["parameters"]})]))
    assert nb.metadata.lab2land.grid == {"columns": 12, "cell_height": 60, "margin": 10, "rows": 4}
    assert nb.cells[0].metadata.lab2land.grid == {"hidden": False, "col": 3, "row": 2, "width": 4, "height": 3,
                                                  "flow": False, "order": 0}
    assert nb.cells[1].metadata.lab2land.grid["flow"] and nb.cells[1].metadata.lab2land.grid["row"] == 5
    assert nb.cells[2].metadata.lab2land.grid == {"hidden": True, "reason": "parameters"}


def test_css_collapses_to_one_column_on_narrow_screens():
    css = grid.grid_css()
    assert "display: grid" in css and "@media (max-width" in css and "order: var(--l2l-order" in css


def test_layout_command_writes_tags_into_metadata(tmp_path, capsys):
    nb = nbformat.v4.new_notebook(cells=[
        new_markdown_cell("# T", metadata={"tags": ["grid:col=1;row=1;w=12;h=1"]}),
        new_code_cell("1", metadata={"tags": ["grid:col=1;row=2;w=6;h=3"]}),
        new_code_cell("2", metadata={"tags": ["grid:hidden"]})])
    path = tmp_path / "nb.ipynb"
    save_notebook(nb, path)
    assert grid.layout_command(path, check=True) == 1  # tags not yet in the metadata
    assert "run `publish.py layout" in capsys.readouterr().out
    assert grid.layout_command(path) == 0
    written = nbformat.read(path, as_version=4)
    assert written.cells[1].metadata.extensions.jupyter_dashboards.views.grid_default == {
        "hidden": False, "col": 0, "row": 1, "width": 6, "height": 3}
    assert written.cells[2].metadata.extensions.jupyter_dashboards.views.grid_default["hidden"] is True
    assert written.metadata.extensions.jupyter_dashboards.views.grid_default["maxColumns"] == 12
    assert "111111......" in capsys.readouterr().out.replace("2", "1")
    assert grid.layout_command(path, check=True) == 0


def test_layout_check_reports_overlaps_and_bad_tags(tmp_path, capsys):
    nb = grid_notebook([new_code_cell("1", metadata=view(0, 0, 6, 2)), new_code_cell("2", metadata=view(3, 1, 6, 2)),
                        new_code_cell("3", metadata={"tags": ["grid:col=1;row=oops"]})])
    path = tmp_path / "bad.ipynb"
    save_notebook(nb, path)
    assert grid.layout_command(path, check=True) == 1
    out = capsys.readouterr().out
    assert "bad.ipynb: cells 1 and 2 overlap" in out and "bad.ipynb: cell 3: tag 'grid:col=1;row=oops'" in out
    assert grid.layout_command(path) == 1 and nbformat.read(path, as_version=4) == nb  # not written
    assert grid.layout_command(tmp_path / "missing.ipynb") == 2
