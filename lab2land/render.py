"""Render stage: executed notebooks to version pages, and the site's index/history pages.

Version pages come from an in-process nbconvert ``HTMLExporter`` subclass using our
``templates/report`` (which extends nbconvert's ``lab``); site pages from a plain autoescaping
Jinja environment over ``templates/site``. Every page references the shared assets that
:func:`lab2land.assets.install_assets` writes once under ``reports/assets/``; none loads
anything from the network.
"""

from __future__ import annotations

import functools
import re
import threading
from pathlib import Path

import jinja2
import markupsafe
import nbformat
from nbconvert.exporters import HTMLExporter
from nbconvert.preprocessors import Preprocessor
from traitlets import Bool, Unicode
from traitlets.config import Config

from lab2land import cell_tags, grid, images, page_needs, sanitize
from lab2land.templating import TEMPLATES_DIR

LAYOUTS = ("flow", "grid")
SITE_TEMPLATES = ("index.html.j2", "history.html.j2", "changes.html.j2")

PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE_MIME = "application/vnd.jupyter.widget-state+json"

# Plotly first: nbconvert otherwise prefers nothing it can show and drops the figure.
# application/javascript is left out on purpose: report pages never run notebook script.
DISPLAY_PRIORITY = [
    PLOTLY_MIME, WIDGET_VIEW_MIME, "text/html", "text/markdown", "image/svg+xml",
    "image/png", "image/jpeg", "text/latex", "text/vnd.mermaid", "text/plain",
]

# Keys render_version reads from `page`; checked up front so a wrong context fails with the
# missing key named instead of an empty field deep in a template.
_PAGE_KEYS = {
    "": ("site_title", "report", "version", "provenance", "links", "assets"),
    "report": ("name", "title"),
    "version": ("id", "variant", "variant_label", "status", "parameters", "created"),
    "provenance": ("notebook",),
    "links": ("site", "history", "latest", "notebook", "versions_js"),
}


class ReportPreprocessor(Preprocessor):
    """Decide what a reader sees of each cell; ``(nb, resources) -> (nb, resources)``.

    Drops papermill's own error-banner cells (the page has its own banner), finds the
    failing cell and keeps its code and error visible, hides code otherwise (unless
    ``show_code``), honours the usual ``remove-cell``/``hide-input``/``remove-output`` cell
    tags, drops cells left with nothing to show, and in the grid layout places cells from
    their ``jupyter_dashboards`` metadata.
    """

    show_code = Bool(False, help="Show the source of every code cell.").tag(config=True)
    layout = Unicode("flow", help="'flow' or 'grid'.").tag(config=True)

    def preprocess(self, nb, resources):
        """Mark, hide and drop cells in place (nbconvert hands us a copy of the notebook)."""
        l2l = resources.setdefault("lab2land", {})
        error = ((l2l.get("page") or {}).get("version") or {}).get("error") or {}
        failed = _failing_cell(nb.cells, error.get("cell_index"))
        on_grid = self.layout == "grid"
        if on_grid:
            settings = grid.notebook_settings(nb)
            l2l["grid_style"] = f"--l2l-cols: {settings.columns}; --l2l-row-h: {settings.cell_height}px"
        sanitize.drop_unrenderable_widget_views(nb)
        sanitize.clean_saved_widget_state(nb)  # embed.js draws HTML widget values as markup
        if l2l.get("has_widgets") and not _has_output(nb, WIDGET_VIEW_MIME):
            l2l.update(has_widgets=False, csp=_csp(widgets=False))  # no embed.js, no eval
        places = grid.placements(nb, drop_empty=False) if on_grid else None
        kept = []
        for index, cell in enumerate(nb.cells):
            tags = set(cell.metadata.get("tags", []))
            shows = cell_tags.visibility(cell)  # the rule dashboards follow too
            if tags & _PAPERMILL_BANNER_TAGS or (not shows.cell and index != failed):
                continue
            meta = cell.metadata.setdefault("lab2land", {})
            if cell.cell_type == "code" and index == failed:
                cell.outputs = _clean_outputs(cell.get("outputs", []), index, l2l.get("images"))
            if index == failed:
                meta["failed"] = True
                l2l["failed_cell"] = True
            elif cell.cell_type == "code":
                cell.outputs = _clean_outputs(cell.get("outputs", []), index, l2l.get("images")) if shows.output else []
                if not self.show_code or not shows.input:
                    cell.metadata.setdefault("transient", {})["remove_source"] = True
                    if not cell.get("outputs"):
                        continue  # nothing left to show: not even an empty box
            if on_grid and not _place_on_grid(cell, meta, places[index]):
                continue
            kept.append(cell)
        if on_grid:
            _place_flow_cells(kept, places)
        nb.cells = kept
        return nb, resources


