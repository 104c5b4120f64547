"""GPU check: the library on CUDA against the CPU, and the automatic batch size on a GPU.

Run by hand where a GPU is at hand (the ``device`` tool of the workplace, or your own machine);
on a machine without CUDA it says so and exits 0. It checks:

* inputs follow the model's device: CPU inputs to a CUDA model give CPU results;
* deterministic methods agree with the CPU (vanilla gradient, IG, Grad-CAM): largest difference
  relative to the map's largest value;
* SmoothGrad on CUDA draws its noise from a CUDA generator (another stream than the CPU's), so it
  is compared through its standard errors: ‖CUDA − CPU‖ / √(‖SE_CUDA‖² + ‖SE_CPU‖²) should be
  about 1 (two independent estimates of one expectation);
* the rows per call the learned policy settles on on the GPU and the throughput at fixed sizes (medians of 3).

Writes ``benchmarks/results/gpu.json`` and prints it.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.cpu() - b.cpu()).abs().max() / b.abs().max().clamp_min(1e-30))


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 0
    import smoothsal as ss
    from smoothsal.execution import policy

    out: dict = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    cpu_model = ss.zoo.efficientnet_lite0()
    gpu_model = ss.zoo.efficientnet_lite0().cuda()
    x = torch.cat([ss.datasets.load_photo(n).tensor for n in ("chelsea", "coffee")])  # CPU inputs
    t = [281, 967]

    g_gpu = ss.VanillaGradient(gpu_model).attribute(x, t)
    out["inputs_follow_model"] = g_gpu.device.type == "cpu"
    out["gradient_rel_diff"] = _rel(g_gpu, ss.VanillaGradient(cpu_model).attribute(x, t))
    out["ig_rel_diff"] = _rel(ss.IntegratedGradients(gpu_model, steps=16).attribute(x, t),
                              ss.IntegratedGradients(cpu_model, steps=16).attribute(x, t))
    out["gradcam_rel_diff"] = _rel(ss.GradCAM(gpu_model).attribute(x, t), ss.GradCAM(cpu_model).attribute(x, t))

    est_gpu = ss.SmoothGrad(gpu_model, n_samples=200).estimate(x, t)
    est_cpu = ss.SmoothGrad(cpu_model, n_samples=200).estimate(x, t)
    diff = (est_gpu.attributions.cpu() - est_cpu.attributions).flatten(1).norm(dim=1)
    se = torch.sqrt(est_gpu.stderr.cpu().flatten(1).norm(dim=1) ** 2 + est_cpu.stderr.flatten(1).norm(dim=1) ** 2)
    out["smoothgrad_diff_over_se"] = (diff / se).tolist()  # about 1 for two independent estimates

    policy.clear_learned()
    xg = x.cuda()
    timings = {}
    for size in (None, 8, 32, 128):
        runs = []
        for _ in range(3):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            ss.SmoothGrad(gpu_model, n_samples=256, batch_size=size).attribute(xg, t)
            torch.cuda.synchronize()
            runs.append(time.perf_counter() - t0)
        timings["auto" if size is None else str(size)] = statistics.median(runs)
    out["smoothgrad_seconds_512_rows"] = timings
    out["learned"] = {str(k[-1]): s for k, s in policy.learned_sizes().items()}

    path = HERE / "results" / "gpu.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, default=str))
    print(json.dumps(out, indent=2, default=str))
    ok = out["inputs_follow_model"] and max(out["gradient_rel_diff"], out["ig_rel_diff"], out["gradcam_rel_diff"]) < 1e-2
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
