"""smoothsal at its API defaults against the floor and tuned Captum, each in a process of its own.

``bench_anchors.py`` runs every configuration in one process, rounds interleaved: what the other
libraries allocate and free between our calls then lands in our process's heap, and smoothsal's
allocator bounds (:mod:`smoothsal.execution.allocator`) give it back to the system at our next
job, whose calls then fault their memory in again. That is a real cost (a program that runs other
large work between smoothsal calls pays it) but not the cost of smoothsal used alone. This script
times each configuration in a fresh process: it loads Lite0 and the photos, makes one untimed call
(reported as ``first``: ours learns its rows per call on it), then ``--calls`` timed calls (each
with its minor page faults), and prints one JSON line. ``--repeats`` processes per configuration,
their order rotated; the figure of a configuration is the median over its processes of each
process's median call, with the range over processes.

``--src DIR`` (repeatable, ``label=DIR``) runs the children with ``PYTHONPATH=DIR``: the same
benchmark on other code (e.g. a worktree of an earlier commit), interleaved with this tree's, so
before and after are measured in one sitting. The children use only the public methods, the
bundled photos and the Lite0 loader (``smoothsal.models.zoo`` or, in older trees, ``smoothsal.zoo``).

Run: ``.venv/bin/python benchmarks/bench_isolated.py [--repeats 3] [--calls 4] [--src before=/path/src] [--out FILE]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import command_line, rel, write_json

#: the last calls of a process that make its steady state (ours learns its rows per call on the
#: first four or five calls of a cold process, exploring sizes it will not keep)
STEADY = 3
RESULTS = Path(__file__).parent / "results" / "isolated.json"
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")
NOISE = 0.15
N = 50
#: configuration -> (images, what runs); floor and Captum at the rows per call that were best in
#: benchmarks/results/anchors_timing_lite0_r3_after18.json (16 at one image, 16 / 8 at two)
CONFIGS: dict[str, tuple[int, str]] = {
    "sg1_floor16": (1, "floor:16"),
    "sg1_ours": (1, "ours_sg"),
    "sg1_captum16": (1, "captum_sg:16"),
    "sg2_floor16": (2, "floor:16"),
    "sg2_ours": (2, "ours_sg"),
    "sg2_captum8": (2, "captum_sg:8"),
    "ig32_ours": (1, "ours_ig"),
    "ig32_captum16": (1, "captum_ig:16"),
}


# The work below is that of bench_anchors.py's rows, written again on purpose: a child may run an
# older code tree (``--src``), on which bench_anchors.py does not import (it needs smoothsal.execution).


def _lite0() -> torch.nn.Module:
    try:
        from smoothsal.models.zoo import efficientnet_lite0
    except ImportError:  # trees before the models/ folder
        from smoothsal.zoo import efficientnet_lite0
    return efficientnet_lite0()


def _photos(k: int) -> torch.Tensor:
    from smoothsal.datasets import load_photo

    return torch.cat([load_photo(name).tensor for name in PHOTOS])[:k].contiguous()


def _sigma(x: torch.Tensor) -> torch.Tensor:
    flat = x.flatten(1)
    return NOISE * (flat.amax(1) - flat.amin(1))


def _work(what: str, model: torch.nn.Module, x: torch.Tensor) -> Callable[[], Any]:
    """The call a configuration times (same work as the rows of ``bench_anchors.py``)."""
    import smoothsal

    with torch.no_grad():
        targets = model(x).argmax(1)
    kind, _, rows = what.partition(":")
    if kind == "ours_sg":
        method = smoothsal.SmoothGrad(model, noise_level=NOISE, n_samples=N)
        return lambda: method.attribute(x)
    if kind == "ours_ig":
        ig = smoothsal.IntegratedGradients(model, steps=32)
        return lambda: ig.attribute(x)
    if kind == "floor":
        gen = torch.Generator().manual_seed(1)
        noisy = (
            x.unsqueeze(0)
            + _sigma(x).view(-1, 1, 1, 1) * torch.randn(N, *x.shape, generator=gen)
        ).flatten(0, 1)
        row_t, step = targets.repeat(N), int(rows)

        def floor() -> torch.Tensor:
            total = torch.zeros_like(x)
            for i in range(0, noisy.shape[0], step):
                inp = noisy[i : i + step].detach().requires_grad_(True)
                (g,) = torch.autograd.grad(
                    model(inp).gather(1, row_t[i : i + step, None]).sum(), inp
                )
                total.index_add_(0, torch.arange(i, i + inp.shape[0]) % x.shape[0], g)
            return total / N

        return floor
    import captum.attr as captum

    if kind == "captum_sg":
        nt = captum.NoiseTunnel(captum.Saliency(model))
        sig = float(_sigma(x)[0])
        return lambda: nt.attribute(
            x,
            nt_type="smoothgrad",
            nt_samples=N,
            stdevs=sig,
            target=targets,
            nt_samples_batch_size=int(rows),
            abs=False,
        )
    if kind == "captum_ig":
        ig = captum.IntegratedGradients(model)
        return lambda: ig.attribute(
            x,
            target=targets,
            n_steps=32,
            method="gausslegendre",
            internal_batch_size=int(rows),
        )
    raise ValueError(f"unknown work {what!r}")


def _learned() -> dict[str, int]:
    """The rows per call ours learned, per work (what it runs); older trees kept them in ``smoothsal._tuner``."""
    try:
        from smoothsal.execution.policy import learned_sizes

        return {
            "/".join(map(str, key[-1])): state["best"]
            for key, state in learned_sizes().items()
        }
    except ImportError:
        try:
            from smoothsal import _tuner

            return {
                "/".join(map(str, key[-1])): state.best()
                for key, state in _tuner._learned.items()
            }
        except (ImportError, AttributeError, TypeError):
            return {}


def child(config: str, calls: int) -> None:
    """Run one configuration in this fresh process and print a JSON line."""
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", torch.get_num_threads())))
    images, what = CONFIGS[config]
    model = _lite0()
    fn = _work(what, model, _photos(images))
    seconds, faults = [], []
    for _ in range(calls + 1):
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t0 = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - t0)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
    learned = _learned()
    with open("/proc/self/status") as f:
        peak = next(int(ln.split()[1]) * 1024 for ln in f if ln.startswith("VmHWM:"))
    print(
        json.dumps(
            {
                "config": config,
                "first_s": seconds[0],
                "seconds": seconds[1:],
                "first_faults": faults[0],
                "faults": faults[1:],
                "peak_rss_bytes": peak,
                "learned": learned,
            }
        )
    )


def run_child(config: str, calls: int, src: str | None, threads: int) -> dict[str, Any]:
    env = dict(os.environ, BENCH_THREADS=str(threads))
    if src:
        env["PYTHONPATH"] = src
    proc = subprocess.run(
        [sys.executable, __file__, "--child", config, "--calls", str(calls)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(
            f"{config} ({src or 'this tree'}) failed: {proc.stderr.strip()[-600:]}"
        )
    return json.loads(lines[-1])


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median over processes of each process's median call, the range over processes, the same of
    each process's last :data:`STEADY` calls (after learning), and the faults."""
    per = [statistics.median(r["seconds"]) for r in runs]
    steady = [statistics.median(r["seconds"][-STEADY:]) for r in runs]
    return {
        "median_s": statistics.median(per),
        "min_s": min(per),
        "max_s": max(per),
        "steady_s": statistics.median(steady),
        "steady_min_s": min(steady),
        "steady_max_s": max(steady),
        "first_s": statistics.median(r["first_s"] for r in runs),
        "faults_per_call": statistics.median(
            statistics.median(r["faults"]) for r in runs
        ),
        "peak_rss_mib": statistics.median(r["peak_rss_bytes"] for r in runs) / 2**20,
        "processes": len(per),
    }


