"""``smoothsal report``: the static HTML report built from a small fake set of study folders.

Checks values: every figure and file the pages reference exists (and is a copy of the study's
file), captions and the numbers behind each figure are on the page, everything from a file is
HTML-escaped, the broken-link detector finds none in a fresh report and does find planted ones;
then the report is opened in headless Chromium (skipped where Chromium/chromedriver is absent):
every image loads, every local link resolves, nothing is fetched from the network, and a
screenshot is saved and checked not to be blank.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
from PIL import Image

from smoothsal.studies.report import broken_links, build_report
from smoothsal.studies.report.html import markdown_to_html, table

EVIL = '<script>alert("x")</script> & co'


def _png(path: Path, size: tuple[int, int] = (64, 40), seed: int = 0) -> Path:
    """A non-blank RGB PNG: a colour gradient with a square."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), np.full_like(x, 40 * seed % 255)], axis=-1)
    rgb[h // 4 : h // 2, w // 4 : w // 2] = [255, 255, 255]
    Image.fromarray(rgb.astype(np.uint8)).save(path)
    return path


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture()
def out(tmp_path: Path) -> Path:
    """``out/`` with an explain run, a manifest study, a report card and an unknown folder."""
    root = tmp_path / "out"
    ex = root / "explain"
    _write(ex / "config.json", json.dumps({"study": "explain", "config_hash": "abc"}))
    _write(ex / "records.jsonl", '{"study": "explain"}\n')
    (ex / "arrays").mkdir()
    np.save(ex / "arrays" / "k.npy", np.zeros(3))  # the store's internals: never listed
    summary = {
        "model": "lite0", "image_size": 224, "config_hash": "abc", "seconds": 32.15,
        "settings": {"images": ["chelsea"], "model": "lite0", "methods": ["grad"], "noise_level": 0.15,
                     "n_samples": 8, "tol": None, "seed": 0, "noise_levels": [0.0, 0.1, 0.5],
                     "sample_sizes": [1, 10, 50], "out_dir": "/somewhere/out/explain", "progress": False},
        "images": [{"name": "chelsea", "target": 285,
                    "top5": [{"class": 285, "name": "Egyptian cat", "prob": 0.3929}]}],
        "methods": {"grad": {"raw": {"seconds": 1.611},
                             "smooth": {"relative_stderr": [0.9466], "n_samples": [8], "seconds": 5.052}},
                    "ig": {"raw": {"seconds": 2.5, "convergence_delta": {"absolute": [0.31], "relative": [0.098],
                                                                           "expected": [3.2]}}}},
        "figures": ["grid.png", "noise_levels.png"],
    }  # fmt: skip
    _write(ex / "summary.json", json.dumps(summary))
    _png(ex / "grid.png", (90, 50), 1)
    _png(ex / "noise_levels.png", (80, 30), 2)
    np.savez_compressed(ex / "maps.npz", images=np.zeros((1, 3, 4, 4), np.float32), targets=np.array([285]))

    rep = root / "reproduce" / "smoothgrad"
    manifest = {
        "study": "reproduce_smoothgrad",
        "title": f"SmoothGrad {EVIL}",
        "description": "Figures of the paper, <em>reproduced</em>.",
        "figures": [
            {"file": "fig3.png", "caption": f"Noise levels {EVIL}", "settings": {"noise_levels": [0.0, 0.1],
                                                                                  "note": "<i>n</i>"}},
            {"file": "sub dir/fig 4 #1.png", "caption": "Sample sizes.", "numbers": {"n_for_se": 740}},
            {"file": "absent.png", "caption": "never written"},
            {"file": "../escape.png", "caption": "outside the folder"},
        ],
        "tables": [{"file": "table1.md", "caption": "Table 1, side by side."}],
        "numbers": {"ssim": {"raw": 0.512, "smoothed": 0.599}, "agree": True, "fig3_noisiness": {"0.1": 0.25}},
    }  # fmt: skip
    _write(rep / "manifest.json", json.dumps(manifest))
    _png(rep / "fig3.png", (70, 45), 3)
    _write(rep / "fig3.md", "| σ | noisiness |\n|---|---|\n| 0.1 | 0.2468 |\n")
    _write(rep / "fig3.csv", "sigma,noisiness\n0.1,0.2468\n")  # the table's raw data, not a second table
    _png(rep / "sub dir" / "fig 4 #1.png", (50, 50), 4)
    _write(rep / "table1.md", "# Table 1 <x>\n\nText with `code` & **bold**.\n\n| method | SSIM |\n|---|---|\n"
                              "| Simple-Grad <b> | **0.599** |\n| IG | 0.512 |\n")  # fmt: skip
    _write(rep / "results.csv", "method,ssim\ngrad,0.5123456789\n")
    _write(rep / "summary.json", json.dumps({**manifest, "settings": {"n_samples": 10, "quick": True},
                                            "notes": ["--quick: n = 10, fewer than the paper's 100"],
                                            "paper": {"table1_direction": "smoothed > raw"}, "seconds": 12.5}))  # fmt: skip

    ev = root / "evaluate"
    _write(ev / "report.md", "# smoothsal report card\n\n| method | sanity | roughness ↓ |\n|---|---|---|\n"
                             "| Gradient | PASS | 1.05 |\n| Sobel edges | FAIL | 0.42 |\n")  # fmt: skip
    _write(ev / "report.csv", "row,label,roughness\ngrad,Gradient,1.05\nsobel,Sobel edges,0.42\n")
    _write(ev / "report.json", json.dumps({"settings": {"model": "lite0", "images": ["chelsea"]},
                                           "rows": [{"label": "Gradient", "roughness": 1.05, "deletion_auc": 0.123}]}))  # fmt: skip
    _png(ev / "deletion_insertion.png", (60, 40), 5)

    _png(root / "custom" / "plot.png", (40, 40), 6)
    _write(root / "custom" / "data.csv", "a,b\n1,2\n")
    return root


def _pages(report: Path) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in report.glob("*.html")}


