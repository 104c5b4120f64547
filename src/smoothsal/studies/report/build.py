"""Build the static HTML report from study output folders (``smoothsal report``).

The report reads files only, never results stores' internals or models, so it runs in a second
or two whatever the studies cost. For each study folder it takes, in order:

1. ``manifest.json`` when present (written by ``smoothsal reproduce``)::

       {"study": "...", "title": "...", "description": "...",
        "figures": [{"file": "fig3.png", "caption": "...", "settings": {...}}],
        "tables": [{"file": "table1.md", "caption": "..."}],
        "numbers": {...}}

   (a figure may also carry ``"numbers"``, a dict, and ``"data"``, the file(s) its numbers are in);
2. built-in knowledge of the existing studies' files (:mod:`smoothsal.studies.report.known`:
   ``explain``, ``tradeoff``, ``train_noise``, ``evaluate``), recognised by the store's
   ``config.json`` or by their file names;
3. a generic listing for any other file: images become figures named by their file, CSV and
   Markdown become tables, JSON/NPZ/anything else raw files.

Output (``out``): ``index.html`` (every study, the report card of ``evaluate`` when present),
one ``<study>.html`` per study, each study's files copied under ``<study>/`` (files larger than
``max_copy_bytes`` are linked relatively instead), and ``report.json`` (what was written; it
also marks the folder as a report, so a rebuild may replace it). All links are relative and
checked after writing (:func:`broken_links`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import zipfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from smoothsal._core.jsontypes import JSONObject
from smoothsal.studies.report import html as H
from smoothsal.studies.report.known import KNOWN, KnownFile, identify
from smoothsal.studies.store import write_json

__all__ = ["Item", "ReportResult", "Study", "broken_links", "build_report", "find_study_folders", "load_study"]

IMAGE_EXT = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp"}
TABLE_EXT = {".csv", ".md"}
#: folders never listed: the results store's arrays, caches
SKIP_DIRS = {"arrays", "__pycache__", ".git", "models", "cache", ".cache"}
MANIFEST = "manifest.json"
MARKER = "report.json"
GENERATOR = "smoothsal report"


@dataclass
class Item:
    """One file of a study as the report shows it.

    Attributes:
        file: path inside the study folder, ``/``-separated.
        kind: ``"figure"``, ``"table"`` or ``"raw"``.
        caption: what it shows (plain text; escaped when written).
        settings: the settings it was made with (shown as a key/value table).
        numbers: HTML blocks (built by :mod:`~smoothsal.studies.report.html`, escaped) with the
            numbers behind it.
        data: other files of the study that hold its numbers (linked beside it).
        href: its link, relative to the report folder (set when the files are placed).
        missing: named by a manifest but not on disk.
    """

    file: str
    kind: str
    caption: str = ""
    settings: JSONObject = field(default_factory=dict)
    numbers: list[str] = field(default_factory=list)
    data: list[str] = field(default_factory=list)
    href: str = ""
    missing: bool = False
    size: int = 0
    copied: bool = True


@dataclass
class Study:
    """A study folder as the report shows it (one page)."""

    name: str
    title: str
    folder: Path
    source: str  # "manifest", "built-in", "generic"
    description: str = ""
    command: str = ""
    settings: JSONObject = field(default_factory=dict)
    figures: list[Item] = field(default_factory=list)
    tables: list[Item] = field(default_factory=list)
    raw: list[Item] = field(default_factory=list)
    numbers: list[str] = field(default_factory=list)
    report_card: str = ""  # HTML of the report card (evaluate), shown on the index too
    notes: list[str] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)  # one-line conclusions, first on the index
    slug: str = ""

    def items(self) -> list[Item]:
        return [*self.figures, *self.tables, *self.raw]


@dataclass
class ReportResult:
    """What :func:`build_report` wrote."""

    index: Path
    studies: list[Study]
    broken: list[str]
    seconds: float

    @property
    def n_figures(self) -> int:
        return sum(len(s.figures) for s in self.studies)


# ---- finding study folders ------------------------------------------------------------------------
def _is_report(folder: Path) -> bool:
    try:
        return json.loads((folder / MARKER).read_text()).get("generator") == GENERATOR
    except (OSError, ValueError, AttributeError):
        return False


def _own_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and not p.name.endswith(".tmp"))


def _displayable(folder: Path) -> bool:
    """Whether a folder of no known study has output of its own (figures, tables, JSON, NPZ; not only logs)."""
    return any(p.suffix.lower() in IMAGE_EXT | TABLE_EXT | {".json", ".npz"} for p in _own_files(folder))


def find_study_folders(paths: list[Path], exclude: Path | None = None, max_depth: int = 3) -> list[Path]:
    """The study folders in ``paths``: each path itself when it is one, else the study folders below it.

    A folder is a study when it has ``manifest.json`` or is recognised as a known study; below
    that, any folder with figures, tables or raw files of its own. Folders of an earlier report,
    ``exclude`` (the report being written) and the store's ``arrays/`` are skipped.
    """
    found: list[Path] = []
    excl = exclude.resolve() if exclude is not None else None

    def visit(folder: Path, depth: int) -> None:
        if folder.resolve() == excl or _is_report(folder) or folder.name in SKIP_DIRS:
            return
        if (folder / MANIFEST).is_file() or identify(folder) is not None:
            found.append(folder)
            return
        if _displayable(folder):
            found.append(folder)
        if depth < max_depth:
            for child in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
                visit(child, depth + 1)

    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"`out_dirs`: no folder at {str(path)!r}")
        if not path.is_dir():
            raise ValueError(f"`out_dirs`: {str(path)!r} is not a folder")
        visit(path, 0)
    unique: list[Path] = []
    for f in found:
        if f.resolve() not in {u.resolve() for u in unique}:
            unique.append(f)
    return unique


# ---- reading one study ----------------------------------------------------------------------------
def _files(folder: Path, skip: frozenset[Path] = frozenset()) -> list[str]:
    """Every file of the study (``/``-separated, relative), recursing except into :data:`SKIP_DIRS`,
    reports and the folders in ``skip`` (other studies found below this one)."""
    out: list[str] = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
        if Path(root) != folder and (_is_report(Path(root)) or Path(root).resolve() in skip):
            dirs[:] = []
            continue
        for n in sorted(names):
            if n.startswith(".") or n.endswith(".tmp"):
                continue
            out.append(Path(root, n).relative_to(folder).as_posix())
    return out


def _safe_rel(name: Any) -> str | None:
    """A manifest's file name as a relative path inside the folder, or ``None`` when it is not one."""
    if not isinstance(name, str) or not name.strip():
        return None
    p = Path(name)
    if p.is_absolute() or ".." in p.parts:
        return None
    return p.as_posix()


