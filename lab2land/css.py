"""Keep the CSS of notebook outputs (pandas Styler tables, styled HTML) without letting it load,
run, or restyle anything outside its own output.

A Styler table is ``<style>`` rules keyed on per-table ids plus the table; dropping the rules
(what the HTML sanitizer does with every ``<style>``) leaves a plain table. Here each rule is
parsed with tinycss2 (a CSS Syntax Level 3 parser, so a stray ``}`` or comment cannot desync us
from the browser), kept only if every selector, property and value is on an allow-list, and
re-serialized by us with every selector prefixed by the output's own container id: a rule can
only ever match elements inside that container, never the page or another output.

What is dropped: every at-rule but ``@media``/``@supports`` (so ``@import``, ``@font-face``,
``@namespace``, ``@keyframes``), anything that loads (``url()``, ``image-set()``, ``src``),
anything that runs (``expression()``, ``behavior``, ``-moz-binding``), custom properties,
``position: fixed`` and selectors that start at a sibling (``+``/``~``) of the container.
The container itself clips what it holds (``contain: paint`` in lab2land.css), so an allowed
``position: absolute`` tooltip cannot cover the page's own banner or links.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import tinycss2
from tinycss2 import ast

# Inline ``style=""`` attributes (nh3 filters them): no positioning at all there, since an inline
# style has no container of ours around it.
INLINE_PROPERTIES = frozenset({
    "color", "background", "background-color", "opacity",
    "font", "font-family", "font-size", "font-style", "font-weight", "font-variant",
    "line-height", "letter-spacing", "text-align", "text-decoration", "text-transform",
    "vertical-align", "white-space", "word-break", "overflow-wrap",
    "display", "flex", "flex-basis", "flex-direction", "flex-grow", "flex-shrink", "flex-wrap",
    "gap", "row-gap", "column-gap", "align-items", "align-self", "justify-content",
    "grid-template-columns", "grid-column", "grid-row",
    "width", "min-width", "max-width", "height", "min-height", "max-height", "box-sizing",
    "margin", "margin-top", "margin-right", "margin-bottom", "margin-left",
    "padding", "padding-top", "padding-right", "padding-bottom", "padding-left",
    "border", "border-top", "border-right", "border-bottom", "border-left", "border-color",
    "border-style", "border-width", "border-radius", "border-collapse", "border-spacing",
    "list-style", "list-style-type", "overflow", "overflow-x", "overflow-y",
})

_SIDES = ("top", "right", "bottom", "left")
# Style blocks may also draw what Styler draws: bars (gradients), tooltips (absolute position,
# visibility, content), captions, per-side borders, shadows.
BLOCK_PROPERTIES = INLINE_PROPERTIES | {
    "background-image", "background-position", "background-size", "background-repeat", "background-clip",
    "background-origin", "outline", "outline-color", "outline-style", "outline-width", "outline-offset",
    "text-shadow", "box-shadow", "visibility", "position", "top", "right", "bottom", "left", "z-index",
    "content", "quotes", "table-layout", "caption-side", "empty-cells", "text-indent", "text-overflow",
    "word-wrap", "word-spacing", "writing-mode", "float", "clear", "cursor", "order", "align-content",
    "justify-items", "justify-self", "place-items", "place-content", "grid-template-rows", "grid-area",
    "grid-auto-flow", "grid-auto-rows", "grid-auto-columns", "hyphens", "tab-size", "font-stretch",
    "text-decoration-color", "text-decoration-line", "text-decoration-style", "counter-reset",
    "counter-increment", "list-style-position",
    *(f"border-{s}-{p}" for s in _SIDES for p in ("color", "style", "width")),
    *(f"border-{v}-{h}-radius" for v in ("top", "bottom") for h in ("left", "right")),
}

# Functions in values: colours, gradients, arithmetic. Not url(), image-set(), image(),
# element(), cross-fade() (they load), expression() (old IE script), nor var() (custom
# properties are dropped, and the page's own may hold url()s).
_FUNCTIONS = frozenset({
    "rgb", "rgba", "hsl", "hsla", "hwb", "lab", "lch", "oklab", "oklch", "color-mix",
    "linear-gradient", "repeating-linear-gradient", "radial-gradient", "repeating-radial-gradient",
    "conic-gradient", "repeating-conic-gradient", "calc", "min", "max", "clamp",
    "counter", "counters", "repeat", "minmax", "fit-content",
})
# `sticky` (Styler.set_sticky) stays inside its own table; `fixed` would pin to the viewport.
_POSITIONS = frozenset({"static", "relative", "absolute", "sticky"})
_VALUE_LITERALS = frozenset({",", "/", "+", "-", "*", "%"})

# Pseudo-classes taking arguments; their arguments are checked as selectors too.
_SELECTOR_FUNCTIONS = frozenset({
    "not", "is", "where", "has", "nth-child", "nth-last-child", "nth-of-type", "nth-last-of-type", "lang", "dir",
})
_SELECTOR_LITERALS = frozenset({".", "*", ">", "+", "~", ":"})
_ATTRIBUTE_LITERALS = frozenset({"=", "~", "|", "^", "$", "*"})
_NESTED_AT_RULES = frozenset({"media", "supports"})

SCOPE_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,79}\Z")


def clean_css(css: str, scope: str) -> str:
    """Allow-listed rules of ``css``, each selector prefixed with ``#scope``.

    Idempotent: a selector that already starts with ``#scope`` is not prefixed twice, so text
    cleaned once can be cleaned again (pages clean outputs twice, as defence in depth).

    Args:
        css: Untrusted CSS (the text of a ``<style>`` element in a notebook output).
        scope: The id of the element that holds the output (``[A-Za-z][A-Za-z0-9_-]*``).

    Returns:
        CSS text safe inside ``<style>``: no ``<`` anywhere, nothing that loads or runs.

    Raises:
        ValueError: ``scope`` is not a plain id.
    """
    if not SCOPE_RE.match(scope or ""):
        raise ValueError(f"CSS scope must be a plain id ([A-Za-z][A-Za-z0-9_-]*), got {scope!r}")
    rules = tinycss2.parse_stylesheet(css, skip_comments=True, skip_whitespace=True)
    text = "\n".join(filter(None, (_rule(r, scope) for r in rules)))
    # `<` can only survive inside strings (delimiters and idents with it are refused), where the
    # CSS escape keeps its meaning; it must never meet `</style`.
    return text.replace("<", "\\3c ")


def style_texts(html: str) -> list[str]:
    """The text of every ``<style>`` element in an HTML fragment (in document order)."""
    parser = _StyleCollector()
    parser.feed(html)
    parser.close()
    return parser.styles


# --- internals ---------------------------------------------------------------------------

class _StyleCollector(HTMLParser):
    """Collects ``<style>`` contents; the HTML itself is cleaned elsewhere (nh3), so a parse that
    differs from the browser's can only add CSS that is cleaned and scoped like the rest."""

    def __init__(self):
        super().__init__(convert_charrefs=False)
        self.styles: list[str] = []
        self._open = False

    def handle_starttag(self, tag, attrs):
        if tag == "style":
            self._open = True
            self.styles.append("")

    def handle_endtag(self, tag):
        if tag == "style":
            self._open = False

    def handle_data(self, data):
        if self._open:
            self.styles[-1] += data