def _srcs(text: str) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', text)


def test_report_places_every_figure_with_its_caption(out: Path, tmp_path: Path) -> None:
    result = build_report([out], tmp_path / "report")
    report = tmp_path / "report"
    assert result.index == report / "index.html" and result.broken == []
    by_name = {s.name: s for s in result.studies}
    assert set(by_name) == {"explain", "reproduce_smoothgrad", "evaluate", "custom"}
    assert by_name["explain"].source == "built-in" and by_name["reproduce_smoothgrad"].source == "manifest"
    pages = _pages(report)
    assert set(pages) == {"index.html"} | {f"{s.slug}.html" for s in result.studies}
    # every figure of every study is on its page, as a copy of the study's file
    for s in result.studies:
        text = pages[f"{s.slug}.html"]
        for item in s.figures:
            if item.missing:
                continue
            copied = report / unquote(item.href)
            assert copied.read_bytes() == (s.folder / item.file).read_bytes()
            assert item.href in [unquote(x) for x in _srcs(text)]
    shown = {(s.name, i.file) for s in result.studies for i in s.figures}
    assert shown == {("explain", "grid.png"), ("explain", "noise_levels.png"), ("evaluate", "deletion_insertion.png"),
                     ("reproduce_smoothgrad", "fig3.png"), ("reproduce_smoothgrad", "sub dir/fig 4 #1.png"),
                     ("reproduce_smoothgrad", "absent.png"), ("custom", "plot.png")}  # fmt: skip
    # captions: built-in ones carry the run's settings, the manifest's are used as written
    explain = pages[f"{by_name['explain'].slug}.html"]
    assert "Fig. 5" in explain and "noise level 15%, n = 8" in explain
    assert "noise levels σ/(x_max − x_min) = 0%, 10%, 50%" in explain
    assert "plot.png (no caption known for this file)." in pages[f"{by_name['custom'].slug}.html"]
    # the store's arrays/ are never listed; the manifest's file outside its folder is refused with a note
    assert "k.npy" not in explain
    repro = pages[f"{by_name['reproduce_smoothgrad'].slug}.html"]
    assert "escape.png" not in json.dumps([i.file for i in by_name["reproduce_smoothgrad"].figures])
    assert "names &#x27;absent.png&#x27;, which is not in the folder" in repro