def npz_contents(path: Path) -> list[list[Any]]:
    """``[name, shape, dtype]`` of each array in an ``.npz`` file, read from the headers only; the
    shape written as people read it, ``1 × 3 × 224 × 224`` (``4 (1-d)``, ``scalar``)."""
    import numpy as np

    rows = []
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if not info.filename.endswith(".npy"):
                continue
            with zf.open(info) as fh:
                major, _ = np.lib.format.read_magic(fh)
                read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
                shape, _, dtype = read(fh)  # the header only, never the data
            text = " × ".join(map(str, shape)) if len(shape) > 1 else (f"{shape[0]} (1-d)" if shape else "scalar")
            rows.append([info.filename[:-4], text, str(dtype)])
    return rows


def _read_manifest(folder: Path, study: Study) -> JSONObject | None:
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
        return manifest
    except (OSError, ValueError) as err:
        study.notes.append(f"{MANIFEST} could not be read ({err}); its files are listed without its captions.")
        return None


def _manifest_items(folder: Path, manifest: JSONObject, study: Study) -> dict[str, Item]:
    items: dict[str, Item] = {}
    for key, kind in (("figures", "figure"), ("tables", "table")):
        entries = manifest.get(key) or []
        if not isinstance(entries, list):
            study.notes.append(f"{MANIFEST}: {key!r} is not a list; ignored.")
            continue
        for entry in entries:
            entry = {"file": entry} if isinstance(entry, str) else entry
            rel = _safe_rel(entry.get("file")) if isinstance(entry, dict) else None
            if rel is None:
                study.notes.append(f"{MANIFEST}: an entry of {key!r} has no usable file name ({entry!r}); ignored.")
                continue
            item = Item(rel, kind, caption=str(entry.get("caption") or ""))
            settings = entry.get("settings")
            if isinstance(settings, dict):
                item.settings = settings
            numbers = entry.get("numbers")
            if numbers not in (None, {}, []):
                item.numbers.append(H.value_html(numbers))
            data = entry.get("data")
            for d in [data] if isinstance(data, str) else (data or []):
                d = _safe_rel(d)
                if d is not None:
                    item.data.append(d)
            if not (folder / rel).is_file():
                item.missing = True
                study.notes.append(f"{MANIFEST} names {rel!r}, which is not in the folder.")
            items[rel] = item
    return items


