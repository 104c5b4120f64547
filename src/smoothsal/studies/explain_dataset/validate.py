"""Which files of an image folder ``explain-dataset`` cannot read, found before any compute.

At dataset scale one bad file in a million is normal (a truncated download, a text file among the
images), so ``explain-dataset`` checks every image up front and leaves the bad ones out (a
warning, the run summary and the store's metadata list them), or, with ``--strict``, stops
with one error naming them all before a model is loaded.

:func:`check_image` decides what PIL would fail to read, as cheaply as each format allows:

* every file is opened by PIL (the header: a text file or an unknown format fails here);
* PNG: ``verify()`` reads every chunk and checks its CRC (no decompression), so a truncated or
  damaged PNG fails;
* JPEG: the file must end with the end-of-image marker (``FF D9``, trailing padding allowed);
  only a JPEG without it is decoded in full, and fails when PIL's decoder does (a truncated
  download). The entropy-coded data of a complete JPEG is not checked (that would need a full
  decode of every JPEG: the cost this check avoids);
* any other format (BMP, GIF, TIFF, WebP, PPM, ...) is decoded in full.

The ranks of a torchrun job check disjoint shares of the folder and gather the results.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["check_image", "find_unreadable"]

_JPEG_TAIL = 1024  # bytes searched for the end-of-image marker (some writers pad after it)


def _ends_with_eoi(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - _JPEG_TAIL))
        tail = fh.read()
    return tail.rstrip(b"\x00\r\n\t ").endswith(b"\xff\xd9")


def check_image(path: str | Path) -> str | None:
    """Why PIL cannot read the image file ``path`` (a short reason), or ``None`` when it can."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    try:
        with Image.open(p) as im:
            fmt = im.format
            if im.width < 1 or im.height < 1:
                return f"{fmt} of size {im.width}×{im.height}"
            if fmt == "PNG":
                im.verify()
                return None
            if fmt == "JPEG" and _ends_with_eoi(p):
                return None
            im.load()  # the full decode: formats without a cheap check, and JPEGs without their end marker
    except UnidentifiedImageError:
        return "not an image PIL can read"
    except (OSError, SyntaxError, ValueError, EOFError) as err:  # truncated or damaged data
        return f"damaged or truncated ({type(err).__name__}: {err})"
    return None


def find_unreadable(root: str | Path, ids: Sequence[str]) -> list[tuple[str, str]]:
    """``(id, reason)`` of each image of ``ids`` (paths relative to ``root``) that :func:`check_image` rejects."""
    root = Path(root)
    out = []
    for image_id in ids:
        reason = check_image(root / image_id)
        if reason is not None:
            out.append((image_id, reason))
    return out
