"""Griffe extension: read smoothsal's reStructuredText-flavoured Google docstrings as Markdown.

Two things, done to each docstring before Griffe parses it:

1. **grouped argument entries** (``steps, rule: ...``) are split per name (below);
2. **reST markup** that Markdown would mangle is rewritten: ``.. math::`` blocks become fenced
   ``text`` blocks (underscores and backslashes kept as written), and the roles ``:class:`~a.B```,
   ``:func:``, ``:mod:``, ``:meth:``, ``:attr:``, ``:data:``, ``:math:`` become code spans (the
   ``~`` form keeps the last name, as Sphinx shows it). Cross-reference links are not made: a
   docstring may name a private module that the reference does not document.

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


_ROLE = re.compile(r":(?:class|func|mod|meth|attr|data|obj|exc|math):`(~?)([^`]+)`")


def _role(match: re.Match[str]) -> str:
    text = match.group(2)
    if match.group(1):
        text = text.split(".")[-1]
    return f"`{text}`"


def rest_to_markdown(text: str) -> str:
    """``.. math::`` blocks as fenced ``text`` blocks and reST roles as code spans."""
    lines = text.split("\n")
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
            out.extend([f"{indent}```text", *(f"{indent}{b}" for b in body if b), f"{indent}```"])
            continue
        out.append(_ROLE.sub(_role, line))
        i += 1
    return "\n".join(out)


class GroupedParams(griffe.Extension):
    """Rewrite every docstring (grouped entries, reST markup) once the object tree is loaded."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rest_to_markdown(split_grouped_entries(obj.docstring.value))