def _link_manifest_numbers(items: dict[str, Item], numbers: Any) -> None:
    """Give each manifest figure without numbers of its own the numbers that go with it, by name:
    the table with the same stem (``fig3_noise_levels.png`` ↔ ``fig3_noise_levels.md``) and the
    ``numbers`` entries of its figure number (``fig3_...png`` ↔ ``"fig3_noisiness"``)."""
    tables = {Path(rel).with_suffix("").as_posix(): rel for rel, i in items.items() if i.kind == "table"}
    for rel, item in items.items():
        if item.kind != "figure" or item.numbers:
            continue
        stem = Path(rel).with_suffix("").as_posix()
        if stem in tables and tables[stem] not in item.data:
            item.data.append(tables[stem])
            table_html = "".join(items[tables[stem]].numbers)
            item.numbers.append(f'<p class="muted">from {H.esc(tables[stem])}:</p>{table_html}')
        m = re.match(r"(fig\d+(?:_\d+)*)(?:_|$)", Path(rel).stem)
        if m and isinstance(numbers, dict):
            mine = {k: v for k, v in numbers.items() if k == m.group(1) or k.startswith(m.group(1) + "_")}
            if mine:
                item.numbers.append(H.value_html(mine))


def _summary_extras(folder: Path, study: Study) -> None:
    """What a manifest study's ``summary.json`` adds (``smoothsal reproduce`` writes one): its settings,
    notes, run time, and the paper's own numbers (``"paper"``), shown beside ours."""
    path = folder / "summary.json"
    if not path.is_file():
        return
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        study.notes.append(f"summary.json could not be read ({err}).")
        return
    if not isinstance(summary, dict):
        return
    if isinstance(summary.get("settings"), dict) and not study.settings:
        study.settings = summary["settings"]
    notes = summary.get("notes")
    study.notes += [str(n) for n in notes] if isinstance(notes, list) else []
    extra = {k: summary[k] for k in ("seconds", "quick", "config_hash") if k in summary}
    if extra:
        study.numbers.append("<h3>Run</h3>" + H.value_html(extra))
    if summary.get("paper") not in (None, {}, []):
        study.numbers.append("<h3>What the paper reports</h3>" + H.value_html(summary["paper"]))


def _generic_item(folder: Path, rel: str) -> Item:
    ext = Path(rel).suffix.lower()
    if ext in IMAGE_EXT:
        return Item(rel, "figure", caption=f"{Path(rel).name} (no caption known for this file).")
    if ext in TABLE_EXT:
        return Item(rel, "table", caption=f"{Path(rel).name}.")
    return Item(rel, "raw")