def _rule(rule, scope: str) -> str | None:
    if isinstance(rule, ast.QualifiedRule):
        selectors = _selectors(rule.prelude, scope)
        body = _declarations(rule.content)
        return f"{selectors}{{{body}}}" if selectors and body else None
    if isinstance(rule, ast.AtRule) and rule.lower_at_keyword in _NESTED_AT_RULES and rule.content is not None:
        if not _condition_ok(rule.prelude):
            return None
        inner = tinycss2.parse_rule_list(rule.content, skip_comments=True, skip_whitespace=True)
        body = "\n".join(filter(None, (_rule(r, scope) for r in inner)))
        return f"@{rule.lower_at_keyword} {tinycss2.serialize(rule.prelude).strip()}{{{body}}}" if body else None
    return None  # @import, @font-face, @namespace, @keyframes, @page, parse errors, ...


def _condition_ok(prelude) -> bool:
    """A media or supports condition: idents, numbers, parentheses; nothing that loads."""
    return all(_value_token_ok(t, in_condition=True) for t in prelude)


def _selectors(prelude, scope: str) -> str | None:
    """The prelude's selector list, each prefixed with ``#scope``; None if any is not allowed
    (as a browser drops a whole rule for one bad selector)."""
    groups: list[list] = [[]]
    for token in prelude:
        if isinstance(token, ast.LiteralToken) and token.value == ",":
            groups.append([])
        else:
            groups[-1].append(token)
    out = []
    for tokens in groups:
        tokens = _strip(tokens)
        if tokens and isinstance(tokens[0], ast.HashToken) and tokens[0].value == scope:
            # Already scoped (a second cleaning): the rest must start with a descendant space or `>`.
            rest = tokens[1:]
            if not rest or not isinstance(rest[0], ast.WhitespaceToken | ast.LiteralToken):
                return None
            tokens = _strip(rest)
        if not tokens or not all(_selector_token_ok(t) for t in tokens):
            return None
        first = tokens[0]
        if isinstance(first, ast.LiteralToken) and first.value in ("+", "~"):
            return None  # a sibling of the container is outside it
        out.append(f"#{scope} {tinycss2.serialize(tokens)}")
    return ", ".join(out)