def test_numbers_behind_each_figure_and_raw_links(out: Path, tmp_path: Path) -> None:
    result = build_report([out], tmp_path / "report")
    pages = _pages(tmp_path / "report")
    slug = {s.name: s.slug for s in result.studies}
    explain = pages[f"{slug['explain']}.html"]
    assert "0.9466" in explain and "5.052" in explain and "Egyptian cat 0.393" in explain
    # maps.npz: its arrays read from the headers
    assert re.search(r"<td>images</td><td>1 × 3 × 4 × 4</td><td>float32</td>", explain)
    assert re.search(r"<td>targets</td><td>1 \(1-d\)</td><td>int64</td>", explain)
    # structured values as columns, one row per image: IG's convergence delta under grid.png
    grid_html = re.search(r'<figure id="f-grid-png">.*?</figure>', explain, re.DOTALL).group(0)
    assert re.search(r"Completeness gap.*?<th>relative</th>", grid_html, re.DOTALL)
    assert re.search(r"<td>ig</td><td>raw</td><td>chelsea</td>.*?<td class=\"num\">0.098</td>", grid_html, re.DOTALL)
    assert "{" not in grid_html and "[" not in grid_html
    # raw files linked: summary.json beside grid.png
    grid = next(i for i in result.studies[[s.name for s in result.studies].index("explain")].figures if i.file == "grid.png")
    assert grid.data == ["summary.json", "maps.npz"]
    assert f'href="{slug["explain"]}/summary.json"' in explain and f'href="{slug["explain"]}/maps.npz"' in explain
    repro = pages[f"{slug['reproduce_smoothgrad']}.html"]
    assert re.search(r"<th>raw</th><td><span class=\"num\">0.512</span>", repro)
    assert ">740<" in repro  # a figure's own numbers
    # a manifest figure gets the table of its name and the numbers of its figure number
    fig3 = re.search(r'<figure id="f-fig3-png">.*?</figure>', repro, re.DOTALL).group(0)
    assert '<td class="num">0.2468</td>' in fig3 and f'href="{slug["reproduce_smoothgrad"]}/fig3.md"' in fig3
    rs = next(s for s in result.studies if s.name == "reproduce_smoothgrad")
    assert [i.file for i in rs.tables] == ["table1.md", "fig3.md", "results.csv"]
    assert next(i for i in rs.tables if i.file == "fig3.md").data == ["fig3.csv"]
    assert re.search(r"<th>fig3_noisiness</th>.*<th>0.1</th><td><span class=\"num\">0.25</span>", fig3, re.DOTALL)
    assert "0.2468" not in re.search(r'<figure id="f-sub-dir-fig-4.*?</figure>', repro, re.DOTALL).group(0)
    # summary.json beside the manifest: the settings, the notes, the paper's numbers
    assert re.search(r"<th>n_samples</th><td><span class=\"num\">10</span>", repro)
    assert "--quick: n = 10, fewer than the paper&#x27;s 100" in repro
    assert "What the paper reports" in repro and "smoothed &gt; raw" in repro
    assert re.search(r"<td>grad</td><td class=\"num\">0.5123</td>", repro)  # CSV at 4 significant digits
    # the report card (evaluate) on the index, as a table
    index = pages["index.html"]
    assert "<td>Sobel edges</td><td>FAIL</td><td class=\"num\">0.42</td>" in index
    assert "Report card" in index
    # the index leads with the verdicts, then the figures; what it was made from comes last
    assert index.index('id="verdicts"') < index.index('id="studies"') < index.index("Written by")


