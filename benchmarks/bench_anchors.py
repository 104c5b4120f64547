"""smoothsal at its API defaults against the anchors (Captum, Zennit, pytorch-grad-cam) and a floor.

One table, all ratios from this one run: every configuration of a group is run once per round,
the rounds interleaved (the order rotates each round), and the median of the rounds is reported.
All of it runs in one process: every library then runs with the allocator setting smoothsal makes
at its first call (:mod:`smoothsal.execution.allocator`: the floor and Captum no longer fault
their activations in), and what the others free between our calls is given back by smoothsal's
memory bounds at our next job. ``bench_isolated.py`` times each configuration in a process of its
own, what a user of one library gets.

Models: the bundled EfficientNet-Lite0 at 224×224 (inputs in [0, 1]; the photos chelsea, coffee,
astronaut, rocket) and a small random-init CNN at 32×32 (the same photos, downsized).

Rows (per model):

* ``floor``: the same n noisy forward+backward passes on pre-made noisy inputs, a plain torch loop,
  at the best of 4, 8 and 16 rows per call (reported);
* ``ours``: ``SmoothGrad(model, noise_level=0.15, n_samples=50).attribute(x)`` at the API defaults
  (rows per call learned within the process: the first call, with nothing learned, is reported
  apart from the steady-state median). The defaults run the model's BatchNorm-folded copy
  (:mod:`smoothsal.execution.folding`), so a second row, ``ours ... folding off``, times the same call inside
  ``smoothsal.execution.folding.folding(False)``: the runner alone against the floor (which, like every
  anchor, runs the model as given);
* Captum ``NoiseTunnel(Saliency)`` smoothgrad, nt_samples=50, at its default (all samples in one
  batch) and at its best ``nt_samples_batch_size``; ``abs=False`` so that its map is the signed
  SmoothGrad that ours computes (Captum's default ``abs=True`` averages |grad|, same cost);
* Zennit ``SmoothGrad`` (n_iter=50: a loop of one call per sample, its last sample noise-free);
* Integrated Gradients, 32 steps (Gauss–Legendre in both): Captum at its default
  (``internal_batch_size=None``) and its best, against ours;
* SmoothGrad of IG with the same total work: Captum ``NoiseTunnel(IntegratedGradients)``
  (nt_samples=16, n_steps=4) against ours ``Smooth(IntegratedGradients(model, steps=4), n_samples=16)``;
* Grad-CAM at the last conv layer: pytorch-grad-cam against ours.

Same σ in absolute units: ours is noise_level × (x_max − x_min) per image; Captum's ``stdevs`` is
one absolute number per input tensor, set to the same value (the photos' ranges are reported).
For each pair, ``r`` is Pearson's correlation over the pixels of the two maps (mean over images);
the SmoothGrad rows are Monte-Carlo estimates with different noise draws, so ``r`` is to be read
against ``r`` of ours with seed 0 against ours with seed 1 (the same computation, other draws).

Memory: peak resident memory (``VmHWM``, the process's own since exec) of a fresh subprocess per
configuration, minus that of a subprocess that only imports, loads the model and the photo;
n = 50 and n = 1000, ours and Captum's NoiseTunnel (default and batched). Each child runs under an
address-space limit (``--mem-limit-gb``), so a configuration that would need more fails instead
of swapping the machine, and is reported as such.

Run: ``make bench`` or ``.venv/bin/python benchmarks/bench_anchors.py [--quick] [--out FILE] [--log FILE]``
(writes ``benchmarks/results/anchors.json``, or ``--out``; ``--log`` keeps the console output too). Needs the ``bench`` extra (captum) and, optionally,
zennit and grad-cam (``make bench`` installs them with ``--no-deps``: both require torchvision,
whose PyPI wheels are CUDA builds that do not load against the CPU torch; when torchvision cannot
be imported, this script puts an inert stub in its place, which neither anchor uses for the work
timed here; the JSON says which was used).
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.machinery
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

import smoothsal
from smoothsal.datasets import load_photo
from smoothsal.execution import policy
from smoothsal.methods.grad_cam import resolve_layer
from smoothsal.models.zoo import efficientnet_lite0

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")
NOISE = 0.15
N = 50
FLOOR_ROWS = (4, 8, 16)
RESULTS = Path(__file__).parent / "results" / "anchors.json"


# ---- optional anchors ------------------------------------------------------------------------
class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports ``torchvision`` and its submodules as inert modules whose every name is a class
    that raises when used: enough for zennit and pytorch-grad-cam to import."""

    def find_spec(self, name, path=None, target=None):  # noqa: D401
        if name == "torchvision" or name.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        module.__path__ = []
        module.__version__ = "stub"

        def __getattr__(attr: str):
            if attr.startswith("__"):
                raise AttributeError(attr)

            def fail(*args, **kwargs):
                raise RuntimeError(f"torchvision stub: {module.__name__}.{attr} is not available")

            return type(attr, (), {"__init__": fail})

        module.__getattr__ = __getattr__


