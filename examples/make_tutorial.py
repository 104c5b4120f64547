"""Write examples/tutorial.ipynb (run: python examples/make_tutorial.py).

The notebook is generated so that its cells stay reviewable as plain Python here; commit both.
Outputs are not stored (the test suite executes the notebook; run it yourself to see the pictures).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

CELLS: list[tuple[str, str]] = [
    ("md", """\
# smoothsal in 10 minutes

Sharp, stable and honest saliency maps: this notebook explains a photo of a cat with every
method, smooths the maps (SmoothGrad, Smilkov et al. 2017), shows the rendering choices the
SmoothGrad paper recommends, compares noise levels, measures how *stable* the maps are across two
models trained on disjoint halves of the digits (Ye & Farnia 2025, eq. 12) and runs the model
parameter randomization sanity check (Adebayo et al. 2018).

Everything runs offline on a CPU: the ImageNet-pretrained EfficientNet-Lite0 comes in a PyPI wheel,
the photo from `skimage.data`, the digits from `sklearn`. Set `SMOOTHSAL_QUICK=1` for a fast run
(smaller images, fewer samples, a smaller digit model; the test suite runs it that way) — the
pictures are then coarser and the numbers noisier, and the text's remarks are about the full run."""),
    ("code", """\
import os
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

import smoothsal as ss
from smoothsal.registry import METHODS, build_method, method_factory, method_label

QUICK = os.environ.get("SMOOTHSAL_QUICK", "0") == "1"
SIZE = 96 if QUICK else 224         # image side for the cat
N = 4 if QUICK else 50              # noisy samples per smoothed map (the paper's n = 50)
IG_STEPS = 4 if QUICK else 32       # Integrated Gradients' path points
SMOOTHED = ("grad", "guided", "gradcam") if QUICK else ("grad", "ig", "guided", "gradcam")
LEVELS = [0.0, 0.15, 0.5] if QUICK else [0.0, 0.05, 0.15, 0.3, 0.5]
torch.manual_seed(0)


def show(images, titles, ncols=None, size=2.2):
    \"\"\"One row (or a grid) of [H, W, 3] images in [0, 1].\"\"\"
    ncols = ncols or len(images)
    nrows = -(-len(images) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, title in zip(axes.flat, images, titles):
        ax.imshow(img, cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    plt.show()


print("quick run" if QUICK else "full run", "| image", SIZE, "px | n =", N)"""),
    ("md", """\
## The model and the cat

Zoo models take images in [0, 1] and normalise inside, so "black" is 0 and the value range is
[0, 1]. `target=None` everywhere means *the class the model predicts*."""),
    ("code", """\
model = ss.zoo.efficientnet_lite0()
photo = ss.datasets.load_photo("chelsea", size=SIZE)
x = photo.tensor                                     # [1, 3, SIZE, SIZE]
classes = ss.zoo.imagenet_classes()
with torch.no_grad():
    probs = model(x).softmax(dim=1)[0]
top = probs.topk(3)
for p, c in zip(top.values, top.indices):
    print(f"{classes[c]:>20s}  {p:.2f}")
target = int(top.indices[0])
show([photo.display], [classes[target]], size=3)"""),
    ("md", """\
## Every method, raw

The registry (`smoothsal.registry.METHODS`) states each method's name, label, settings and how
its map is drawn: gradients as the paper's gray |map| (99th-percentile cap), CAMs as a heat map
over the photo. Two *controls* (an edge detector and a random map) are there to fail the honesty
checks below."""),
    ("code", """\
maps, seconds = {}, {}
for name, spec in METHODS.items():
    extra = {"steps": IG_STEPS} if name == "ig" else {}
    if QUICK and name == "occlusion":
        extra = {"window": 24, "stride": 24}     # 16 occluded copies instead of 169
    method = build_method(name, model, image_size=SIZE, **extra)
    start = time.perf_counter()
    maps[name] = method.attribute(x, target)[0]
    seconds[name] = time.perf_counter() - start


def render(name, m):
    style = METHODS[name].display                    # "abs" or "overlay"
    return ss.render.render_map(m, image=photo.display, style=style)


show([render(n, m) for n, m in maps.items()],
     [f"{METHODS[n].label}\\n{seconds[n]:.1f} s" for n in maps], ncols=6)"""),
    ("md", """\
## Smooth them

`Smooth(method)` averages any method over noisy copies of the input,
σ = noise_level × (x_max − x_min); `SmoothGrad(model)` is `Smooth(VanillaGradient(model))`.
`estimate` also returns each pixel's standard error: ‖SE‖/‖map‖ says how much of the map is still
Monte-Carlo noise (with n = 50 on this model, a lot for SmoothGrad; the CLI samples until it is
below 0.35 instead)."""),
    ("code", """\
row, titles = [], []
for name in SMOOTHED:
    smooth = build_method(name, model, ss.SmoothSpec(noise_level=0.15, n_samples=N, seed=0), image_size=SIZE)
    est = smooth.estimate(x, target)
    row += [render(name, maps[name]), render(name, est.attributions[0])]
    titles += [method_label(name), f"{method_label(name, smoothed=True)}\\nrel. SE {est.relative_stderr().item():.2f}"]
show(row, titles, ncols=2 * len(SMOOTHED), size=1.9)"""),
    ("md", """\
## Rendering choices

The SmoothGrad paper's lessons: the absolute value reads best on ImageNet models; the signed map
(red positive, blue negative) shows both directions; multiplying by the input hides black pixels;
capping the top 1 % keeps a few outliers from washing the map out."""),
    ("code", """\
sg = ss.SmoothGrad(model, noise_level=0.15, n_samples=N).attribute(x, target)[0]
styles = [("abs", 99.0), ("abs", 100.0), ("signed", 99.0), ("x_input", 99.0), ("overlay", 99.0)]
show([ss.render.render_map(sg, image=photo.display, style=s, percentile=p) for s, p in styles],
     [f"{s}, cap {p:g}%" for s, p in styles])"""),
    ("md", """\
## Noise levels

Too little noise leaves the gradient's jagged texture, too much blurs the map away from the cat
(the paper's Fig. 3: 10–20 % works well). The same seed gives every column the same draws."""),
    ("code", """\
row = [ss.render.render_map(ss.SmoothGrad(model, noise_level=s, n_samples=N).attribute(x, target)[0])
       for s in LEVELS]
show(row, [f"σ = {s:.0%}" for s in LEVELS])"""),
    ("md", """\
## Stability across two models

Two small CNNs trained on *disjoint halves* of the scikit-learn digits (setting DT of Ye & Farnia
2025; trained once, then cached) explain the same held-out digits. The stability error is the L2
distance between their maps (eq. 12; "normalized": after scaling each map to unit norm), the
fidelity error the distance between a smoothed map and the raw one (eq. 13). Smoothing should
lower the first and raise the second: that is the trade-off `smoothsal tradeoff` maps out."""),
    ("code", """\
from smoothsal.studies.train import TrainConfig, held_out_inputs, models_for_setting

base = TrainConfig(arch="mlp", image_size=16, epochs=3) if QUICK else TrainConfig()
start = time.perf_counter()
pair = models_for_setting("DT", base=base, n_models=2, progress=False)
print(f"{base.arch} on {base.image_size}px digits: test accuracy",
      [round(m.test_accuracy, 3) for m in pair], f"({time.perf_counter() - start:.0f} s)")
digits = held_out_inputs("digits", base.image_size, 16 if QUICK else 64, seed=0)
models = [m.model for m in pair]
xd, yd = digits.images, digits.labels

rows = []
for label, factory in [("gradient", ss.VanillaGradient),
                       ("SmoothGrad σ=0.15", method_factory("grad", ss.SmoothSpec(noise_level=0.15, n_samples=N)))]:
    stab = ss.metrics.stability_error(factory, models, xd, yd)
    rows.append((label, stab.mean_normalized, stab.ssim))
fid = ss.metrics.fidelity_error(ss.VanillaGradient, models[0], xd, yd, noise_level=0.15, n_samples=N)
print(f"{'':20s} {'stability (norm.)':>18s} {'SSIM':>6s}")
for label, err, ssim in rows:
    print(f"{label:20s} {err:18.3f} {ssim:6.3f}")
print(f"fidelity error of SmoothGrad σ=0.15 (norm.): {fid.mean_normalized:.3f}")"""),
    ("code", """\
i = 0  # one digit, both models, raw and smoothed
cells, titles = [], []
for k, net in enumerate(models):
    raw = ss.VanillaGradient(net).attribute(xd[i:i + 1], yd[i:i + 1])[0]
    smooth = ss.SmoothGrad(net, noise_level=0.15, n_samples=N).attribute(xd[i:i + 1], yd[i:i + 1])[0]
    cells += [ss.render.render_map(raw), ss.render.render_map(smooth)]
    titles += [f"model {k + 1}: gradient", f"model {k + 1}: SmoothGrad"]
show([np.repeat(xd[i, 0].numpy()[..., None], 3, -1)] + cells, [f"digit {int(yd[i])}"] + titles)"""),
    ("md", """\
## Sanity check: does the map depend on the model?

Model parameter randomization (Adebayo et al. 2018): re-initialise the layers from the top down
and compare each map with the original. A method that explains the *model* changes (low
similarity); the edge-detector control ignores the model and keeps similarity 1, so it must fail."""),
    ("code", """\
net = models[0]
xs, ys = xd[:16], yd[:16]                            # 16 digits are enough for a clear verdict here
fig, ax = plt.subplots(figsize=(5, 3))
for name, factory in [("gradient", ss.VanillaGradient), ("SmoothGrad", method_factory("grad", ss.SmoothSpec(n_samples=N))),
                      ("Sobel edges (control)", ss.SobelEdges)]:
    result = ss.metrics.model_parameter_randomization(factory, net, xs, ys)
    verdict = ss.metrics.sanity_verdict(result)
    print(f"{name:22s} {'pass' if verdict.passed else 'fail' if verdict.passed is False else 'inconclusive':12s} {verdict.reason[:90]}")
    ax.plot(range(1, len(result.layers) + 1), result.mean_similarity().numpy(), marker="o", label=name)
ax.set_xticks(range(1, len(result.layers) + 1))
ax.set_xlabel("layers randomized (top first)")
ax.set_ylabel("Spearman |map|")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()"""),
    ("md", """\
## Bringing Captum code along

A Captum attribution object works where a smoothsal method does (`pip install "smoothsal[captum]"`):
`Smooth(captum.attr.Saliency(model))` smooths it, the metrics take its outputs. Captum's `Saliency`
returns |gradient| by default; `from_captum(..., abs=False)` gives the signed gradient, and then
exactly SmoothGrad's map for the same seed (here on the first digit model)."""),
    ("code", """\
try:
    import captum.attr
except ImportError:
    print("captum is not installed: skipped")
else:
    sal = ss.interop.from_captum(captum.attr.Saliency(net), abs=False)
    a = ss.Smooth(sal, noise_level=0.15, n_samples=N, batch_size=16).attribute(xd, yd)
    b = ss.SmoothGrad(net, noise_level=0.15, n_samples=N, batch_size=16).attribute(xd, yd)
    print("largest difference from SmoothGrad:", float((a - b).abs().max()))
    # Captum's outputs (tensors or 1-tuples) go straight into the metrics
    print("stability of Captum's |gradient| (norm.):",
          round(ss.metrics.stability_error(captum.attr.Saliency, models, xd, yd).mean_normalized, 3))"""),
    ("md", """\
## Where next

* `smoothsal explain`, `smoothsal tradeoff`, `smoothsal evaluate` run all of this at full size
  and write figures and tables (see the README);
* the API reference: `make docs`, then open `site/index.html`."""),
]


def build() -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [new_markdown_cell(src) if kind == "md" else new_code_cell(src) for kind, src in CELLS]
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:02d}"  # stable ids: regenerating gives the same file
    return nb


def main() -> None:
    path = Path(__file__).with_name("tutorial.ipynb")
    nb = build()
    nbformat.validate(nb)
    nbformat.write(nb, path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
