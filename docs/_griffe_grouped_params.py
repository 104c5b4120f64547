r"""Griffe extension: read smoothsal's reStructuredText-flavoured Google docstrings as Markdown.

Two things, done to each docstring before Griffe parses it:

1. **grouped argument entries** (``steps, rule: ...``) are split per name (below);
2. **reST markup** that Markdown would mangle is rewritten: ``.. math::`` blocks become display
   equations ``\[ ... \]`` (a paragraph of their own) and ``:math:`x``` inline equations
   ``\( x \)``, which ``pymdownx.arithmatex`` (generic mode) passes to MathJax untouched
   (underscores and backslashes kept as written; ``docs/_hooks.py`` ships MathJax in the site); the
   roles ``:class:`~a.B```, ``:func:``, ``:mod:``, ``:meth:``, ``:attr:``, ``:data:`` become code
   spans (the ``~`` form keeps the last name, as Sphinx shows it). Cross-reference links are not
   made: a docstring may name a private module that the reference does not document.

Grouped entries:

smoothsal's docstrings describe related arguments in one Google-style entry (a habit of this
project, kept where arguments share one meaning), ``n_samples, seed, statistic: passed to Smooth``. Griffe reads an entry's name
as one parameter, so it would warn that ``n_samples, seed, statistic`` is not in the signature and
render it as one name. This extension splits each such entry before the docstring is parsed: the
first name keeps the description, each other name gets a one-line pointer to it. Every name is
then still checked against the signature (a misspelt or removed argument stays a warning, and so a
failed ``mkdocs build --strict``).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_SECTIONS = re.compile(r"^\s*(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments|Other Parameters):\s*$")
_GROUPED = re.compile(r"^(\s+)(\*{0,2}\w+(?:\s*,\s*\*{0,2}\w+)+)\s*:(.*)$")


def split_grouped_entries(text: str) -> str:
    """``text`` with every grouped ``a, b: ...`` entry of an argument section split per name."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        out.append(line)
        i += 1
        if not _SECTIONS.match(line):
            continue
        header_indent = len(line) - len(line.lstrip())
        item_indent = None
        while i < len(lines):
            cur = lines[i]
            if cur.strip() == "":
                out.append(cur)
                i += 1
                continue
            indent = len(cur) - len(cur.lstrip())
            if indent <= header_indent:
                break  # the section ended
            if item_indent is None:
                item_indent = indent
            grouped = _GROUPED.match(cur) if indent == item_indent else None
            if grouped is None:
                out.append(cur)
                i += 1
                continue
            names = [n.strip() for n in grouped.group(2).split(",")]
            out.append(f"{grouped.group(1)}{names[0]}:{grouped.group(3)}")
            i += 1
            while i < len(lines) and (lines[i].strip() == "" or len(lines[i]) - len(lines[i].lstrip()) > item_indent):
                if lines[i].strip() == "" and (i + 1 >= len(lines) or len(lines[i + 1]) - len(lines[i + 1].lstrip()) <= item_indent):
                    break
                out.append(lines[i])
                i += 1
            out.extend(f"{grouped.group(1)}{name}: see `{names[0]}`." for name in names[1:])
    return "\n".join(out)


_ROLE = re.compile(r":(?:class|func|mod|meth|attr|data|obj|exc):`(~?)([^`]+)`")
_MATH = re.compile(r":math:`([^`]+)`")  # may span lines: the line breaks are kept inside the equation
_LIST_ITEM = re.compile(r"^(\s*)(?:[*+-]|\d+[.)])\s")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _starts_list(out: list[str], k: int, marker: int) -> bool:
    """Whether the list item ``out[k]`` (marker at column ``marker``) belongs to a Markdown list: the
    list's first item follows a blank line or opens the text (else Markdown reads the bullets as text)."""
    above = [line for line in out[:k]]
    while above:
        prev = above.pop()
        if not prev.strip():
            nxt = next((line for line in reversed(above) if line.strip()), None)
            if nxt is None or (_indent(nxt) <= marker and not _LIST_ITEM.match(nxt)):
                return True  # a blank line, then the list: Markdown reads it as a list
            continue  # a blank line inside the list (between items, or before an item's equation)
        if _indent(prev) <= marker and not _LIST_ITEM.match(prev):
            return False  # the list is glued to the paragraph above: Markdown reads the bullets as text
    return True