class ReportExporter(HTMLExporter):
    """nbconvert's HTML exporter with lab2land's report template and sanitizing filters."""

    export_from_notebook = None  # not offered in nbconvert's own UIs

    def _create_environment(self):
        env = super()._create_environment()
        # Our shared partials (``_macros.html.j2``) escape everything they print, here as in
        # the site environment; nbconvert's own templates keep their explicit escaping.
        env.autoescape = _is_partial
        return env

    def default_filters(self):
        """nbconvert's filters plus ``l2l_clean_html`` (nh3) and ``l2l_json`` (data blocks)."""
        yield from super().default_filters()
        yield ("l2l_clean_html", _clean_html_filter)
        yield ("l2l_json", sanitize.json_for_script)

    @jinja2.pass_context
    def markdown2html(self, context, source):
        """nbconvert's markdown rendering, with each heading's empty ``¶`` link closed.

        nbconvert builds the link with ElementTree, which writes an empty one as ``<a .../>``;
        HTML has no self-closing ``<a>``, so the rest of the cell would become the link.
        """
        return _SELF_CLOSED_ANCHOR.sub(r"<a \1></a>", super().markdown2html(context, source))


def render_version(nb: nbformat.NotebookNode, page: dict, *, show_code: bool = False,
                   layout: str = "flow", template_dirs: list[Path] | None = None,
                   notebook_dir: Path | None = None) -> str:
    """HTML of one version page of a report (in-process nbconvert HTMLExporter subclass).

    Args:
        nb: The executed notebook (not modified). A failed run renders too: the page gets an
            error banner and the failing cell is shown with its code and error output.
        page: Page context (site title, report, version, provenance, links, assets URL);
            see the render stage's contract. All URLs are relative to the page.
        show_code: Show every code cell's source (otherwise only the failing cell's).
        layout: ``"flow"`` (one column) or ``"grid"`` (cells placed from the
            ``jupyter_dashboards`` grid metadata, one column on narrow screens).
        template_dirs: Extra template base dirs (each may hold ``report/`` and ``site/``),
            searched before lab2land's own ``templates/``.
        notebook_dir: The notebook's folder: images that markdown and HTML name by a relative
            path inside it are embedded (:mod:`lab2land.images`); None embeds none.

    Returns:
        The page's HTML.

    Raises:
        ValueError: ``page`` lacks a required key, or ``layout`` is unknown.
    """
    _check_page(page)
    exporter, lock = _exporter(_dirs_key(template_dirs), bool(show_code), _check_layout(layout))
    widgets = _has_widgets(nb)
    resources = {
        "metadata": {"name": page["report"]["title"], "path": ""},
        "lab2land": {
            "page": page,
            "layout": layout,
            "show_code": bool(show_code),
            "has_plotly": _has_output(nb, PLOTLY_MIME),
            "plotly_js": page_needs.static_plotly_js(nb),
            "has_widgets": widgets,
            "has_math": _has_math(nb) or page_needs.widgets_have_math(nb),
            "has_plot_tex": page_needs.plots_have_tex(nb),
            "images": images.resolver(notebook_dir),
            "failed_cell": False,  # set by ReportPreprocessor
            "report_root": _dirname(page["links"]["versions_js"]),
            "csp": _csp(widgets=widgets),
        },
    }
    with lock:  # one exporter per key; nbconvert exporters hold per-call state
        html, _ = exporter.from_notebook_node(nb, resources=resources)
    return html