def test_index_leads_with_each_studys_verdict(tmp_path: Path) -> None:
    tr = tmp_path / "out" / "tradeoff"
    _write(tr / "table1.md", "| Method | Setting |\n|---|---|\n| Gradient | DT |\n")
    _write(tr / "recommendation.json", json.dumps({"basis": "norm-scaled", "overall": {
        "noise_level": 0.15, "rule": "knee", "reason": "the knee of the mean Pareto front"}, "per_curve": {}}))
    _png(tr / "pareto.png")
    build_report([tmp_path / "out"], tmp_path / "report")
    index = (tmp_path / "report" / "index.html").read_text()
    verdicts = index[index.index('id="verdicts"') : index.index('id="studies"')]
    assert "recommended noise level σ = 0.15 (the knee of the mean Pareto front)" in verdicts
    assert index.index('id="studies"') < index.index("Written by")


def test_everything_from_files_is_escaped(out: Path, tmp_path: Path) -> None:
    result = build_report([out], tmp_path / "report")
    pages = _pages(tmp_path / "report")
    allhtml = "".join(pages.values())
    assert "<script" not in allhtml and "<em>" not in allhtml and "<i>n</i>" not in allhtml and "<b>" not in allhtml
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co" in allhtml
    repro = pages[f"{next(s for s in result.studies if s.source == 'manifest').slug}.html"]
    assert "&lt;i&gt;n&lt;/i&gt;" in repro
    # Markdown: our own tags for **bold** and `code`, the file's tags escaped
    assert "<h3>Table 1 &lt;x&gt;</h3>" in repro
    assert "<p>Text with <code>code</code> &amp; <strong>bold</strong>.</p>" in repro
    assert "<td>Simple-Grad &lt;b&gt;</td><td class=\"num\"><strong>0.599</strong></td>" in repro


def test_markdown_table_and_table_helper_exact() -> None:
    md = "| a | b |\n|:---|---:|\n| x | 1.5 |\n"
    assert markdown_to_html(md) == (
        '<table><thead><tr><th>a</th><th>b</th></tr></thead><tbody><tr><td>x</td><td class="num">1.5</td></tr>'
        "</tbody></table>"
    )
    assert table(["k"], [[0.123456789], ["<v>"]]) == (
        '<table><thead><tr><th>k</th></tr></thead><tbody><tr><td class="num">0.1235</td></tr>'
        "<tr><td>&lt;v&gt;</td></tr></tbody></table>"
    )


def test_broken_link_detector_finds_planted_breaks(out: Path, tmp_path: Path) -> None:
    report = tmp_path / "report"
    result = build_report([out], report)
    assert broken_links(report) == []
    slug = next(s.slug for s in result.studies if s.name == "explain")
    (report / slug / "grid.png").unlink()
    _write(report / "extra.html", '<img src="https://example.org/a.png"><a href="index.html#nowhere">x</a>'
                                  '<a href="https://example.org/">ok</a><a href="#top">y</a><p id="top"></p>')  # fmt: skip
    found = broken_links(report)
    grid = sorted(b.split(" (")[0] for b in found if "grid.png" in b)
    assert grid == [  # the figure, its two links, the index's thumbnail
        "explain.html: <a href='explain/grid.png'>",
        "explain.html: <a href='explain/grid.png'>",
        "explain.html: <img src='explain/grid.png'>",
        "index.html: <img src='explain/grid.png'>",
    ]
    assert len(found) == 6, found  # and the network image, the missing id; not the external <a>, not #top
    assert any("fetches from outside" in b and "example.org/a.png" in b for b in found)
    assert any("no id 'nowhere'" in b for b in found)


