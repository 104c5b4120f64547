"""Scaling of ``smoothsal explain-dataset`` over torchrun processes: throughput and efficiency.

The work: a generated folder of ``--images`` random PNGs (``--size``², ImageFolder of 2 classes)
explained by a small random-weight CNN (``bench_scaling:bench_cnn``, or ``--model lite0``) with
``--methods`` at ``--noise-levels`` and ``--samples`` noisy samples, by
``python -m torch.distributed.run --standalone --nproc_per_node P -m smoothsal.cli explain-dataset``
for each P of ``--procs`` (gloo on CPU, NCCL on CUDA), every process with ``--threads`` intra-op
threads (default 1: P processes on P cores against one process on one core). Each P writes its
own fresh store.

Reported per P: the job's compute throughput (maps/s and images/s: maps over the slowest rank's
compute time, from the job's record in the store), the wall-clock throughput of the whole command
(start-up and process group included), the efficiency ``throughput_P / (P × throughput_1)`` of
both, and whether the store's maps equal those of P = 1 bit for bit. Also the store's size per
map (the maps' chunk objects, and everything else: metadata, per-image vectors, commit markers). On a machine with several GPUs run it with
``--device cuda --procs 1,<GPUs>``.

Run: ``.venv/bin/python benchmarks/bench_scaling.py`` (writes ``benchmarks/results/bench_scaling.json``);
``--quick`` is a smoke run of a few seconds per P.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _provenance import command_line, rel
from torch import nn

HERE = Path(__file__).resolve().parent


def bench_cnn() -> nn.Module:
    """A small random-weight CNN (seeded: every rank builds the same one), ~20 MFLOP per 64² image."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, stride=2), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1, stride=2), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10),
    ).eval()  # fmt: skip
    model.image_size = 64
    return model


def make_folder(root: Path, n: int, size: int) -> Path:
    """``n`` random PNGs of ``size``² in two class folders (fixed seed)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        folder = root / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i:05d}.png")
    return root


def run_job(args: argparse.Namespace, data: Path, store: Path, procs: int) -> dict:
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs),
        "-m", "smoothsal.cli", "explain-dataset", str(data), "--out", str(store), "--fresh", "--no-progress",
        "--model", args.model, "--methods", args.methods, "--noise-levels", args.noise_levels,
        "--samples", str(args.samples), "--chunk-size", str(args.chunk_size), "--device", args.device,
        "--image-size", str(args.size),
    ]  # fmt: skip
    if args.batch_size:
        cmd += ["--batch-size", str(args.batch_size)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads),
           "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"explain-dataset with {procs} process(es) failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    from smoothsal.studies.explain_dataset import open_store

    run = open_store(store).runs()[-1]
    compute = max(r["seconds"] for r in run["ranks"])
    return {
        "procs": procs,
        "maps": run["maps"],
        "images": run["images"],
        "compute_s": compute,
        "wall_s": wall,
        "maps_per_s": run["maps"] / compute,
        "images_per_s": run["images"] / compute,
        "wall_maps_per_s": run["maps"] / wall,
        "ranks": run["ranks"],
        "output": [ln for ln in proc.stdout.splitlines() if ln.startswith(("rank ", "overall"))],
    }


def store_size(store: Path) -> dict:
    from smoothsal.studies.explain_dataset import open_store

    n = len(open_store(store))
    files = [p for p in store.rglob("*") if p.is_file()]
    chunks = sum(p.stat().st_size for p in files if "maps" in p.relative_to(store).parts[:-1] and p.name != "zarr.json")
    total = sum(p.stat().st_size for p in files)
    return {"maps": n, "chunk_bytes_per_map": chunks / n, "other_bytes_per_map": (total - chunks) / n,
            "total_bytes_per_map": total / n}  # fmt: skip


def same_maps(a: Path, b: Path) -> bool:
    from smoothsal.studies.explain_dataset import open_store

    sa, sb = open_store(a), open_store(b)
    ka = {(e.method, e.sigma, e.image): e for e in sa.entries}
    kb = {(e.method, e.sigma, e.image): e for e in sb.entries}
    if ka.keys() != kb.keys():
        return False
    return all(torch.equal(sa.load([ka[k]]), sb.load([kb[k]])) for k in sorted(ka))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--model", default="bench_scaling:bench_cnn")
    parser.add_argument("--methods", default="grad,gradcam")
    parser.add_argument("--noise-levels", default="0,0.15")
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--chunk-size", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--procs", default=None, help="Comma-separated process counts (default 1,2; 1,<GPUs> on CUDA).")
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of every process.")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="Smoke run: 16 images of 32², 8 samples.")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "bench_scaling.json")
    args = parser.parse_args()
    if args.quick:
        args.images, args.size, args.samples = 16, 32, 8
    cuda = args.device.startswith("cuda") or (args.device == "auto" and torch.cuda.is_available())
    if args.procs is None:
        args.procs = f"1,{max(2, torch.cuda.device_count())}" if cuda else "1,2"
    procs = [int(p) for p in args.procs.split(",")]

    with tempfile.TemporaryDirectory() as tmp:
        data = make_folder(Path(tmp) / "images", args.images, args.size)
        results = [run_job(args, data, Path(tmp) / f"store{p}", p) for p in procs]
        base = next((r for r in results if r["procs"] == 1), results[0])
        for r in results:
            r["efficiency"] = r["maps_per_s"] / (r["procs"] / base["procs"] * base["maps_per_s"])
            r["wall_efficiency"] = r["wall_maps_per_s"] / (r["procs"] / base["procs"] * base["wall_maps_per_s"])
            r["identical_maps"] = same_maps(Path(tmp) / f"store{base['procs']}", Path(tmp) / f"store{r['procs']}")
        size = store_size(Path(tmp) / f"store{procs[0]}")

    print(f"{args.images} images {args.size}² × {args.methods} × σ {args.noise_levels} × n={args.samples}; "
          f"model {args.model}; device {args.device}; {args.threads} thread(s) per process")  # fmt: skip
    print("| processes | maps | compute s | maps/s | images/s | efficiency | wall s | wall maps/s | wall efficiency | maps equal P=1 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['procs']} | {r['maps']} | {r['compute_s']:.2f} | {r['maps_per_s']:.1f} | {r['images_per_s']:.1f} | "
              f"{r['efficiency']:.2f} | {r['wall_s']:.1f} | {r['wall_maps_per_s']:.1f} | {r['wall_efficiency']:.2f} | "
              f"{r['identical_maps']} |")  # fmt: skip
    print(f"store size per map: {size['total_bytes_per_map']:.0f} bytes ({size['chunk_bytes_per_map']:.0f} in the maps' "
          f"chunks, {size['other_bytes_per_map']:.0f} metadata, vectors and markers)")  # fmt: skip
    record = {
        "benchmark": "bench_scaling",
        "command": command_line(),
        "settings": {k: (rel(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                    "cuda_devices": torch.cuda.device_count()},  # fmt: skip
        "note": "measured on the machine named; a loaded machine understates the efficiency",
        "results": results,
        "store_size": size,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {rel(args.out)}")


if __name__ == "__main__":
    main()
