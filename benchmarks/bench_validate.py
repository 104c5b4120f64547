"""What checking an image folder up front costs: ``explain-dataset``'s per-file check vs a full decode.

``smoothsal explain-dataset`` checks every file of the folder before any compute
(:func:`smoothsal.studies.explain_dataset.validate.check_image`: PIL's header, then PNG's
``verify()`` (every chunk's CRC, no decompression), a JPEG's end-of-image marker, a full decode
for other formats). This script writes the bundled photos (``skimage.data``: chelsea, coffee,
astronaut, rocket) as PNG and JPEG (quality 90) at 224 and 512 px into a temporary folder and
measures, per image, the **CPU time** (``time.process_time``: it does not count time spent
waiting for another process, so it stays meaningful on a shared machine) of the check and of a
full decode (``Image.open(...).convert("RGB")``, what the job's loader does), the median over
``--repeats`` passes of the folder. The files are in the page cache (read once first): the
figures are the CPU cost; reading from a cold disk or object storage adds the file's read time
to both.

Run: ``python benchmarks/bench_validate.py [--repeats 15]`` (a few seconds; writes
``benchmarks/results/validate.json``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "validate.json"


def _per_image(fn, paths: list[Path], repeats: int) -> float:
    """Median over ``repeats`` passes of the CPU seconds per image of ``fn`` over ``paths``."""
    passes = []
    for _ in range(repeats):
        t0 = time.process_time()
        for p in paths:
            fn(p)
        passes.append((time.process_time() - t0) / len(paths))
    return statistics.median(passes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()

    import skimage.data
    from PIL import Image

    from smoothsal.studies.explain_dataset.validate import check_image

    def decode(path: Path) -> None:
        with Image.open(path) as im:
            im.convert("RGB")

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for side in (224, 512):
            for fmt, ext, opts in (("PNG", "png", {}), ("JPEG", "jpg", {"quality": 90})):
                paths = []
                for name in ("chelsea", "coffee", "astronaut", "rocket"):
                    im = Image.fromarray(getattr(skimage.data, name)()).convert("RGB").resize((side, side))
                    path = Path(tmp) / f"{name}_{side}.{ext}"
                    im.save(path, format=fmt, **opts)
                    assert check_image(path) is None
                    paths.append(path)
                for p in paths:
                    p.read_bytes()  # in the page cache
                check = _per_image(check_image, paths, args.repeats)
                full = _per_image(decode, paths, args.repeats)
                rows.append({"format": fmt, "side": side, "mean_bytes": round(statistics.mean(p.stat().st_size for p in paths)),
                             "check_ms": round(check * 1e3, 4), "decode_ms": round(full * 1e3, 4),
                             "check_over_decode": round(check / full, 3)})  # fmt: skip
    result = {
        "what": "CPU time per image of explain-dataset's up-front check vs a full decode (median of passes)",
        "command": "python benchmarks/bench_validate.py" + (f" --repeats {args.repeats}" if args.repeats != 15 else ""),
        "repeats": args.repeats,
        "images": "skimage.data chelsea, coffee, astronaut, rocket, resized to side × side",
        "rows": rows,
    }
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    for r in rows:
        print(f"{r['format']:4s} {r['side']:4d} px ({r['mean_bytes'] / 1024:6.1f} KiB): check {r['check_ms']:.3f} ms, "
              f"full decode {r['decode_ms']:.3f} ms ({r['check_over_decode']:.0%})")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