def _tree(src: str | None) -> dict[str, str]:
    """A code tree as the result records it: its commit, and its path only when inside this repository."""
    folder = Path(src) if src else Path(__file__).resolve().parents[1] / "src"
    sha = subprocess.run(
        ["git", "-C", str(folder), "rev-parse", "--short", "HEAD"],
        check=False,
        capture_output=True,
        text=True,
    ).stdout.strip()
    path = rel(folder)
    return {
        "commit": sha or "unknown",
        "src": path
        if not Path(path).is_absolute()
        else "(a checkout outside this repository)",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="processes per configuration (and code tree)",
    )
    parser.add_argument(
        "--calls",
        type=int,
        default=4,
        help="timed calls per process, after one untimed",
    )
    parser.add_argument(
        "--configs",
        default=",".join(CONFIGS),
        help="comma-separated: " + ", ".join(CONFIGS),
    )
    parser.add_argument(
        "--src",
        action="append",
        default=[],
        help="label=DIR: also run the children on the code in DIR",
    )
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.calls < 1:
        parser.error(f"--calls: at least 1 timed call per process, got {args.calls}")
    if args.child:
        child(args.child, args.calls)
        return
    bad = [s for s in args.src if "=" not in s or not s.split("=", 1)[1]]
    if bad:
        parser.error(f"--src: expected label=DIR, got {bad}")
    trees = [("this", None)] + [tuple(s.split("=", 1)) for s in args.src]
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        parser.error(f"--configs: unknown {unknown}; known: {', '.join(CONFIGS)}")
    # other trees run only ours: the floor and Captum do not use smoothsal's code
    jobs = [
        (label, src, c)
        for label, src in trees
        for c in configs
        if src is None or "ours" in CONFIGS[c][1]
    ]
    runs: dict[str, list[dict[str, Any]]] = {}
    t0 = time.perf_counter()
    for r in range(args.repeats):
        k = (r * 3) % len(jobs)
        for label, src, config in jobs[k:] + jobs[:k]:
            res = run_child(config, args.calls, src, args.threads)
            runs.setdefault(f"{label}/{config}", []).append(res)
            print(
                f"[{r + 1}/{args.repeats}] {label:>8} {config:<14} first {res['first_s']:.2f} s, calls "
                + " ".join(f"{s:.2f}" for s in res["seconds"])
                + " s, faults/call "
                + " ".join(str(f) for f in res["faults"])
                + (f", learned {res['learned']}" if res.get("learned") else ""),
                flush=True,
            )
    table = {key: summary(v) for key, v in runs.items()}
    print(
        f"\n{'tree/config':<26}{'median s':>9}{'range':>12}{'steady s':>9}{'range':>12}{'first s':>9}{'faults/call':>12}{'peak MiB':>9}"
    )
    for key, s in table.items():
        spread, steady = (
            f"{s['min_s']:.2f}-{s['max_s']:.2f}",
            f"{s['steady_min_s']:.2f}-{s['steady_max_s']:.2f}",
        )
        print(
            f"{key:<26}{s['median_s']:>9.3f}{spread:>12}{s['steady_s']:>9.3f}{steady:>12}{s['first_s']:>9.2f}"
            f"{s['faults_per_call']:>12.0f}{s['peak_rss_mib']:>9.0f}"
        )
    out = {
        "benchmark": "bench_isolated",
        "command": command_line(),
        "trees": {label: _tree(src) for label, src in trees},
        "threads": args.threads,
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "seconds": time.perf_counter() - t0,
        "summary": table,
        "runs": runs,
    }
    print("\n" + write_json(args.out, out))


if __name__ == "__main__":
    main()