def test_large_files_are_linked_not_copied(out: Path, tmp_path: Path) -> None:
    report = tmp_path / "elsewhere" / "report"
    result = build_report([out / "explain"], report, max_copy_bytes=0)
    (study,) = result.studies
    assert not (report / study.slug).exists()
    assert all(i.href.startswith("../../out/explain/") for i in study.items())
    page = (report / f"{study.slug}.html").read_text()
    links, images = page.count('<a href="../../out/explain/'), page.count('<img src="../../out/explain/')
    assert images == 2 and page.count("linked in place, not copied)") == links - images == 8  # all but the <a><img>
    assert broken_links(report) == []


def test_rebuild_replaces_a_report_and_refuses_other_folders(out: Path, tmp_path: Path) -> None:
    report = tmp_path / "report"
    build_report([out / "explain"], report)
    stale = report / "stale.html"
    stale.write_text("old")
    result = build_report([out], report)  # an earlier report is replaced whole
    assert not stale.exists() and len(result.studies) == 4
    marker = json.loads((report / "report.json").read_text())
    assert marker["generator"] == "smoothsal report" and len(marker["studies"]) == 4
    other = tmp_path / "notes"
    _write(other / "mine.txt", "keep me")
    with pytest.raises(ValueError, match="refusing to overwrite"):
        build_report([out], other)
    assert (other / "mine.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match="contains the study folder"):
        build_report([out / "explain"], out)
    with pytest.raises(FileNotFoundError, match="no folder"):
        build_report([tmp_path / "nope"], tmp_path / "r2")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no study output"):
        build_report([tmp_path / "empty"], tmp_path / "r3")
    # a parent folder with output of its own is a study too, without its sub-studies' files
    _write(out / "overview.csv", "x\n1\n")
    result = build_report([out], tmp_path / "r4")
    parent = next(s for s in result.studies if s.folder == out)
    assert [i.file for i in parent.items()] == ["overview.csv"] and len(result.studies) == 5
    (out / "overview.csv").unlink()
    # scanning a parent that holds the report skips the report itself
    inside = out / "report"
    result = build_report([out], inside)
    assert {s.name for s in result.studies} == {"explain", "reproduce_smoothgrad", "evaluate", "custom"}


def test_cli_report(out: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from smoothsal.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(out / "explain"), str(out / "evaluate"), "--out", str(tmp_path / "r")])
    assert exit_info.value.code in (0, None)
    printed = capsys.readouterr().out
    assert f"wrote {tmp_path / 'r' / 'index.html'}" in printed and "2 studies, 3 figures, 0 broken links" in printed
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(tmp_path / "missing"), "--out", str(tmp_path / "r")])
    assert exit_info.value.code == 2
    assert "error: `out_dirs`: no folder" in capsys.readouterr().err


# ---- headless Chromium (the `browser` fixture is in conftest.py) -----------------------------------
_STATE_JS = """
return {
  images: Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth]),
  links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
  ids: Array.from(document.querySelectorAll('[id]')).map(e => e.id),
  resources: performance.getEntriesByType('resource').map(r => r.name),
};
"""


# Table text a reader sees: no cell shows a Python repr (a `{` or `[`), and no header breaks inside a
# word. The page is squeezed to 360 px first, so that wide tables must wrap their headers; a word
# is each run of characters between spaces and underscores (the report allows a break after `_`),
# and it is broken when its characters sit on more than one line box.
_TABLE_TEXT_JS = """
document.querySelector('main').style.maxWidth = '360px';
const reprs = Array.from(document.querySelectorAll('td, th'))
  .filter(c => /[{\\[]/.test(c.innerText)).map(c => c.innerText.slice(0, 80));
const broken = [];
let headers = 0;
for (const th of document.querySelectorAll('th')) {
  headers += 1;
  const walker = document.createTreeWalker(th, NodeFilter.SHOW_TEXT);
  let node;
  while ((node = walker.nextNode())) {
    const re = /[^\\s_]+/g;
    let m;
    while ((m = re.exec(node.data))) {
      const r = document.createRange();
      r.setStart(node, m.index);
      r.setEnd(node, m.index + m[0].length);
      const tops = new Set(Array.from(r.getClientRects()).map(q => Math.round(q.top)));
      if (tops.size > 1) broken.push(m[0]);
    }
  }
}
return {reprs: reprs, broken: broken, headers: headers};
"""