def load_study(folder: Path, skip: frozenset[Path] = frozenset()) -> Study:
    """Read one study folder: manifest first, then built-in knowledge, then a generic listing.

    ``skip``: resolved folders below ``folder`` that are studies of their own (not listed here).
    """
    name = folder.resolve().name
    study = Study(name=name, title=name, folder=folder, source="generic")
    manifest = _read_manifest(folder, study)
    known_name = identify(folder)
    items: dict[str, Item] = {}
    if manifest is not None:
        study.source = "manifest"
        study.name = str(manifest.get("study") or known_name or name)
        study.title = str(manifest.get("title") or study.name)
        study.description = str(manifest.get("description") or "")
        study.command = str(manifest.get("command") or "")
        if isinstance(manifest.get("settings"), dict):
            study.settings = manifest["settings"]
        items.update(_manifest_items(folder, manifest, study))
        numbers = manifest.get("numbers")
        if numbers not in (None, {}, []):
            study.numbers.append(H.value_html(numbers))
        _summary_extras(folder, study)
    if known_name is not None:
        known = KNOWN[known_name](folder)
        study.notes += known.notes
        if manifest is None:
            study.source, study.name = "built-in", known_name
            study.title, study.description, study.command = known.title, known.description, known.command
        study.settings = study.settings or known.settings
        study.numbers += known.numbers
        study.report_card = known.report_card
        study.verdicts += known.verdicts
        for rel, kf in known.files.items():
            if rel in items:  # the manifest's caption wins; the built-in numbers are added
                items[rel].numbers += kf.numbers
                items[rel].data += [d for d in kf.data if d not in items[rel].data]
                items[rel].settings = items[rel].settings or kf.settings
                items[rel].caption = items[rel].caption or kf.caption
            elif (folder / rel).is_file():
                items[rel] = _item_from_known(rel, kf)
    listed = set(items)
    for rel in _files(folder, skip) if known_name is None or known.list_files else []:
        if rel not in items:
            items[rel] = _generic_item(folder, rel)
    # an unlisted CSV beside a table of the same name (fig3.md + fig3.csv) is that table's raw data, not a second table
    named = {Path(r).with_suffix("").as_posix(): i for r, i in items.items() if i.kind == "table" and r.endswith(".md")}
    for rel, item in items.items():
        twin = named.get(Path(rel).with_suffix("").as_posix())
        if rel.endswith(".csv") and rel not in listed and twin is not None:
            item.kind = "raw"
            twin.data.append(rel)
    for rel, item in items.items():
        path = folder / rel
        if path.is_file():
            item.size = path.stat().st_size
        if item.kind == "table" and not item.numbers and path.is_file():
            item.numbers.append(_table_html(path))
        if Path(rel).suffix.lower() == ".npz" and path.is_file():
            try:
                item.numbers.append(H.table(["array", "shape", "dtype"], npz_contents(path)))
            except (OSError, ValueError, zipfile.BadZipFile) as err:
                study.notes.append(f"{rel}: could not list its arrays ({err}).")
        {"figure": study.figures, "table": study.tables}.get(item.kind, study.raw).append(item)
    if manifest is not None:  # after the tables are rendered above
        _link_manifest_numbers(items, manifest.get("numbers"))
    return study


def _item_from_known(rel: str, kf: KnownFile) -> Item:
    return Item(rel, kf.kind, caption=kf.caption, settings=dict(kf.settings), numbers=list(kf.numbers),
                data=list(kf.data))  # fmt: skip


def _table_html(path: Path) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as err:
        return f'<p class="warn">could not read {H.esc(path.name)}: {H.esc(err)}</p>'
    if path.suffix.lower() == ".csv":
        return H.csv_table(text)
    if path.suffix.lower() == ".md":
        return H.markdown_to_html(text)
    return f"<pre>{H.esc(text[:20000])}</pre>"


# ---- writing --------------------------------------------------------------------------------------
def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-") or "study"


def _anchor(rel: str) -> str:
    return "f-" + _slug(rel.replace("/", "-").replace(".", "-"))


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _place(study: Study, out: Path, max_copy_bytes: int) -> None:
    """Copy the study's files under ``out/<slug>/`` (or link large ones relatively); set each ``href``."""
    for item in study.items():
        if item.missing:
            continue
        src = study.folder / item.file
        if item.size > max_copy_bytes:
            item.href = Path(os.path.relpath(src.resolve(), out.resolve())).as_posix()
            item.copied = False
            continue
        dst = out / study.slug / item.file
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
        item.href = f"{study.slug}/{item.file}"


def _image_size(path: Path) -> tuple[int, int] | None:
    try:
        from PIL import Image

        with Image.open(path) as im:
            return im.size
    except Exception:  # noqa: BLE001 - an unreadable image is shown as a link only
        return None


def _file_link(item: Item) -> str:
    if item.missing:
        return f'<code>{H.esc(item.file)}</code> <span class="warn">missing</span>'
    where = "" if item.copied else ", linked in place, not copied"
    return f'<a href="{H.href(item.href)}"><code>{H.esc(item.file)}</code></a> <span class="muted">({_size(item.size)}{where})</span>'


def _figure_html(study: Study, item: Item, by_file: dict[str, Item]) -> str:
    parts = [f'<figure id="{_anchor(item.file)}">']
    if item.missing:
        parts.append(f'<p class="warn">{H.esc(item.file)} is missing from {H.esc(study.folder)}.</p>')
    elif Path(item.file).suffix.lower() in IMAGE_EXT:
        size = _image_size(study.folder / item.file)
        wh = f' width="{size[0]}" height="{size[1]}"' if size else ""
        parts.append(
            f'<a href="{H.href(item.href)}"><img src="{H.href(item.href)}"{wh} alt="{H.esc(item.caption or item.file)}"></a>'
        )
    parts.append(f"<figcaption><strong>{_file_link(item)}</strong> — {H.esc(item.caption)}")
    parts.append(_details(study, item, by_file))
    parts.append("</figcaption></figure>")
    return "\n".join(parts)


