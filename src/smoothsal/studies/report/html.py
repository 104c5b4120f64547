"""HTML pieces of ``smoothsal report``: escaping, tables, a tiny Markdown converter, the page shell.

Everything that comes from a file or a setting goes through :func:`esc` (``html.escape`` with
quotes), so a caption, a setting or a table cell can never inject markup. The pages are static
and self-contained: one inline ``<style>``, no script, nothing fetched from the network, and
every link relative (built with :func:`href`), so the report works opened from disk.

Only the standard library is used.
"""

from __future__ import annotations

import csv
import html
import io
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

__all__ = [
    "CSS",
    "csv_table",
    "esc",
    "fmt",
    "href",
    "markdown_to_html",
    "page",
    "table",
    "value_html",
]

#: the one stylesheet, inlined in every page (no network, no files to lose)
CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d1d1f;background:#fafafa;line-height:1.45}
header{background:#23395d;color:#fff;padding:.8em 1.5em}
header a{color:#cfe0ff;margin-right:1em;text-decoration:none}
header a:hover{text-decoration:underline}
main{max-width:1200px;margin:0 auto;padding:1em 1.5em 3em}
h1{font-size:1.6em;margin:.4em 0}
h2{font-size:1.3em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
h3{font-size:1.1em;margin-top:1.4em}
figure{margin:1.2em 0 2em;padding:1em;background:#fff;border:1px solid #e3e3e3;border-radius:6px}
figure img{max-width:100%;height:auto;display:block;margin:0 auto .6em;background:#fff}
figcaption{font-size:.95em}
table{border-collapse:collapse;margin:.6em 0 1em;font-size:.88em;background:#fff}
th,td{border:1px solid #d5d5d5;padding:.25em .55em;text-align:left;vertical-align:top}
th{background:#eef2f8;word-break:normal;overflow-wrap:normal;hyphens:none}
td.num{text-align:right;font-variant-numeric:tabular-nums}
table.kv th{width:1%;white-space:nowrap}
details{margin:.4em 0}
summary{cursor:pointer;color:#23395d}
p,li,figcaption{overflow-wrap:anywhere}
td{overflow-wrap:break-word}
code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em}
pre{background:#f3f3f3;padding:.6em;overflow:auto;max-height:30em}
.muted{color:#666;font-size:.9em}
.warn{background:#fff4e5;border-left:4px solid #f0a000;padding:.4em .8em}
.cards{display:flex;flex-wrap:wrap;gap:1em}
.card{background:#fff;border:1px solid #e3e3e3;border-radius:6px;padding:.8em;width:260px;overflow-wrap:anywhere}
.card img{max-width:100%;height:auto;display:block}
ul.files{padding-left:1.2em}
""".strip()


def esc(value: Any) -> str:
    """``str(value)`` with ``& < > " '`` escaped: safe as element text and as a quoted attribute."""
    return html.escape(str(value), quote=True)


def href(path: str, fragment: str = "") -> str:
    """A relative URL for a ``/``-separated path (percent-encoded, so ``#``, ``?`` and spaces in a file
    name stay part of it) and an optional ``#fragment``, escaped for an attribute."""
    return esc(quote(path, safe="/") + (f"#{quote(fragment, safe='')}" if fragment else ""))


def fmt(value: Any) -> str:
    """A number as people read it (4 significant digits, ``inf``/``nan`` spelled out); other values as ``str``.

    The raw files keep every digit; the report links them beside each table.
    """
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3e}"
        return f"{value:.4g}"
    return str(value)


def _cell(value: Any, limit: int = 80) -> str:
    text = fmt(_number(value) if isinstance(value, str) else value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def _number(text: str) -> Any:
    """``text`` as an int or float when it is one (CSV cells), else unchanged."""
    t = text.strip()
    if re.fullmatch(r"[+-]?\d+", t):
        return int(t)
    if re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|nan)", t):
        return float(t)
    return text


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def header_html(text: Any) -> str:
    """A column header, escaped, that may wrap between words and after an underscore but never inside
    a word (``stability_norm_mean`` breaks as ``stability_`` / ``norm_`` / ``mean``; the stylesheet
    keeps ``th`` from breaking words)."""
    return esc(text).replace("_", "_<wbr>")


def cell_html(value: Any, depth: int = 1) -> str:
    """One table cell's content: a scalar formatted by :func:`fmt`, a list or dict as structured HTML
    (:func:`value_html`: a list of numbers as ``a, b, c``, a dict as a small key/value table), never
    a Python repr."""
    if isinstance(value, (Mapping, list, tuple)):
        return value_html(value, depth)
    return esc(_cell(value))


def table(header: Sequence[Any], rows: Iterable[Sequence[Any]], caption: str | None = None,
          css_class: str | None = None) -> str:  # fmt: skip
    """An HTML table; every header and cell escaped, numbers formatted by :func:`fmt` and right-aligned;
    a structured cell (list, dict) is shown by :func:`cell_html`."""
    parts = [f'<table class="{esc(css_class)}">' if css_class else "<table>"]
    if caption:
        parts.append(f"<caption>{esc(caption)}</caption>")
    parts.append("<thead><tr>" + "".join(f"<th>{header_html(h)}</th>" for h in header) + "</tr></thead><tbody>")
    for row in rows:
        cells = []
        for v in row:
            shown = _number(v) if isinstance(v, str) else v
            cls = ' class="num"' if _is_num(shown) else ""
            cells.append(f"<td{cls}>{cell_html(v)}</td>")
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def csv_table(text: str, columns: Sequence[str] | None = None, max_rows: int = 200) -> str:
    """A CSV file's text as an HTML table (only ``columns`` when given; at most ``max_rows`` rows)."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        return '<p class="muted">(empty CSV file)</p>'
    idx = list(range(len(header))) if columns is None else [header.index(c) for c in columns if c in header]
    rows, more = [], 0
    for row in reader:
        if len(rows) >= max_rows:
            more += 1
            continue
        rows.append([row[i] if i < len(row) else "" for i in idx])
    out = table([header[i] for i in idx], rows)
    if more:
        out += f'<p class="muted">… {more} more rows in the file.</p>'
    return out


def value_html(value: Any, depth: int = 0, max_items: int = 40) -> str:
    """A JSON-like value as HTML: dicts as key/value tables, lists of dicts as tables, lists of
    scalars as ``a, b, c``, scalars formatted; never a Python repr.

    Dicts nested deeper than 3 levels are written on one line (``key: value; ...``, :func:`_flat`);
    lists longer than ``max_items`` are cut with a note.
    """
    if isinstance(value, Mapping):
        if not value:
            return '<span class="muted">(none)</span>'
        if depth >= 3:
            return esc(_flat(value))
        items = list(value.items())
        rows = "".join(
            f"<tr><th>{esc(k)}</th><td>{value_html(v, depth + 1, max_items)}</td></tr>" for k, v in items[:max_items]
        )
        more = f'<tr><td colspan="2" class="muted">… {len(items) - max_items} more</td></tr>' if len(items) > max_items else ""
        return f'<table class="kv"><tbody>{rows}{more}</tbody></table>'
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, Mapping) for v in value) and depth < 3:
            keys: list[str] = []
            for v in value:
                keys += [str(k) for k in v if str(k) not in keys]
            shown = value[:max_items]
            body = [[v.get(k) for k in keys] for v in shown]
            out = table(keys, body)
            if len(value) > max_items:
                out += f'<p class="muted">… {len(value) - max_items} more rows</p>'
            return out
        items = [_flat(v, True) for v in value[:max_items]]
        more = f", … ({len(value)} in all)" if len(value) > max_items else ""
        return esc(", ".join(items) + more) if items else '<span class="muted">(empty)</span>'
    if value is None:
        return '<span class="muted">none</span>'
    cls = ' class="num"' if _is_num(value) else ""
    return f"<span{cls}>{esc(fmt(value))}</span>"


def _flat(value: Any, nested: bool = False) -> str:
    """A value as one short line of text, without brackets or braces: a list as ``a, b, c`` (a list
    inside a list in parentheses), a dict as ``key: value; key: value``."""
    if isinstance(value, (list, tuple)):
        text = ", ".join(_flat(v, True) for v in value[:12]) + (", …" if len(value) > 12 else "")
        return f"({text})" if nested else text
    if isinstance(value, Mapping):
        text = "; ".join(f"{k}: {_flat(v, True)}" for k, v in list(value.items())[:8]) + ("; …" if len(value) > 8 else "")
        return f"({text})" if nested else text
    return _cell(value, 120)


_INLINE = (
    (re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
    (re.compile(r"\*\*([^*]+)\*\*"), r"<strong>\1</strong>"),
)


def _inline(text: str) -> str:
    out = esc(text)  # escape first: the patterns below only add our own tags
    for pattern, repl in _INLINE:
        out = pattern.sub(repl, out)
    return out


def _row_cells(line: str) -> list[str]:
    s = line.strip().removeprefix("|").removesuffix("|")
    return [c.strip() for c in s.split("|")]


def _md_cell(text: str) -> str:
    cls = ' class="num"' if _is_num(_number(text.replace("*", ""))) else ""
    return f"<td{cls}>{_inline(text)}</td>"


def markdown_to_html(text: str, heading_offset: int = 2) -> str:
    """The Markdown the studies write (headings, paragraphs, ``-`` lists, pipe tables, ```code```,
    ``**bold**``) as HTML, every piece of text escaped. Anything else stays literal text.

    Headings move down by ``heading_offset`` levels (``#`` becomes ``<h3>`` by default), so a
    file's title sits under the page's own headings.
    """
    lines = text.splitlines()
    out: list[str] = []
    para: list[str] = []
    i = 0

    def flush() -> None:
        if para:
            out.append("<p>" + _inline(" ".join(para)) + "</p>")
            para.clear()

    while i < len(lines):
        line = lines[i]
        s = line.strip()
        if not s:
            flush()
            i += 1
        elif s.startswith("```"):
            flush()
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith("```"):
                j += 1
            out.append("<pre><code>" + esc("\n".join(lines[i + 1 : j])) + "</code></pre>")
            i = j + 1
        elif m := re.match(r"(#{1,6})\s+(.*)", s):
            flush()
            level = min(6, len(m.group(1)) + heading_offset)
            out.append(f"<h{level}>{_inline(m.group(2).rstrip('#').strip())}</h{level}>")
            i += 1
        elif (
            s.startswith("|")
            and i + 1 < len(lines)
            and re.fullmatch(r"\|?\s*:?-{1,}:?\s*(\|\s*:?-{1,}:?\s*)*\|?", lines[i + 1].strip())
        ):
            flush()
            header = _row_cells(s)
            rows = []
            j = i + 2
            while j < len(lines) and lines[j].strip().startswith("|"):
                rows.append(_row_cells(lines[j]))
                j += 1
            cells = "".join(f"<th>{_inline(h).replace('_', '_<wbr>')}</th>" for h in header)
            body = "".join("<tr>" + "".join(_md_cell(c) for c in r) + "</tr>" for r in rows)
            out.append(f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>")
            i = j
        elif re.match(r"[-*]\s+", s):
            flush()
            items = []
            while i < len(lines) and re.match(r"[-*]\s+", lines[i].strip()):
                items.append("<li>" + _inline(re.sub(r"^[-*]\s+", "", lines[i].strip())) + "</li>")
                i += 1
            out.append("<ul>" + "".join(items) + "</ul>")
        else:
            para.append(s)
            i += 1
    flush()
    return "\n".join(out)


def page(title: str, body: str, nav: Sequence[tuple[str, str]] = (), subtitle: str = "") -> str:
    """A complete HTML page: the inline stylesheet, a header with ``nav`` links ``(label, href)``, ``body``.

    ``title`` and ``subtitle`` and the labels are escaped here; ``body`` is HTML built by this
    module's functions (already escaped); the hrefs are passed through :func:`href`.
    """
    links = "".join(f'<a href="{href(target)}">{esc(label)}</a>' for label, target in nav)
    sub = f'<div class="muted" style="color:#cfe0ff">{esc(subtitle)}</div>' if subtitle else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>\n"
        f"<body><header><nav>{links}</nav>{sub}</header>\n<main>\n<h1>{esc(title)}</h1>\n{body}\n</main></body></html>\n"
    )
