"""Does a fully randomized EfficientNet-Lite0 still look at its input? (the evaluate card's `--randomization`)

For each re-initialisation of :func:`smoothsal.metrics.sanity.randomize_layers` (``default``:
PyTorch's own init; ``scaled``: each tensor redrawn with its own mean and std, BatchNorm γ, β
permuted), every layer from the top down to the bottom is randomized, and this prints the spread
of the logits across the 4 bundled photos (0 = the model ignores its input) beside the spread
within each photo, and the mean Spearman similarity of Grad-CAM and gradient maps between
different photos (1 = the maps do not depend on the photo). The original model's spread is the
reference.

    python benchmarks/randomization_scale.py
"""

from __future__ import annotations

import itertools

import torch

from smoothsal.datasets.photos import bundled_photos
from smoothsal.metrics.sanity import randomizable_layers, randomize_layers
from smoothsal.metrics.similarity import spearman
from smoothsal.models.zoo import load_model
from smoothsal.registry import build_method


def main() -> None:
    net = load_model("lite0").model
    x = torch.cat([p.tensor for p in bundled_photos()])
    with torch.no_grad():
        logits = net(x)
    targets = logits.argmax(1)
    pairs = list(itertools.combinations(range(x.shape[0]), 2))
    bottom = randomizable_layers(net)[0]  # cascading from the top: the last step has every layer randomized
    print(f"original  logit spread across photos {float(logits.std(0).mean()):.3g} "
          f"(within a photo {float(logits.std(1).mean()):.3g})")  # fmt: skip
    for init in ("default", "scaled"):
        _, randomized = next(iter(randomize_layers(net, layers=[bottom], seed=0, init=init)))
        with torch.no_grad():
            out = randomized(x)
        sims = {}
        for name in ("gradcam", "grad"):
            maps = build_method(name, randomized).attribute(x, targets)
            sims[name] = sum(float(spearman(maps[i : i + 1], maps[j : j + 1])) for i, j in pairs) / len(pairs)
        print(f"{init:<9} logit spread across photos {float(out.std(0).mean()):.3g} "
              f"(within a photo {float(out.std(1).mean()):.3g}); map similarity between photos: "
              f"Grad-CAM {sims['gradcam']:.3f}, gradient {sims['grad']:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