def render_site_page(template: str, context: dict, *, template_dirs: list[Path] | None = None) -> str:
    """HTML of a site page: template is 'index.html.j2' or 'history.html.j2'.

    Args:
        template: Name of a template in ``templates/site`` (or an override in a
            ``template_dirs`` entry's ``site/``).
        context: The page's context (see the render stage's contract); values are escaped.
        template_dirs: Extra template base dirs searched before lab2land's ``templates/``.

    Returns:
        The page's HTML.

    Raises:
        ValueError: Unknown template, or the context lacks a value the template needs.
    """
    if template not in SITE_TEMPLATES:
        raise ValueError(f"unknown site template {template!r}: expected one of {', '.join(SITE_TEMPLATES)}")
    env = _site_environment(_dirs_key(template_dirs))
    try:
        return env.get_template(template).render(**context)
    except jinja2.UndefinedError as exc:
        raise ValueError(f"{template}: the page context is missing a value: {exc}") from exc


# --- internals ---------------------------------------------------------------------------

_PAPERMILL_BANNER_TAGS = {"papermill-error-cell-tag"}
_SELF_CLOSED_ANCHOR = re.compile(r'<a (class="anchor-link" href="[^"<>]*") />')


def _failing_cell(cells: list, cell_index: int | None) -> int | None:
    """Index of the cell that failed: the first with an error output, else papermill's
    ``failed`` status (a timeout or dead kernel leaves no error output), else the index the
    executor reported (an index into the same notebook)."""
    for i, cell in enumerate(cells):
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            return i
    for i, cell in enumerate(cells):
        if cell.get("metadata", {}).get("papermill", {}).get("status") == "failed":
            return i
    if isinstance(cell_index, int) and 0 <= cell_index < len(cells):
        return cell_index
    return None


def _place_on_grid(cell, meta: dict, place: grid.Placement) -> bool:
    """Set the cell's grid area from ``lab2land.grid``'s placement (shared with the live
    dashboards); False if the grid hides the cell. A failing cell is always shown."""
    if not place.shown and not meta.get("failed"):
        return False
    if place.shown and not place.flow:
        meta["grid_style"] = (f"grid-column: {place.col + 1} / span {place.width}; "
                              f"grid-row: {place.row + 1} / span {place.height}")
    else:
        meta["grid_flow"] = True  # rows given by _place_flow_cells, once we know who is kept
    return True


def _place_flow_cells(kept: list, places: list[grid.Placement]) -> None:
    """Cells without a position go full width, in order, below the laid-out ones."""
    row = max((p.row + p.height for p in places if p.shown and not p.flow), default=0) + 1
    for cell in kept:
        meta = cell.metadata["lab2land"]
        if meta.pop("grid_flow", False):
            meta["grid_style"] = f"grid-column: 1 / -1; grid-row: {row}"
            row += 1


def _is_partial(name: str | None) -> bool:
    return bool(name) and Path(name).name.startswith("_")


def _dirs_key(template_dirs: list[Path] | None) -> tuple[str, ...]:
    return tuple(str(Path(d).resolve()) for d in template_dirs or [])


def _check_layout(layout: str) -> str:
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}: expected one of {', '.join(LAYOUTS)}")
    return layout


def _check_page(page: dict) -> None:
    for section, keys in _PAGE_KEYS.items():
        where = page if not section else page.get(section)
        if not isinstance(where, dict):
            raise ValueError(f"render_version: page[{section!r}] must be a dict, got {where!r}")
        missing = [k for k in keys if k not in where]
        if missing:
            prefix = f"page[{section!r}]" if section else "page"
            raise ValueError(f"render_version: {prefix} lacks {', '.join(map(repr, missing))}")