_HEADER = re.compile(r"^\s*[A-Z][\w ]*:\s*$")  # a Google section header ("Args:", "Returns:")


def _markdown_lists(lines: list[str]) -> list[str]:
    """reST bullet lists as Markdown reads them: a blank line before a list glued to its paragraph, and the
    paragraphs of an item after a blank line (reST: indented by the marker's width) indented 4 spaces past
    the marker. Lines inside a list item right after its marker line stay as they are (lazy continuation)."""
    out: list[str] = []
    marker: int | None = None  # the column of the current item's marker
    after_blank = False
    for line in lines:
        if not line.strip():
            out.append(line)
            after_blank = marker is not None
            continue
        ind, item = _indent(line), _LIST_ITEM.match(line)
        if item:
            prev = next((p for p in reversed(out) if p.strip()), None)
            if (marker is None or ind < marker) and out and out[-1].strip() and prev is not None \
                    and not _LIST_ITEM.match(prev) and _indent(prev) <= ind and not _HEADER.match(prev):
                out.append("")  # Markdown needs a blank line before a list
            marker, after_blank = ind, False
            out.append(line)
            continue
        if marker is not None and ind <= marker:
            marker = None  # the list ended
        if marker is not None and after_blank and ind >= marker + 2:
            line = "  " + line  # a later paragraph of the item: 4 spaces past the marker
        out.append(line)
    return out


def _block_indent(out: list[str], indent: str) -> str:
    """The indentation of a display equation written at ``indent``: inside an item of a Markdown list
    (reST continues an item with the marker's width, Markdown wants 4 spaces more than the marker),
    4 spaces past the marker; else ``indent`` (a deeper indentation would make it a code block)."""
    for k in range(len(out) - 1, -1, -1):
        prev = out[k]
        if prev.strip() and _indent(prev) < len(indent):
            item = _LIST_ITEM.match(prev)
            if item and _starts_list(out, k, len(item.group(1))):
                return " " * (len(item.group(1)) + 4)
            return indent if item is None else ""
    return indent


def _role(match: re.Match[str]) -> str:
    text = match.group(2)
    if match.group(1):
        text = text.split(".")[-1]
    return f"`{text}`"


def rest_to_markdown(text: str) -> str:
    """``.. math::`` blocks as display equations ``\\[ ... \\]``, ``:math:`` as ``\\( ... \\)``, other roles as code spans."""
    lines = _markdown_lists(_MATH.sub(lambda m: f"\\({m.group(1)}\\)", text).split("\n"))
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip()
        if stripped.startswith(".. math::"):
            indent = line[: len(line) - len(stripped)]
            body = [stripped[len(".. math::"):].strip()] if stripped[len(".. math::"):].strip() else []
            i += 1
            while i < len(lines) and (lines[i].strip() == "" or len(lines[i]) - len(lines[i].lstrip()) > len(indent)):
                if lines[i].strip() == "" and (i + 1 >= len(lines) or len(lines[i + 1]) - len(lines[i + 1].lstrip()) <= len(indent)):
                    break
                body.append(lines[i].strip())
                i += 1
            if out and out[-1].strip():
                out.append("")  # a display equation is a paragraph of its own
            at = _block_indent(out, indent)
            out.extend([f"{at}\\[", *(f"{at}{b}" for b in body if b), f"{at}\\]"])
            if i < len(lines) and lines[i].strip():
                out.append("")
            continue
        out.append(_ROLE.sub(_role, line))
        i += 1
    return "\n".join(out)


class GroupedParams(griffe.Extension):
    """Rewrite every docstring (grouped entries, reST markup) once the object tree is loaded."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rest_to_markdown(split_grouped_entries(obj.docstring.value))