def _details(study: Study, item: Item, by_file: dict[str, Item]) -> str:
    parts = []
    if item.settings:
        parts.append(f"<details open><summary>settings</summary>{H.value_html(item.settings)}</details>")
    if item.numbers:
        parts.append("<details open><summary>the numbers behind it</summary>" + "\n".join(item.numbers) + "</details>")
    parts.append(_data_links(item, by_file))
    return "\n".join(parts)


def _data_links(item: Item, by_file: dict[str, Item]) -> str:
    data = [by_file[d] for d in item.data if d in by_file]
    return ("<p>raw data: " + ", ".join(_file_link(d) for d in data) + "</p>") if data else ""


def _study_page(study: Study, studies: list[Study], title: str) -> str:
    by_file = {i.file: i for i in study.items()}
    nav = [("index", "index.html")] + [(s.title, f"{s.slug}.html") for s in studies]
    body = [
        f'<p class="muted">study <code>{H.esc(study.name)}</code> · folder <code>{H.esc(study.folder)}</code> · '
        f"captions from {H.esc({'manifest': MANIFEST, 'built-in': 'smoothsal report’s knowledge of this study', 'generic': 'file names only'}[study.source])}"
        + (f" · command <code>{H.esc(study.command)}</code>" if study.command else "")
        + "</p>"
    ]
    if study.description:
        body.append(f"<p>{H.esc(study.description)}</p>")
    body += [f'<p class="warn">{H.esc(n)}</p>' for n in study.notes]
    toc = [f'<li><a href="#{_anchor(i.file)}">{H.esc(i.file)}</a> — {H.esc(_short(i.caption))}</li>' for i in study.figures]
    toc += [f'<li><a href="#{_anchor(i.file)}">{H.esc(i.file)}</a> — {H.esc(_short(i.caption))}</li>' for i in study.tables]
    if toc:
        body.append("<ul>" + "".join(toc) + "</ul>")
    if study.report_card:
        body.append(f'<h2 id="report-card">Report card</h2>{study.report_card}')
    if study.figures:
        body.append('<h2 id="figures">Figures</h2>')
        body += [_figure_html(study, i, by_file) for i in study.figures]
    if study.tables:
        body.append('<h2 id="tables">Tables</h2>')
        for i in study.tables:
            body.append(
                f'<section id="{_anchor(i.file)}"><h3>{H.esc(i.file)}</h3><p>{_file_link(i)} — {H.esc(i.caption)}</p>'
                + ("\n".join(i.numbers) if not i.missing else "")
                + _data_links(i, by_file)
                + (f"<details><summary>settings</summary>{H.value_html(i.settings)}</details>" if i.settings else "")
                + "</section>"
            )
    if study.settings:  # after the figures and tables: a page leads with what was found
        body.append(f'<h2 id="settings">Settings</h2>{H.value_html(study.settings)}')
    if study.numbers:
        body.append('<h2 id="numbers">Numbers</h2>' + "\n".join(study.numbers))
    if study.raw:
        body.append('<h2 id="raw">Raw files</h2><ul class="files">')
        body += [
            f'<li id="{_anchor(i.file)}">{_file_link(i)}' + (f" — {H.esc(i.caption)}" if i.caption else "") + "</li>"
            for i in study.raw
        ]
        body.append("</ul>")
        body += [f"<h3>{H.esc(i.file)}</h3>" + "\n".join(i.numbers) for i in study.raw if i.numbers]
    return H.page(study.title, "\n".join(body), nav=nav, subtitle=title)


def _short(text: str, n: int = 110) -> str:
    """The first sentence of a caption (a period after "al", "e.g", "Fig" does not end one), at most ``n`` characters."""
    m = re.search(r"(?<!\bal)(?<!\be\.g)(?<!\bi\.e)(?<!\bFig)(?<!\bFigs)(?<!\beq)\.(\s|$)", text)
    first = text[: m.start() + 1] if m else text
    return first if len(first) <= n else first[: n - 1].rsplit(" ", 1)[0] + " …"