@functools.lru_cache(maxsize=32)
def _exporter(dirs: tuple[str, ...], show_code: bool, layout: str) -> tuple[ReportExporter, threading.Lock]:
    """One configured exporter per (template dirs, show_code, layout): building one parses
    every template, which costs more than rendering a small notebook."""
    config = Config()
    config.ReportPreprocessor.show_code = show_code
    config.ReportPreprocessor.layout = layout
    # Set through config: nbconvert builds its data-type filter per call with parent=exporter.
    config.NbConvertBase.display_data_priority = list(DISPLAY_PRIORITY)
    exporter = ReportExporter(
        config=config,
        template_name="report",
        extra_template_basedirs=[*dirs, str(TEMPLATES_DIR)],
        extra_template_paths=[*(str(Path(d) / "site") for d in dirs), str(TEMPLATES_DIR / "site")],
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        # Our template sanitizes with nh3 itself (nbconvert's sanitize_html needs bleach).
        sanitize_html=False,
        # Off: it reads any local path a markdown cell names (relative to our cwd) into the
        # page, and it mangles inline HTML; cell attachments are embedded regardless.
        embed_images=False,
        # Headings get ids and a ¶ link as in nbconvert/JupyterLab, so a notebook's own table
        # of contents works; the sanitizer keeps ids that cannot shadow page globals.
        exclude_anchor_links=False,
        anchor_link_text="",  # the ¶ is drawn by lab2land.css, so it is not part of the heading's text
    )
    exporter.register_preprocessor(ReportPreprocessor(config=config), enabled=True)
    return exporter, threading.Lock()


@functools.lru_cache(maxsize=32)
def _site_environment(dirs: tuple[str, ...]) -> jinja2.Environment:
    search = [str(Path(d) / "site") for d in dirs] + [str(TEMPLATES_DIR / "site")]
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(search),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["csp"] = _csp(widgets=False)
    # Data blocks (trend charts): already safe inside <script>, so not escaped again as HTML.
    env.filters["l2l_json"] = lambda value: markupsafe.Markup(sanitize.json_for_script(value))
    return env


def _csp(*, widgets: bool) -> str:
    """The static pages' Content-Security-Policy: the one the dashboards carry too, offline."""
    return sanitize.content_security_policy(widgets=widgets, live=False)


def _clean_outputs(outputs: list, cell_index: int, resolve_image=None) -> list:
    """Outputs as :func:`lab2land.sanitize.clean_output` leaves them (the dashboards' rule too);
    the template cleans HTML and markdown again where it prints them. Each output's ``<style>``
    rules are scoped to its own container, ``l2l-o<cell>-<output>`` (``metadata.lab2land.scope``)."""
    kept = []
    for n, output in enumerate(outputs):
        scope = f"l2l-o{cell_index}-{n}"
        clean = sanitize.clean_output(output, scope=scope, resolve_image=resolve_image)
        if clean is not None:
            clean = nbformat.from_dict(clean)
            if "text/html" in clean.get("data", {}):
                clean["metadata"] = {**clean.get("metadata", {}), "lab2land": {"scope": scope}}
            kept.append(clean)
    return kept


@jinja2.pass_context
def _clean_html_filter(context, html: str, scope: str | None = None) -> str:
    """``l2l_clean_html``: :func:`lab2land.sanitize.clean_html` with this page's image folder."""
    l2l = (context.get("resources") or {}).get("lab2land") or {}
    return sanitize.clean_html(html, scope=scope, resolve_image=l2l.get("images"))


def _has_output(nb: nbformat.NotebookNode, mime: str) -> bool:
    return any(mime in out.get("data", {})
               for cell in nb.cells if cell.cell_type == "code"
               for out in cell.get("outputs", []))


def _has_widgets(nb: nbformat.NotebookNode) -> bool:
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE_MIME, {}).get("state")
    return bool(state) and _has_output(nb, WIDGET_VIEW_MIME)


# TeX delimiters as Jupyter's markdown renderer recognizes them; "$5 and $10" counts too,
# as it would in Jupyter (where it also renders as math).
_MATH = re.compile(r"\$\$|\$[^$\n]+\$|\\\(|\\\[|\\begin\{")


def _has_math(nb: nbformat.NotebookNode) -> bool:
    """Whether the page needs MathJax: TeX in a markdown cell or a LaTeX/markdown output."""
    for cell in nb.cells:
        if cell.cell_type == "markdown" and _MATH.search(cell.source):
            return True
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "text/latex" in data or _MATH.search(data.get("text/markdown", "")):
                return True
    return False


def _dirname(url: str) -> str:
    return url.rsplit("/", 1)[0] + "/" if "/" in url else ""
