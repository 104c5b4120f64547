"""What autograd modes, frozen weights and ``torch.compile`` buy on EfficientNet-Lite0 (issue 8).

Each row times the same work two ways, interleaved, median of ``--repeats`` runs, and prints the
ratio (baseline time / variant time; > 1 means the variant is faster):

* ``forward: no_grad -> inference_mode``: a forward-only pass of ``--rows`` rows (what occlusion,
  deletion/insertion and the pruning curves run);
* ``fwd+bwd: weights require grad -> frozen``: a forward+backward for the input gradient with the
  parameters requiring gradients (the state a model comes in) against frozen parameters (what
  :func:`smoothsal.execution.guard.preserve_model` now does inside every attribution);
* ``fwd+bwd: eager -> torch.compile``: frozen weights, eager against ``torch.compile(model)``
  (default mode), after one warm-up call whose compile time is reported separately.

Also reports the peak resident memory growth of one fwd+bwd with and without frozen weights.
The rule for keeping a change, fixed before running: kept if the median ratio is ≥ 1.05 on this
machine (and results agree), dropped otherwise. Writes ``benchmarks/results/bench_modes.json``.

    python benchmarks/bench_modes.py [--rows 8] [--repeats 5] [--device auto] [--no-compile]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from smoothsal.execution.devices import resolve_device
from smoothsal.models.zoo import load_model

RESULTS = Path(__file__).parent / "results" / "bench_modes.json"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def compare(a: Callable[[], object], b: Callable[[], object], repeats: int, device: torch.device) -> dict:
    timed(a, device), timed(b, device)  # warm-up
    ta, tb = [], []
    for _ in range(repeats):
        ta.append(timed(a, device))
        tb.append(timed(b, device))
    ma, mb = statistics.median(ta), statistics.median(tb)
    return {"baseline_s": round(ma, 4), "variant_s": round(mb, 4), "ratio": round(ma / mb, 3), "kept": ma / mb >= 1.05}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()
    device = resolve_device(args.device)
    net = load_model("lite0").model.to(device).eval()
    x = torch.rand(args.rows, 3, 224, 224, device=device)
    params = list(net.parameters())

    def set_frozen(frozen: bool) -> None:
        for p in params:
            p.requires_grad_(not frozen)

    def forward_no_grad() -> None:
        with torch.no_grad():
            net(x)

    def forward_inference() -> None:
        with torch.inference_mode():
            net(x)

    def fwd_bwd(model: torch.nn.Module, frozen: bool) -> Callable[[], torch.Tensor]:
        def run() -> torch.Tensor:
            set_frozen(frozen)
            xi = x.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(model(xi)[:, 0].sum(), xi)
            return g

        return run

    rows = {
        "forward: no_grad -> inference_mode": compare(forward_no_grad, forward_inference, args.repeats, device),
        "fwd+bwd: weights require grad -> frozen": compare(
            fwd_bwd(net, False), fwd_bwd(net, True), args.repeats, device
        ),
    }
    same = torch.equal(fwd_bwd(net, False)(), fwd_bwd(net, True)())
    rows["fwd+bwd: weights require grad -> frozen"]["same_gradient"] = same
    if device.type == "cuda":
        for frozen in (False, True):
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
            fwd_bwd(net, frozen)()
            rows["fwd+bwd: weights require grad -> frozen"][f"peak_MiB_{'frozen' if frozen else 'grad'}"] = round(
                (torch.cuda.max_memory_allocated(device) - base) / 2**20, 1
            )
    if not args.no_compile:
        set_frozen(True)
        compiled = torch.compile(net)
        t0 = time.perf_counter()
        try:
            fwd_bwd(compiled, True)()
            compile_s = time.perf_counter() - t0
            row = compare(fwd_bwd(net, True), fwd_bwd(compiled, True), args.repeats, device)
            row["compile_s"] = round(compile_s, 1)
            err = (fwd_bwd(compiled, True)() - fwd_bwd(net, True)()).norm() / fwd_bwd(net, True)().norm()
            row["relative_difference"] = float(err)
        except Exception as exc:  # noqa: BLE001 - a compiler failure is a result to report
            row = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}", "kept": False}
        rows["fwd+bwd: eager -> torch.compile"] = row
    set_frozen(False)
    print(f"EfficientNet-Lite0, {args.rows} rows at 224², {device}, {torch.get_num_threads()} threads")
    for name, r in rows.items():
        if "error" in r:
            print(f"{name:<44} failed: {r['error']}")
        else:
            extra = f" (compile {r['compile_s']} s)" if "compile_s" in r else ""
            print(f"{name:<44} {r['baseline_s']:.3f} s -> {r['variant_s']:.3f} s  ratio {r['ratio']:.2f}  "
                  f"{'kept' if r['kept'] else 'dropped'}{extra}")  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"device": str(device), "rows": args.rows, "repeats": args.repeats,
                                   "results": rows}, indent=2) + "\n")  # fmt: skip
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