def _index_page(studies: list[Study], title: str, inputs: list[Path]) -> str:
    """The first page: the verdicts (each study's one-line conclusions, then the report cards), the
    figures (one card per study with its lead figure), every figure and table, and last what the
    report was made from."""
    nav = [("index", "index.html")] + [(s.title, f"{s.slug}.html") for s in studies]
    body = []
    judged = [s for s in studies if s.verdicts]
    cards = [s for s in studies if s.report_card]
    if judged or cards:
        body.append('<h2 id="verdicts">Verdicts</h2>')
    if judged:
        body.append(
            "<ul>"
            + "".join(
                f'<li><a href="{H.href(s.slug + ".html")}">{H.esc(s.title)}</a>: {H.esc(v)}</li>' for s in judged for v in s.verdicts
            )
            + "</ul>"
        )
    for s in cards:
        body.append(
            f'<h3 id="report-card-{H.esc(s.slug)}">Report card</h3>'
            f'<p class="muted">from <a href="{H.href(s.slug + ".html")}">{H.esc(s.title)}</a> '
            f"(<code>{H.esc(s.folder)}</code>)</p>{s.report_card}"
        )
    body.append('<h2 id="studies">Figures</h2><div class="cards">')
    for s in studies:
        thumb = next((i for i in s.figures if not i.missing and Path(i.file).suffix.lower() in IMAGE_EXT), None)
        img = (
            f'<a href="{H.href(s.slug + ".html")}"><img src="{H.href(thumb.href)}" alt="{H.esc(thumb.file)}"></a>'
            if thumb
            else ""
        )
        body.append(
            f'<div class="card"><h3><a href="{H.href(s.slug + ".html")}">{H.esc(s.title)}</a></h3>{img}'
            f'<p class="muted"><code>{H.esc(s.folder)}</code><br>{len(s.figures)} figures, {len(s.tables)} tables, '
            f"{len(s.raw)} raw files</p></div>"
        )
    body.append("</div>")
    body.append('<h2 id="all-figures">Every figure and table</h2><ul>')
    for s in studies:
        for i in s.figures + s.tables:
            body.append(
                f'<li><a href="{H.href(s.slug + ".html", _anchor(i.file))}">{H.esc(s.title)}: {H.esc(i.file)}</a>'
                f" — {H.esc(_short(i.caption))}</li>"
            )
    body.append("</ul>")
    body.append(
        f'<p class="muted">Written by <code>smoothsal report</code> on {H.esc(time.strftime("%Y-%m-%d %H:%M:%S %Z"))} from '
        + ", ".join(f"<code>{H.esc(p)}</code>" for p in inputs)
        + f". {len(studies)} studies, {sum(len(s.figures) for s in studies)} figures, "
        f"{sum(len(s.tables) for s in studies)} tables. Opened from disk; nothing is fetched from the network.</p>"
    )
    return H.page(title, "\n".join(body), nav=nav)


def _order(study: Study) -> tuple[int, int]:
    """Known studies in the order they are usually run, then manifest studies, then other folders."""
    known = list(KNOWN)
    if study.source == "built-in":
        return (0, known.index(study.name))
    return (1, 0) if study.source == "manifest" else (2, 0)


def _prepare_out(out: Path, folders: list[Path]) -> None:
    out_r = out.resolve()
    for f in folders:
        fr = f.resolve()
        if fr == out_r or out_r in fr.parents:
            raise ValueError(f"`out`: {str(out)!r} contains the study folder {str(f)!r}; choose another report folder")
    if out.exists():
        if not out.is_dir():
            raise ValueError(f"`out`: {str(out)!r} exists and is not a folder")
        if any(out.iterdir()):
            if not _is_report(out):
                raise ValueError(
                    f"`out`: {str(out)!r} is not empty and holds no earlier report ({MARKER}); "
                    "refusing to overwrite it"
                )
            shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    # marked as a report at once, so that a build that fails half-way can still be replaced by the next one
    write_json(out / MARKER, {"generator": GENERATOR, "complete": False})


