"""The API reference builds offline, without a warning, documents the public API, and its equations render.

``mkdocs build --strict`` (MkDocs + mkdocstrings) turns every warning into a failure: a docstring
argument that is not in the signature, a section Griffe cannot read, a broken link. The build
goes to a temporary folder; nothing is fetched (the built-in theme, no CDN assets; MathJax is
copied into the site from an installed package). The smoothing page is then opened in headless
Chromium (the ``browser`` fixture of conftest.py; skipped where Chromium is absent, required
where ``SMOOTHSAL_BROWSER_TEST=required``): its equations are typeset, and no raw LaTeX is left
in the text a reader sees.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))
from _griffe_grouped_params import rest_to_markdown, split_grouped_entries  # noqa: E402

MISSING = [m for m in ("mkdocs", "mkdocstrings", "mkdocstrings_handlers") if importlib.util.find_spec(m) is None]


def test_grouped_entries_are_split_per_name():
    text = "Do it.\n\nArgs:\n    a, b: two maps\n        continued.\n    k: top k\nReturns:\n    x, y: kept\n"
    assert split_grouped_entries(text) == (
        "Do it.\n\nArgs:\n    a: two maps\n        continued.\n    b: see `a`.\n    k: top k\nReturns:\n    x, y: kept\n"
    )


def test_rest_markup_becomes_markdown():
    text = "See :class:`~smoothsal.smoothing.Smooth` and :func:`smoothsal.smooth`.\n\n.. math:: a_i = b_i\n          + c\n\nEnd :math:`x_1`."
    assert rest_to_markdown(text) == (
        "See `Smooth` and `smoothsal.smooth`.\n\n\\[\na_i = b_i\n+ c\n\\]\n\nEnd \\(x_1\\)."
    )
    # a block right after text, inside an indented description: a paragraph of its own, indentation kept
    assert rest_to_markdown("    Returns:\n        m, with\n        .. math:: \\hat m = m / q\n        for q > 0.") == (
        "    Returns:\n        m, with\n\n        \\[\n        \\hat m = m / q\n        \\]\n\n        for q > 0."
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> tuple[Path, str]:
    if MISSING:
        pytest.skip(f'the docs extra is not installed ({", ".join(MISSING)} missing): pip install "smoothsal[docs]"')
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    return out, log


def test_docs_build_strict_without_warnings(site):
    out, log = site
    warnings = [line for line in log.splitlines() if "WARNING" in line]
    assert not warnings, "\n".join(warnings)
    html = (out / "api" / "smoothing.html").read_text(encoding="utf-8")
    assert 'id="smoothsal.smoothing.Smooth"' in html
    # a grouped argument entry is rendered per name, and the equation as written
    metrics = (out / "api" / "metrics.html").read_text(encoding="utf-8")
    assert re.search(r"<b><code>seed</code></b>.{0,400}see\s*<code>n_samples</code>", metrics, re.S)
    assert r"\mathrm{Fid}_\sigma" in metrics
    # nothing is loaded from the network when a page is opened; MathJax is in the site
    index = (out / "index.html").read_text(encoding="utf-8")
    assert not re.search(r'<(script|link)[^>]+(src|href)="(https?:)?//', index)
    assert (out / "js" / "mathjax" / "tex-svg-full.js").stat().st_size > 1_000_000
    assert re.search(r'<script src="(\.\./)?js/mathjax/tex-svg-full\.js"', html)
    # the equations are marked for MathJax, as written: \( \) inline, \[ \] display
    assert re.search(r'<div class="arithmatex">\\\[\s*\\hat M_c\(x\) = \\frac\{1\}\{n\} \\sum', html)
    assert '<span class="arithmatex">\\(' in metrics


def test_every_public_name_is_documented(site):
    import smoothsal
    import smoothsal.methods
    import smoothsal.metrics

    out, _ = site
    pages = "".join(p.read_text(encoding="utf-8") for p in (out / "api").glob("*.html"))
    missing, checked = [], 0
    for package in (smoothsal, smoothsal.methods, smoothsal.metrics):
        for name in package.__all__:
            obj = getattr(package, name)
            if not (isinstance(obj, type) or callable(obj)) or not getattr(obj, "__module__", "").startswith("smoothsal"):
                continue
            checked += 1
            if f'id="{obj.__module__}.{obj.__qualname__}"' not in pages:
                missing.append(f"{package.__name__}.{name} ({obj.__module__})")
    assert checked > 40
    # every public module of the library (the harness, studies and cli, is not API)
    import pkgutil

    for info in pkgutil.walk_packages(smoothsal.__path__, "smoothsal."):
        parts = info.name.split(".")
        if any(p.startswith("_") for p in parts) or parts[1] in ("studies", "cli"):
            continue
        if f'id="{info.name}"' not in pages:
            missing.append(f"module {info.name}")
    assert not missing, f"not in the API reference (add its module to docs/api/*.md): {missing}"


_MATH_STATE_JS = """
const done = arguments[arguments.length - 1];
if (!window.MathJax || !MathJax.startup || !MathJax.startup.promise) { done({error: "MathJax did not load"}); return; }
MathJax.startup.promise.then(() => done({
  marked: document.querySelectorAll('.arithmatex').length,
  typeset: document.querySelectorAll('.arithmatex mjx-container svg').length,
  errors: document.querySelectorAll('mjx-merror').length,
  loads: Array.from(document.querySelectorAll('script[src], link[href], img[src]')).map(e => e.src || e.href),
  text: document.body.innerText,
})).catch(err => done({error: String(err)}));
"""


def test_equations_render_in_headless_chromium(site, browser, tmp_path):
    import numpy as np
    from PIL import Image

    out, _ = site
    page = out / "api" / "smoothing.html"
    source = page.read_text(encoding="utf-8")
    raw = [r"\frac", r"\sum", r"\hat"]
    assert all(r in source for r in raw)  # the LaTeX is there before MathJax runs: the check below can fail
    browser.set_script_timeout(30)
    browser.get(page.resolve().as_uri())
    state = browser.execute_async_script(_MATH_STATE_JS)
    assert "error" not in state, state
    assert state["marked"] >= 3 and state["typeset"] == state["marked"] and state["errors"] == 0, state
    left = [r for r in raw if r in state["text"]]
    assert not left, f"raw LaTeX in the rendered smoothing page: {left}"
    assert r"\(" not in state["text"] and r"\[" not in state["text"]
    assert any(u.endswith("js/mathjax/tex-svg-full.js") for u in state["loads"]), state["loads"]
    assert all(u.startswith("file://") for u in state["loads"]), state["loads"]  # nothing from the network
    # a screenshot of the first equation: decodes, and is not blank
    browser.execute_script("document.querySelector('.arithmatex').scrollIntoView();")
    shot = tmp_path / "smoothing.png"
    assert browser.save_screenshot(str(shot))
    with Image.open(shot) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.float64)
    assert rgb.std() > 10
