"""MkDocs hook: ship MathJax inside the built site, from a registry package (no CDN, no npm).

The equations of the docstrings are typeset in the browser by MathJax 3. Its files come from the
``django-static-mathjax`` wheel (the ``docs`` extra; it holds MathJax's files and a one-line
Django app, and requires nothing): this hook adds ``js/mathjax/tex-svg-full.js`` (TeX input, SVG
output and every TeX extension in one file, so MathJax loads nothing else: SVG output needs no
font files) and MathJax's licence to the site. ``mkdocs.yml`` loads ``js/mathjax-config.js`` and
then that file; ``pymdownx.arithmatex`` (generic mode) marks the equations, which
``_griffe_grouped_params.py`` writes as ``\\( ... \\)`` and ``\\[ ... \\]`` from the docstrings'
``:math:`` roles and ``.. math::`` blocks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: the MathJax component the site loads, and where it lands in the site
MATHJAX_FILE = "tex-svg-full.js"
SITE_DIR = "js/mathjax"


def mathjax_dir() -> Path:
    """MathJax's ``es5`` folder inside the installed ``django-static-mathjax`` package."""
    try:
        import mathjax  # django-static-mathjax's package
    except ImportError as err:
        raise RuntimeError(
            'the docs need MathJax from the django-static-mathjax package: pip install -e ".[docs]"'
        ) from err
    root = Path(mathjax.__file__).parent / "static" / "mathjax"
    if not (root / "es5" / MATHJAX_FILE).is_file():
        raise RuntimeError(f"{root / 'es5' / MATHJAX_FILE} is missing: reinstall django-static-mathjax")
    return root


def on_files(files: Any, config: Any) -> Any:
    """Add MathJax's component and licence to the site's files."""
    from mkdocs.structure.files import File

    root = mathjax_dir()
    for src, dest in ((root / "es5" / MATHJAX_FILE, f"{SITE_DIR}/{MATHJAX_FILE}"), (root / "LICENSE", f"{SITE_DIR}/LICENSE")):
        files.append(File.generated(config, dest, abs_src_path=str(src)))
    return files