def build_report(
    out_dirs: list[Path] | list[str],
    out: Path | str = "out/report",
    title: str = "smoothsal report",
    max_copy_bytes: int = 50 * 2**20,
) -> ReportResult:
    """Write the HTML report of the study folders in ``out_dirs`` to ``out`` (see the module docstring).

    Args:
        out_dirs: study folders, or folders holding them (searched 3 levels down).
        out: the report folder; created, or replaced when it holds an earlier report; refused
            when it holds anything else or contains a study folder.
        title: the index page's title.
        max_copy_bytes: larger files are linked relatively instead of copied.

    Returns:
        :class:`ReportResult` with ``index`` (``out/index.html``), the studies and
        :func:`broken_links`'s findings (empty when every link resolves).
    """
    t0 = time.perf_counter()
    inputs = [Path(p) for p in out_dirs]
    if not inputs:
        raise ValueError("`out_dirs`: give at least one study output folder")
    if max_copy_bytes < 0:
        raise ValueError(f"`max_copy_bytes` must be >= 0, got {max_copy_bytes}")
    out = Path(out)
    folders = find_study_folders(inputs, exclude=out)
    if not folders:
        raise ValueError(
            "`out_dirs`: no study output found in " + ", ".join(repr(str(p)) for p in inputs)
            + " (run e.g. `smoothsal explain` first)"
        )  # fmt: skip
    _prepare_out(out, folders)
    resolved = frozenset(f.resolve() for f in folders)
    studies = sorted((load_study(f, resolved - {f.resolve()}) for f in folders), key=_order)
    taken: set[str] = {"index"}
    for s in studies:
        slug, k = _slug(s.name), 2
        while slug in taken:
            slug, k = f"{_slug(s.name)}-{k}", k + 1
        s.slug = slug
        taken.add(slug)
        _place(s, out, max_copy_bytes)
    for s in studies:
        (out / f"{s.slug}.html").write_text(_study_page(s, studies, title), encoding="utf-8")
    index = out / "index.html"
    index.write_text(_index_page(studies, title, inputs), encoding="utf-8")
    broken = broken_links(out)
    summary = {
        "generator": GENERATOR,
        "title": title,
        "inputs": [str(p) for p in inputs],
        "studies": [
            {
                "study": s.name, "title": s.title, "page": f"{s.slug}.html", "folder": str(s.folder), "source": s.source,
                "figures": [{"file": i.file, "href": i.href, "caption": i.caption} for i in s.figures],
                "tables": [{"file": i.file, "href": i.href, "caption": i.caption} for i in s.tables],
                "raw": [{"file": i.file, "href": i.href} for i in s.raw],
                "notes": s.notes,
            }
            for s in studies
        ],
        "broken_links": broken,
        "complete": True,
    }  # fmt: skip
    write_json(out / MARKER, summary)
    return ReportResult(index, studies, broken, round(time.perf_counter() - t0, 3))


# ---- checking -------------------------------------------------------------------------------------
class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name == "id" and value:
                self.ids.add(value)
            if name in ("href", "src") and value is not None:
                self.links.append((tag, name, value))


def broken_links(report_dir: Path | str) -> list[str]:
    """Every link of the report's pages that does not resolve, as ``"page: tag attr=value (why)"``.

    A relative link must name an existing file (its ``#fragment`` an element ``id`` of that page,
    when it is one of the report's pages); a resource (``src``, ``<link>``) must never point at
    the network. Links to other sites (``<a href="https://...">``) are allowed and not fetched.
    """
    report_dir = Path(report_dir)
    pages = {p: _Links() for p in sorted(report_dir.glob("*.html"))}
    for p, parser in pages.items():
        parser.feed(p.read_text(encoding="utf-8"))
    ids = {p.resolve(): parser.ids for p, parser in pages.items()}
    broken = []
    for p, parser in pages.items():
        for tag, attr, value in parser.links:
            parts = urlsplit(value)
            where = f"{p.name}: <{tag} {attr}={value!r}>"
            if parts.scheme or value.startswith("//"):
                if attr == "src" or tag == "link" or parts.scheme not in ("http", "https", "mailto"):
                    broken.append(f"{where} (fetches from outside the report)")
                continue
            target = (p.parent / unquote(parts.path)).resolve() if parts.path else p.resolve()
            if not target.is_file():
                broken.append(f"{where} (no file {target})")
            elif parts.fragment and target in ids and unquote(parts.fragment) not in ids[target]:
                broken.append(f"{where} (no id {parts.fragment!r} in {target.name})")
    return broken