def _torchvision() -> str:
    try:
        import torchvision

        return f"torchvision {torchvision.__version__}"
    except Exception as err:  # noqa: BLE001 - ImportError, or a CUDA wheel failing on a CPU torch
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        sys.meta_path.insert(0, _StubFinder())
        return f"stub (torchvision cannot be imported: {type(err).__name__}: {str(err)[:120]})"


def load_anchors() -> dict[str, Any]:
    """Which anchors import here: name -> module, or a string saying why not."""
    found: dict[str, Any] = {"torchvision": _torchvision()}
    for key, mod in (("captum", "captum.attr"), ("zennit", "zennit.attribution"), ("gradcam", "pytorch_grad_cam")):
        try:
            found[key] = __import__(mod, fromlist=["_"])
        except Exception as err:  # noqa: BLE001
            found[key] = f"not available: {type(err).__name__}: {err}"
    return found


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


# ---- models and inputs -----------------------------------------------------------------------
class SmallCNN(nn.Module):
    """A CIFAR-sized CNN (3 conv layers, 10 classes), random init with seed 0."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def photos(k: int, size: int = 224) -> torch.Tensor:
    """``k`` photos [k, 3, size, size] in [0, 1]: the bundled four, then their mirror images."""
    base = torch.cat([load_photo(name).tensor for name in PHOTOS])
    if size != 224:
        base = F.interpolate(base, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    x = torch.cat([base, base.flip(-1)])
    return x[:k].contiguous()


def sigma_abs(x: torch.Tensor) -> torch.Tensor:
    """Ours: σ = noise_level × (x_max − x_min) per image, [B]."""
    flat = x.flatten(1)
    return NOISE * (flat.amax(1) - flat.amin(1))


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson's r over the pixels of each image's map, mean over images."""
    b = torch.as_tensor(b).double().reshape(b.shape[0], -1)
    a = torch.as_tensor(a).double().reshape(b.shape[0], -1)
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    r = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-300)
    return float(r.mean())


# ---- the work --------------------------------------------------------------------------------
def floor_fn(model: nn.Module, x: torch.Tensor, targets: torch.Tensor, n: int, rows: int) -> Callable[[], Any]:
    """n noisy passes per image on pre-made noisy inputs, ``rows`` rows per call, summed."""
    gen = torch.Generator().manual_seed(1)
    sig = sigma_abs(x).view(-1, 1, 1, 1)
    noisy = (x.unsqueeze(0) + sig * torch.randn(n, *x.shape, generator=gen)).flatten(0, 1)  # [n*B, ...]
    row_t = targets.repeat(n)

    def run() -> torch.Tensor:
        total = torch.zeros_like(x)
        b = x.shape[0]
        for i in range(0, noisy.shape[0], rows):
            inp = noisy[i : i + rows].detach().requires_grad_(True)
            score = model(inp).gather(1, row_t[i : i + rows, None]).sum()
            (g,) = torch.autograd.grad(score, inp)
            idx = torch.arange(i, i + inp.shape[0]) % b
            total.index_add_(0, idx, g)
        return total / n

    return run