def _strip(tokens: list) -> list:
    while tokens and isinstance(tokens[0], ast.WhitespaceToken):
        tokens = tokens[1:]
    while tokens and isinstance(tokens[-1], ast.WhitespaceToken):
        tokens = tokens[:-1]
    return tokens


def _plain(text: str) -> bool:
    return re.fullmatch(r"-?[A-Za-z_][A-Za-z0-9_-]*", text) is not None


def _selector_token_ok(token) -> bool:
    if isinstance(token, ast.WhitespaceToken):
        return True
    if isinstance(token, ast.IdentToken | ast.HashToken):
        return _plain(token.value) or (isinstance(token, ast.HashToken) and re.fullmatch(r"[\w-]+", token.value))
    if isinstance(token, ast.LiteralToken):
        return token.value in _SELECTOR_LITERALS
    if isinstance(token, ast.SquareBracketsBlock):
        return all(isinstance(t, ast.WhitespaceToken | ast.StringToken) or
                   (isinstance(t, ast.IdentToken) and _plain(t.value)) or
                   (isinstance(t, ast.LiteralToken) and t.value in _ATTRIBUTE_LITERALS) for t in token.content)
    if isinstance(token, ast.FunctionBlock):
        return token.lower_name in _SELECTOR_FUNCTIONS and all(
            _selector_token_ok(t) or isinstance(t, ast.NumberToken | ast.DimensionToken) or
            (isinstance(t, ast.LiteralToken) and t.value in ("+", "-", ",")) for t in token.arguments)
    return False


def _declarations(content) -> str:
    kept = []
    for decl in tinycss2.parse_blocks_contents(content, skip_comments=True, skip_whitespace=True):
        if not isinstance(decl, ast.Declaration) or decl.lower_name not in BLOCK_PROPERTIES:
            continue  # nested rules, at-rules, custom properties, behavior, -moz-binding, ...
        value = _strip(list(decl.value))
        if not value or not all(_value_token_ok(t) for t in value):
            continue
        if decl.lower_name == "position" and not (
                len(value) == 1 and isinstance(value[0], ast.IdentToken) and value[0].lower_value in _POSITIONS):
            continue
        kept.append(f"{decl.lower_name}: {tinycss2.serialize(value)}{' !important' if decl.important else ''}")
    return "; ".join(kept)


def _value_token_ok(token, in_condition: bool = False) -> bool:
    if isinstance(token, ast.WhitespaceToken | ast.NumberToken | ast.PercentageToken | ast.DimensionToken |
                  ast.StringToken):
        return True
    if isinstance(token, ast.IdentToken | ast.HashToken):
        return _plain(token.value) or bool(re.fullmatch(r"[\w-]+", token.value))
    if isinstance(token, ast.LiteralToken):
        return token.value in _VALUE_LITERALS or (in_condition and token.value == ":")
    if isinstance(token, ast.FunctionBlock):
        return token.lower_name in _FUNCTIONS and all(_value_token_ok(t, in_condition) for t in token.arguments)
    if isinstance(token, ast.ParenthesesBlock | ast.SquareBracketsBlock):
        return all(_value_token_ok(t, in_condition) for t in token.content)
    return False  # url(...), {...}, unicode-range, at-keywords, bad tokens
