"""Train every MNIST model the reproductions use, and report each one's accuracy and cost.

The stability reproduction (issue 19): Table 1's settings DT / DR / DA, ``--pairs`` independently
trained pairs each, every model >= 98.5 % test accuracy (an error names the recipe otherwise), and
``--theory-pairs`` pairs in the regime of Theorems 5–6 (``"smooth_mlp"``, plain SGD with steps
c/(t + t0) <= c/t; their accuracy is reported, with no floor; group ``theory_t0`` trains the same
recipe with the exact step c/t, t0 = 0, for a few c, on one half). The SmoothGrad reproduction and the sanity checks
(issue 20): a true-label model and one random-label model per ``--label-seeds`` seed (LeNet-5 on
5,000 images, trained until it fits its permuted labels to 95 %), and ``--pairs`` pairs trained
without / with Gaussian input noise (σ = ``--noise`` × (x_max − x_min)).

Each model is cached by the hash of its recipe ($SMOOTHSAL_CACHE/models), so an interrupted run
resumes where it stopped and a second run only reads the cache; the table then shows the seconds
of the original training runs. Prints one row per model (setting, pair, model, recipe, test
accuracy, accuracy on its own training labels, wall seconds, CPU seconds = user + sys of the
process) and writes them, with the totals and the machine, to ``--out``::

    python benchmarks/train_mnist_models.py                       # everything, 1 thread
    python benchmarks/train_mnist_models.py --only DT DR DA theory  # the stability models only

Wall seconds are only meaningful on a quiet machine; CPU seconds are the cost.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from _provenance import command_line, rel

from smoothsal.studies.train import (
    MIN_TEST_ACCURACY,
    TrainedModel,
    model_pairs,
    noise_models,
    randomization_models,
    setting_configs,
    theory_pairs,
    theory_recipe,
    train_model,
)

GROUPS = ("DT", "DR", "DA", "theory", "theory_t0", "randomization", "noise")
#: the step constants of ``theory_t0``: the theory's recipe with the exact step c/t (t0 = 0)
EXACT_STEP_CONSTANTS = (1.0, 3.0, 10.0, 30.0)
#: the groups the stability reproduction needs (the ≤ 15-minute budget of issue 19)
STABILITY = ("DT", "DR", "DA", "theory")


def _row(group: str, pair: int | str, name: str, trained: TrainedModel) -> dict[str, Any]:
    row = {"setting": group, "pair": pair, "model": name, **trained.summary()}
    if trained.theory is not None:
        row["theory"] = trained.theory.to_dict()
    return row


def train_all(
    groups: tuple[str, ...], n_pairs: int, theory_pairs_: int, label_seeds: list[int], noise: float
) -> list[dict[str, Any]]:
    """The rows of every model of ``groups``, trained or loaded from the cache."""
    rows: list[dict[str, Any]] = []
    for setting in ("DT", "DR", "DA"):
        if setting in groups:
            for p, (a, b) in enumerate(model_pairs(setting, n_pairs)):
                rows += [_row(setting, p, "A", a), _row(setting, p, "B", b)]
    if "theory" in groups:
        for p, (a, b) in enumerate(theory_pairs(theory_pairs_)):
            rows += [_row("theory", p, "A", a), _row("theory", p, "B", b)]
    if "theory_t0" in groups:  # why theory_recipe has t0 = 1000: the exact c/t on one half, a few c
        for c in EXACT_STEP_CONSTANTS:
            config = setting_configs("DT", "mnist", 2, replace(theory_recipe(), lr=c, lr_offset=0), 0)[0]
            rows.append(_row("theory_t0", 0, f"c={c:g}, t0=0", train_model(config)))
    if "randomization" in groups:
        models = randomization_models(label_seeds)
        rows.append(_row("randomization", "-", "true labels", models.true_label))
        rows += [_row("randomization", s, f"labels permuted (seed {s})", m) for s, m in zip(models.label_seeds, models.random_label)]
    if "noise" in groups:
        for p, (plain, noisy) in enumerate(noise_models(noise, n_pairs)):
            rows += [_row("noise", p, "plain", plain), _row("noise", p, f"input noise {noise:g}", noisy)]
    return rows


def totals(rows: list[dict[str, Any]], groups: tuple[str, ...]) -> dict[str, float]:
    """Wall and CPU seconds summed over distinct models (DA's LeNet is DT's: counted once)."""
    unique = {r["key"]: r for r in rows if r["setting"] in groups}
    return {
        "models": len(unique),
        "train_seconds": sum(r["train_seconds"] for r in unique.values()),
        "cpu_seconds": sum(r["cpu_seconds"] for r in unique.values()),
    }


def table(rows: list[dict[str, Any]]) -> str:
    head = f"{'setting':<13} {'pair':>4} {'model':<26} {'test acc':>8} {'train acc':>9} {'seconds':>8} {'CPU s':>7}  recipe"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['setting']:<13} {r['pair']!s:>4} {r['model']:<26} {r['test_accuracy']:>8.4f} {r['train_accuracy']:>9.4f} "
            f"{r['train_seconds']:>8.1f} {r['cpu_seconds']:>7.1f}  {r['recipe']}"
        )
    return "\n".join(lines)


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=GROUPS, default=list(GROUPS), help="groups to train")
    parser.add_argument("--pairs", type=int, default=3, help="independent pairs per setting (and noise pairs)")
    parser.add_argument("--theory-pairs", type=int, default=3, help="pairs in the theory's regime")
    parser.add_argument("--label-seeds", type=int, nargs="+", default=[0, 1, 2], help="label permutations")
    parser.add_argument("--noise", type=float, default=0.2, help="input-noise level of the noisy models")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: cheapest on a shared 2-core machine)")
    parser.add_argument("--out", type=Path, default=Path("results/models/mnist_models.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    groups = tuple(args.only)

    start_wall, start_cpu = time.perf_counter(), time.process_time()
    rows = train_all(groups, args.pairs, args.theory_pairs, args.label_seeds, args.noise)
    run = {"wall_seconds": time.perf_counter() - start_wall, "cpu_seconds": time.process_time() - start_cpu,
           "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # fmt: skip
    print(table(rows))
    summary = {"all": totals(rows, groups), "stability": totals(rows, tuple(g for g in groups if g in STABILITY))}
    for name, tot in summary.items():
        print(f"{name}: {tot['models']} models, {tot['train_seconds']:.0f} s training wall, {tot['cpu_seconds']:.0f} CPU s")
    print(f"this run: {run['wall_seconds']:.0f} s wall, {run['cpu_seconds']:.0f} CPU s (cached models cost nothing), "
          f"peak RSS {run['peak_rss_mib']:.0f} MiB")  # fmt: skip
    report = {
        "command": command_line(None if argv is None else [sys.argv[0], *argv]),
        "commit": _commit(),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpu_count": os.cpu_count(),
                    "torch": torch.__version__, "torch_threads": args.threads},  # fmt: skip
        "min_test_accuracy": MIN_TEST_ACCURACY,
        "totals": summary,
        "this_run": run,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {rel(args.out)}")


if __name__ == "__main__":
    main()