def captum_sg(captum, model, x, targets, sig: float, n: int, nt_bs: int | None) -> Callable[[], Any]:
    nt = captum.NoiseTunnel(captum.Saliency(model))
    return lambda: nt.attribute(x, nt_type="smoothgrad", nt_samples=n, stdevs=sig, target=targets,
                                nt_samples_batch_size=nt_bs, abs=False)


def zennit_sg(zennit, model, x, targets, n: int, classes: int) -> Callable[[], Any]:
    onehot = torch.eye(classes)[targets]

    def run():
        with zennit.SmoothGrad(model, noise_level=NOISE, n_iter=n) as attributor:
            _, attr = attributor(x, onehot)
        return attr

    return run


def unfolded(fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` run with BatchNorm folding off (the model as given)."""

    def run() -> Any:
        with smoothsal.execution.folding.folding(False):
            return fn()

    return run


def time_call(fn: Callable[[], Any], inner: int) -> tuple[float, Any]:
    """Seconds per call over ``inner`` calls, and the last call's result."""
    t0 = time.perf_counter()
    for _ in range(inner):
        out = fn()
    return (time.perf_counter() - t0) / inner, out


def calibrate(fn: Callable[[], Any], min_seconds: float) -> int:
    """Inner repeats so that one measurement lasts about ``min_seconds`` (1 for slow calls)."""
    t, _ = time_call(fn, 1)
    return max(1, math.ceil(min_seconds / max(t, 1e-6))) if t < min_seconds else 1


def interleaved(configs: dict[str, Callable[[], Any]], rounds: int, min_seconds: float,
                log: Callable[[str], None], warm: bool = True) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Seconds per call of each config in each round (rounds interleaved, the order rotated each
    round), and each config's last result. ``warm``: one untimed call of each first (it also
    sets the inner repeats that make a measurement last ``min_seconds``)."""
    names = list(configs)
    inner = {name: calibrate(configs[name], min_seconds) if warm else 1 for name in names}
    seconds: dict[str, list[float]] = {name: [] for name in names}
    last: dict[str, Any] = {}
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            sec, last[name] = time_call(configs[name], inner[name])
            seconds[name].append(sec)
        log(f"    round {r + 1}/{rounds}: " + ", ".join(f"{n}={seconds[n][-1]:.3g}s" for n in names))
    return seconds, last


def learned_rows() -> dict[str, int]:
    """Rows per call the learned policy settled on, per work (what it runs: smooth-of-method, or ig)."""
    out = {}
    for key, state in policy.learned_sizes().items():
        what = key[-1]
        name = "/".join(str(w) for w in what if w is not None) if isinstance(what, tuple) else str(what)
        out[name] = state["best"]
    return out


def tuner_note(prefix: str = "") -> tuple[int | None, str]:
    learned = learned_rows()
    rows = next((v for k, v in learned.items() if k.startswith("smooth")), None) or (max(learned.values()) if learned else None)
    return rows, (prefix + "; " if prefix else "") + "learned rows/call: " + ", ".join(f"{k}={v}" for k, v in learned.items())


# ---- memory (subprocess per configuration) ---------------------------------------------------
def child(config: str, n: int, nt_bs: int) -> None:
    """Run one configuration in this fresh process and print a JSON line."""
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", torch.get_num_threads())))
    import captum.attr as captum  # imported by every child, the baseline too

    model = efficientnet_lite0()
    x = photos(1)
    with torch.no_grad():
        t = model(x).argmax(1)
    sig = float(sigma_abs(x)[0])
    out: dict[str, Any] = {"config": config, "n": n}
    t0 = time.perf_counter()
    try:
        if config == "ours":
            smoothsal.SmoothGrad(model, noise_level=NOISE, n_samples=n).attribute(x)
        elif config == "captum_default":
            captum_sg(captum, model, x, t, sig, n, None)()
        elif config == "captum_batched":
            captum_sg(captum, model, x, t, sig, n, nt_bs)()
        out["ok"] = True
    except Exception as err:  # noqa: BLE001 - out of memory under the address-space limit
        out["ok"] = False
        out["error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"
    out["seconds"] = time.perf_counter() - t0
    # this process's own peak RSS since exec (VmHWM); rusage's ru_maxrss would also count the
    # parent's pages that the fork copied before the exec
    with open("/proc/self/status") as f:
        out["peak_rss_bytes"] = next(int(ln.split()[1]) * 1024 for ln in f if ln.startswith("VmHWM:"))
    print(json.dumps(out))


def run_child(config: str, n: int, nt_bs: int, limit_gb: float) -> dict[str, Any]:
    """Run ``child`` in a fresh process under an address-space limit; it reports its own peak RSS."""
    import tempfile

    limit = int(limit_gb * 2**30)

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    cmd = [sys.executable, __file__, "--child", config, "--child-n", str(n), "--child-bs", str(nt_bs)]
    env = dict(os.environ, BENCH_THREADS=str(torch.get_num_threads()))
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, preexec_fn=cap, env=env, text=True)
        proc.wait()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    line = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    res = json.loads(line[-1]) if line else {
        "config": config, "n": n, "ok": False, "seconds": float("nan"),
        "error": f"exit {proc.returncode}: {' '.join(stderr.strip().splitlines()[-1:])[:200]}"}
    res.setdefault("peak_rss_bytes", None)
    return res


# ---- the benchmark ---------------------------------------------------------------------------
class _Tee:
    """``--log``: what is printed goes to the console and to the log file."""

    def __init__(self, *streams: Any) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="no 8-image group, memory at n=300 instead of 1000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mem-limit-gb", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--models", default="lite0,small_cnn", help="comma-separated: lite0, small_cnn")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--memory-only", action="store_true",
                        help="only the memory part; the timing rows of --out (an earlier run) are kept")
    parser.add_argument("--log", type=Path, default=None, help="also write everything printed to this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-n", type=int, default=N, help=argparse.SUPPRESS)
    parser.add_argument("--child-bs", type=int, default=8, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.child_n, args.child_bs)
        return

    if args.log is not None:
        args.log.parent.mkdir(parents=True, exist_ok=True)
        sys.stdout = _Tee(sys.stdout, args.log.open("w"))
    if args.threads:
        torch.set_num_threads(args.threads)
    load_start = os.getloadavg()
    t_start = time.perf_counter()
    log = lambda s: print(s, flush=True)  # noqa: E731
    anchors = load_anchors()
    captum = anchors["captum"]
    if isinstance(captum, str):
        sys.exit(f"captum is needed: pip install captum ({captum})")
    zennit = anchors["zennit"] if not isinstance(anchors["zennit"], str) else None
    gradcam = anchors["gradcam"] if not isinstance(anchors["gradcam"], str) else None
    rows: list[dict[str, Any]] = []
    info: dict[str, Any] = {}

    def add(model_name, work, images, method, secs, *, floor=None, ours=None, rows_per_call=None,
            r=None, note="", first=None):
        med = statistics.median(secs) if secs else None
        rows.append({
            "model": model_name, "work": work, "images": images, "method": method,
            "rows_per_call": rows_per_call, "seconds": secs, "median_s": med, "first_call_s": first,
            "vs_floor": med / floor if (med and floor) else None,
            "vs_ours": med / ours if (med and ours) else None,
            "pearson_vs_ours": r, "note": note,
        })

    if args.memory_only:
        earlier = json.loads(args.out.read_text())
        rows.extend(earlier["rows"])
        info.update(earlier["info"], timing_command=earlier["command"], timing_seconds=earlier["total_seconds"],
                    timing_machine=earlier["machine"])
    nt_bs = 8  # Captum's nt_samples_batch_size in the memory runs
    mem: dict[str, Any] = {}

    def save(final: bool) -> str:
        """Write the JSON (also after each model, so a crash keeps what was measured)."""
        def fmt(v, spec):
            return format(v, spec) if v is not None else "-"

        header = f"{'model':<10}{'work':<20}{'img':>4}  {'method':<62}{'rows':>6}{'median s':>10}{'first s':>9}{'/floor':>8}{'/ours':>7}{'r vs ours':>10}  note"
        lines = [header, "-" * len(header)]
        for row in rows:
            lines.append(
                f"{row['model']:<10}{row['work']:<20}{row['images']:>4}  {row['method'][:61]:<62}"
                f"{fmt(row['rows_per_call'], 'd'):>6}{fmt(row['median_s'], '.3f'):>10}{fmt(row['first_call_s'], '.3f'):>9}"
                f"{fmt(row['vs_floor'], '.2f'):>8}{fmt(row['vs_ours'], '.2f'):>7}{fmt(row['pearson_vs_ours'], '.3f'):>10}  {row['note']}"
            )
        lines.append("")
        if mem:
            lines.append(f"peak RSS over the baseline (imports + model + photo = {mem['baseline']['peak_rss_bytes'] / 2**20:.0f} MiB), "
                         f"Lite0, 1 image, SmoothGrad, fresh process each; Captum batched = nt_samples_batch_size={nt_bs}:")
        for key, res in mem.items():
            if key == "baseline":
                continue
            over = res.get("over_baseline_bytes")
            lines.append(f"  {key:<22} {'ok' if res['ok'] else 'FAILED':<7} +{over / 2**20 if over is not None else float('nan'):8.0f} MiB"
                         f"  {res['seconds']:6.1f} s  {res.get('error', '')}")
        table = "\n".join(lines)

        total = time.perf_counter() - t_start
        result = {
            "command": "python benchmarks/bench_anchors.py " + " ".join(sys.argv[1:]),
            "machine": {
                "platform": platform.platform(), "threads": torch.get_num_threads(), "torch": torch.__version__,
                "loadavg_at_start": load_start, "loadavg_at_end": os.getloadavg(),
            },
            "versions": {d: _version(d) for d in ("smoothsal", "captum", "zennit", "grad-cam", "opencv-python-headless")},
            "torchvision": anchors["torchvision"],
            "anchors_missing": {k: v for k, v in anchors.items() if isinstance(v, str) and k != "torchvision"},
            "rounds": args.rounds,
            "noise_level": NOISE, "n_samples": N, "info": info,
            "rows": rows, "memory": mem, "memory_nt_samples_batch_size": nt_bs,
            "total_seconds": total, "table": table, "complete": final,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        return table

    models = {
        "lite0": (efficientnet_lite0(), 224, 1000, (1, 2) if args.quick else (1, 2, 8)),
        "small_cnn": (SmallCNN().eval(), 32, 10, (1, 8)),
    }
    for mname, (model, size, classes, image_counts) in models.items():
        if mname not in args.models.split(",") or args.memory_only:
            continue
        min_s = 0.0 if mname == "lite0" else 0.2  # small CNN: repeat short calls to ~0.2 s
        log(f"== {mname}")
        best_floor_rows = None
        for k in image_counts:
            x = photos(k, size)
            with torch.no_grad():
                t = model(x).argmax(1)
            sig = sigma_abs(x)
            info[f"{mname}_sigma_abs_{k}img"] = [round(float(s), 5) for s in sig]
            sig_c = float(sig.mean())  # Captum: one σ for the tensor
            ours = smoothsal.SmoothGrad(model, noise_level=NOISE, n_samples=N)
            policy.clear_learned()
            t0 = time.perf_counter()
            m_ours = ours.attribute(x)
            first = time.perf_counter() - t0
            work = f"SmoothGrad n={N}"
            configs: dict[str, Callable[[], Any]] = {}
            sweep = FLOOR_ROWS if best_floor_rows is None else (best_floor_rows,)  # swept at 1 image
            for rr in sweep:
                configs[f"floor@{rr}"] = floor_fn(model, x, t, N, rr)
            configs["ours"] = lambda: ours.attribute(x)
            configs["ours_nofold"] = unfolded(lambda: ours.attribute(x))
            big_default = k * N * (82e6 if mname == "lite0" else 0) > 9e9
            if not big_default:
                configs["captum"] = captum_sg(captum, model, x, t, sig_c, N, None)
            nt_sizes = sorted({max(1, rr // k) for rr in FLOOR_ROWS})
            if k > 2 and mname == "lite0":
                nt_sizes = [max(1, best_floor_rows // k)]  # the 8-image group: only the floor's best rows
            for b in nt_sizes:
                configs[f"captum@{b}"] = captum_sg(captum, model, x, t, sig_c, N, b)
            if zennit is not None and (k == 1 or mname != "lite0"):
                configs["zennit"] = zennit_sg(zennit, model, x, t, N, classes)
            log(f"  {work}, {k} image(s): {', '.join(configs)}")
            secs, last = interleaved(configs, args.rounds, min_s, log, warm=not (k > 2 and mname == "lite0"))
            floors = {name: statistics.median(v) for name, v in secs.items() if name.startswith("floor@")}
            fbest = min(floors, key=floors.get)
            best_floor_rows = int(fbest.split("@")[1])
            fl = floors[fbest]
            o = statistics.median(secs["ours"])
            # maps for the correlations (untimed)
            m_seed1 = smoothsal.SmoothGrad(model, noise_level=NOISE, n_samples=N, seed=1).attribute(x)
            r_floor = pearson(m_ours, m_seed1)
            add(mname, work, k, f"floor (plain loop, best of {'/'.join(map(str, sweep))} rows)", secs[fbest],
                floor=fl, ours=o, rows_per_call=int(fbest.split("@")[1]),
                note="all: " + ", ".join(f"{n}={statistics.median(v):.3g}s" for n, v in secs.items() if n.startswith("floor@")))
            lr, note = tuner_note("r = ours seed 0 vs seed 1 (Monte-Carlo floor of r)")
            add(mname, work, k, "ours SmoothGrad (defaults)", secs["ours"], floor=fl, ours=o, first=first,
                rows_per_call=lr, r=r_floor, note=note)
            add(mname, work, k, "ours SmoothGrad (defaults), folding off", secs["ours_nofold"], floor=fl, ours=o,
                rows_per_call=lr, note="smoothsal.execution.folding.folding(False): the model as given")
            if "captum" in configs:
                m = last["captum"]
                add(mname, work, k, "Captum NoiseTunnel(Saliency) default", secs["captum"], floor=fl, ours=o,
                    rows_per_call=k * N, r=pearson(m, m_ours), note="abs=False (signed, as ours)")
            else:
                add(mname, work, k, "Captum NoiseTunnel(Saliency) default", [], rows_per_call=k * N,
                    note=f"not run: {k * N} rows in one batch need ~{k * N * 82e6 / 1e9:.0f} GB")
            caps = {name: statistics.median(v) for name, v in secs.items() if name.startswith("captum@")}
            cbest = min(caps, key=caps.get)
            b = int(cbest.split("@")[1])
            m = last[cbest]
            add(mname, work, k, f"Captum NoiseTunnel(Saliency) best nt_samples_batch_size={b}", secs[cbest],
                floor=fl, ours=o, rows_per_call=b * k, r=pearson(m, m_ours),
                note="tried " + ", ".join(f"{n.split('@')[1]}={v:.3g}s" for n, v in caps.items()))
            if "zennit" in configs:
                m = last["zennit"]
                add(mname, work, k, "Zennit SmoothGrad", secs["zennit"], floor=fl, ours=o, rows_per_call=k,
                    r=pearson(m, m_ours), note="one call per sample; last sample noise-free")
            elif k == 1:
                add(mname, work, k, "Zennit SmoothGrad", [], note=str(anchors["zennit"]))

        # ---- Integrated Gradients, 32 steps, 1 image
        x = photos(1, size)
        with torch.no_grad():
            t = model(x).argmax(1)
        sig_c = float(sigma_abs(x)[0])
        ig_ours = smoothsal.IntegratedGradients(model, steps=32)
        policy.clear_learned()
        t0 = time.perf_counter()
        m_ours = ig_ours.attribute(x)
        first = time.perf_counter() - t0
        cig = captum.IntegratedGradients(model)
        configs = {"ours": lambda: ig_ours.attribute(x), "ours_nofold": unfolded(lambda: ig_ours.attribute(x)),
                   "captum": lambda: cig.attribute(x, target=t, n_steps=32)}
        for b in FLOOR_ROWS:
            configs[f"captum@{b}"] = (lambda b=b: cig.attribute(x, target=t, n_steps=32, internal_batch_size=b))
        log("  IG steps=32, 1 image: " + ", ".join(configs))
        secs, last = interleaved(configs, args.rounds, min_s, log)
        o = statistics.median(secs["ours"])
        lr, note = tuner_note()
        add(mname, "IG steps=32", 1, "ours IntegratedGradients(steps=32)", secs["ours"], ours=o, first=first,
            rows_per_call=lr, note=note)
        add(mname, "IG steps=32", 1, "ours IntegratedGradients(steps=32), folding off", secs["ours_nofold"], ours=o,
            rows_per_call=lr, note="smoothsal.execution.folding.folding(False)")
        add(mname, "IG steps=32", 1, "Captum IntegratedGradients default", secs["captum"], ours=o, rows_per_call=32,
            r=pearson(last["captum"], m_ours), note="internal_batch_size=None")
        caps = {n: statistics.median(v) for n, v in secs.items() if n.startswith("captum@")}
        cbest = min(caps, key=caps.get)
        add(mname, "IG steps=32", 1, f"Captum IntegratedGradients best internal_batch_size={cbest.split('@')[1]}",
            secs[cbest], ours=o, rows_per_call=int(cbest.split("@")[1]), r=pearson(last[cbest], m_ours),
            note="tried " + ", ".join(f"{n.split('@')[1]}={v:.3g}s" for n, v in caps.items()))

        # ---- SmoothGrad of IG, same total work: 16 samples x 4 steps = 64 rows
        ns, st = 16, 4
        sig_ours = smoothsal.Smooth(smoothsal.IntegratedGradients(model, steps=st), noise_level=NOISE, n_samples=ns)
        policy.clear_learned()
        t0 = time.perf_counter()
        m_ours = sig_ours.attribute(x)
        first = time.perf_counter() - t0
        ntig = captum.NoiseTunnel(captum.IntegratedGradients(model))
        configs = {
            "ours": lambda: sig_ours.attribute(x),
            "ours_nofold": unfolded(lambda: sig_ours.attribute(x)),
            "captum": lambda: ntig.attribute(x, nt_type="smoothgrad", nt_samples=ns, stdevs=sig_c, target=t, n_steps=st),
            "captum@16": lambda: ntig.attribute(x, nt_type="smoothgrad", nt_samples=ns, stdevs=sig_c, target=t,
                                                n_steps=st, nt_samples_batch_size=4),
        }
        log("  Smooth(IG) 16x4, 1 image: " + ", ".join(configs))
        secs, last = interleaved(configs, args.rounds, min_s, log)
        o = statistics.median(secs["ours"])
        m_seed1 = smoothsal.Smooth(smoothsal.IntegratedGradients(model, steps=st), noise_level=NOISE,
                                   n_samples=ns, seed=1).attribute(x)
        work = f"SG(IG) {ns}x{st} steps"
        lr, note = tuner_note("r = ours seed 0 vs seed 1")
        add(mname, work, 1, f"ours Smooth(IntegratedGradients(steps={st}), n_samples={ns})", secs["ours"], ours=o,
            first=first, rows_per_call=lr, r=pearson(m_ours, m_seed1), note=note)
        add(mname, work, 1, f"ours Smooth(IntegratedGradients(steps={st}), n_samples={ns}), folding off",
            secs["ours_nofold"], ours=o, rows_per_call=lr, note="smoothsal.execution.folding.folding(False)")
        add(mname, work, 1, "Captum NoiseTunnel(IntegratedGradients) default", secs["captum"], ours=o,
            rows_per_call=ns * st, r=pearson(last["captum"], m_ours))
        add(mname, work, 1, "Captum NoiseTunnel(IG) nt_samples_batch_size=4", secs["captum@16"], ours=o,
            rows_per_call=16, r=pearson(last["captum@16"], m_ours))

        # ---- Grad-CAM at the last conv layer, 1 image
        lname, layer = resolve_layer(model, None)
        gc_ours = smoothsal.GradCAM(model)
        m_ours = gc_ours.attribute(x, target=t)
        configs = {"ours": lambda: gc_ours.attribute(x, target=t)}
        if gradcam is not None:
            from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

            cam_targets = [ClassifierOutputTarget(int(c)) for c in t]

            # the zoo's weights are frozen (requires_grad=False): without an input that requires grad
            # there is no graph, so pytorch-grad-cam needs its compute_input_gradient there
            frozen = not any(p.requires_grad for p in model.parameters())

            def run_gradcam():  # hooks registered per call, as ours does (and none left on the layer)
                with gradcam.GradCAM(model=model, target_layers=[layer]) as cam:
                    cam.compute_input_gradient = frozen  # GradCAM.__init__ does not pass it on
                    return cam(input_tensor=x, targets=cam_targets)

            configs["gradcam"] = run_gradcam
        log("  Grad-CAM, 1 image: " + ", ".join(configs))
        secs, last = interleaved(configs, max(args.rounds, 5), 0.3, log)
        o = statistics.median(secs["ours"])
        add(mname, "Grad-CAM", 1, f"ours GradCAM (layer {lname})", secs["ours"], ours=o, rows_per_call=1)
        if gradcam is not None:
            m = torch.as_tensor(last["gradcam"])
            add(mname, "Grad-CAM", 1, "pytorch-grad-cam GradCAM", secs["gradcam"], ours=o, rows_per_call=1,
                r=pearson(m, m_ours), note="numpy, min-max scaled per image (r is scale-free)" + ("; compute_input_gradient=True (frozen weights)" if frozen else ""))
        else:
            add(mname, "Grad-CAM", 1, "pytorch-grad-cam GradCAM", [], note=str(anchors["gradcam"]))

        save(False)

    # ---- memory: subprocess per configuration
    n_big = 300 if args.quick else 1000
    if not args.skip_memory:
        log(f"== memory (subprocesses, address-space limit {args.mem_limit_gb} GiB)")
        mem["baseline"] = run_child("baseline", 1, nt_bs, args.mem_limit_gb)
        log(f"  baseline peak RSS {mem['baseline']['peak_rss_bytes'] / 2**20:.0f} MiB")
    for config in ("ours", "captum_default", "captum_batched") if mem else ():
        for n in (N, n_big):
            res = run_child(config, n, nt_bs, args.mem_limit_gb)
            res["over_baseline_bytes"] = (res["peak_rss_bytes"] - mem["baseline"]["peak_rss_bytes"]
                                          if res.get("peak_rss_bytes") else None)
            mem[f"{config}@{n}"] = res
            log(f"  {config} n={n}: ok={res['ok']} {res.get('error', '')} peak RSS {res['peak_rss_bytes'] / 2**20:.0f} MiB "
                f"(+{res['over_baseline_bytes'] / 2**20:.0f} MiB), {res['seconds']:.1f} s")

    log("\n" + save(True))
    print(f"\nwrote {args.out} ({time.perf_counter() - t_start:.0f} s)")


if __name__ == "__main__":
    main()