def _table_text(driver, path: Path) -> dict:
    driver.get(path.resolve().as_uri())
    return driver.execute_script(_TABLE_TEXT_JS)


def _open(driver, path: Path) -> dict:
    driver.get(path.resolve().as_uri())
    return driver.execute_script(_STATE_JS)


def test_report_in_headless_chromium(browser, out: Path, tmp_path: Path) -> None:
    report = tmp_path / "report"
    result = build_report([out], report)
    pages = [report / "index.html"] + [report / f"{s.slug}.html" for s in result.studies]
    states = {p.resolve(): _open(browser, p) for p in pages}
    n_images = 0
    for page, state in states.items():
        assert state["images"], f"{page.name} shows no image"
        for src, complete, width in state["images"]:
            assert complete and width > 0, f"{page.name}: image {src} did not load"
        n_images += len(state["images"])
        assert all(r.startswith("file://") for r in state["resources"]), state["resources"]
        for link in state["links"]:
            parts = urlsplit(link)
            assert parts.scheme == "file", f"{page.name}: link {link} leaves the report"
            target = Path(unquote(parts.path))
            assert target.is_file(), f"{page.name}: link {link} is broken"
            if parts.fragment and target.resolve() in states:
                assert unquote(parts.fragment) in states[target.resolve()]["ids"], f"{page.name}: {link}"
    # no repr in any cell, no header broken inside a word, on every page squeezed to 360 px
    n_headers = 0
    for page in pages:
        text = _table_text(browser, page)
        assert not text["reprs"], f"{page.name}: cells show a repr: {text['reprs']}"
        assert not text["broken"], f"{page.name}: headers broken inside a word: {text['broken']}"
        n_headers += text["headers"]
    assert n_headers > 20
    # ... and both checks do see what they look for (they can fail)
    _write(report / "control.html", "<main><table><tr><th>deletion_auc_of_the_smoothed_map and_the_interval_of_it"
                                    "</th><td>{'a': 1}</td><td>[0.1, 0.2]</td></tr></table></main>")  # fmt: skip
    control = _table_text(browser, report / "control.html")
    assert control["reprs"] == ["{'a': 1}", "[0.1, 0.2]"]
    assert not control["broken"]  # the default stylesheet breaks at spaces only
    _write(report / "control.html", "<main><table><tr><th style='overflow-wrap:anywhere'>"
                                    "deletion_auc_of_the_smoothed_map_and_the_interval_of_it</th><td>x</td></tr></table></main>")  # fmt: skip
    assert _table_text(browser, report / "control.html")["broken"]
    # every figure that exists on its study's page, and one thumbnail per study on the index
    shown = sum(not i.missing for s in result.studies for i in s.figures)
    assert n_images == shown + len(result.studies) == 6 + 4
    # the browser does see a broken image (the check above can fail)
    _write(report / "control.html", '<img src="nowhere.png">')
    (src, complete, width), = _open(browser, report / "control.html")["images"]
    assert width == 0
    # a screenshot of the index: decodes, and is not blank
    browser.get((report / "index.html").resolve().as_uri())
    shot = tmp_path / "index_screenshot.png"
    assert browser.save_screenshot(str(shot))
    with Image.open(shot) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.float64)
    assert rgb.shape[1] >= 800 and rgb.shape[0] >= 400
    assert rgb.std() > 10 and len(np.unique(rgb.reshape(-1, 3), axis=0)) > 50
    shutil.copy(shot, report / "screenshot.png")  # kept beside the report in the pytest tmp dir
