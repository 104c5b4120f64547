r"""How jagged is a model's gradient? The SmoothGrad paper's Fig. 2, as a function, a plot and a score.

Smilkov et al. 2017 ("SmoothGrad: removing noise by adding noise", arXiv:1706.03825, §3 and
Fig. 2) explain the noise of gradient maps by sharp small-scale fluctuations of the partial
derivatives: along the line :math:`x + t\varepsilon`, :math:`t \in [0, 1]`,
:math:`\varepsilon \sim \mathcal{N}(0, 0.01^2)`, a pixel's partial derivatives swing wildly while
the predicted class stays the same. Here:

* :func:`gradient_along_line` -- that figure's data: for one pixel :math:`p` and each channel
  :math:`c`,

  .. math:: \pi_c(t) = \frac{M(x + t\varepsilon)_{c,p}}{\max_i |M(x + t\varepsilon)_i|}

  (the partial derivative as a fraction of the largest gradient entry *in absolute value* at the
  same :math:`t`), plus a check that every point keeps the class predicted at :math:`t = 0`.
  :math:`M` is the vanilla gradient by default, or any method (e.g. a smoothed one) to show how
  SmoothGrad calms the line. :func:`line_roughness` is the line's mean absolute step
  :math:`\frac{1}{(T-1)C}\sum_{t,c} |\pi_c(t_{k+1}) - \pi_c(t_k)|` (a total variation per step).
* :func:`gradient_roughness` -- a scalar per sample for the whole gradient field: the mean
  relative change of the map between :math:`x` and nearby points,

  .. math:: R(x) = \frac{1}{K}\sum_{k=1}^{K} \frac{\|M(x + \delta_k) - M(x)\|_2}{\|M(x)\|_2},
            \qquad \delta_k \sim \mathcal{N}(0, (r\,(x_{\max} - x_{\min}))^2 I).

  :math:`R = 0` for a linear model; it drops when the map is smoothed.
* :func:`plot_jaggedness` -- the R, G, B partials against :math:`t`, one panel per line.

The noise scale follows the paper on inputs in [0, 1]: :math:`\varepsilon \sim \mathcal{N}(0,
(s\,(x_{\max} - x_{\min}))^2)` with ``eps_std`` :math:`s = 0.01`, i.e. exactly
:math:`\mathcal{N}(0, 0.01^2)` for an image spanning [0, 1], and scaled with the range otherwise.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from smoothsal._validation import (
    make_generator,
    TargetSpec,
    check_inputs,
    check_logits,
    check_nonnegative,
    check_positive_int,
    resolve_targets,
)
from smoothsal.methods.base import model_of, preserve_model
from smoothsal.methods.gradient import VanillaGradient


@dataclass
class JaggedLine:
    """Partial derivatives of one pixel along :math:`x + t\\varepsilon` (see the module docstring).

    Attributes:
        t: ``[T]`` positions in [0, 1].
        partials: ``[T, C]`` the pixel's map values divided by the largest ``|entry|`` of the map at
            the same ``t`` (so in [-1, 1]; 0 where the whole map is 0).
        keeps_class: ``[T]`` bool, whether the prediction at each point equals ``predicted``.
        raw_partials: ``[T, C]`` the unnormalised map values at the pixel.
        scale: ``[T]`` the largest ``|entry|`` of the map at each ``t`` (the normaliser).
        pixel: ``(h, w)`` of the pixel followed.
        target: the class whose score is explained.
        predicted: the class predicted at ``t = 0``.
        direction: ``[1, C, H, W]`` the noise direction :math:`\\varepsilon`.
    """

    t: Tensor
    partials: Tensor
    keeps_class: Tensor
    raw_partials: Tensor
    scale: Tensor
    pixel: tuple[int, int]
    target: int
    predicted: int
    direction: Tensor

    @property
    def roughness(self) -> float:
        """:func:`line_roughness` of this line."""
        return line_roughness(self)


def line_roughness(line: JaggedLine) -> float:
    """Mean absolute change of the normalised partials between consecutive ``t`` (a TV per step).

    .. math:: \\mathrm{TV} = \\frac{1}{(T-1)\\,C} \\sum_{k,c} |\\pi_c(t_{k+1}) - \\pi_c(t_k)|

    Exactly 0 for a linear model (constant gradient); larger means a more jagged line.
    """
    if not isinstance(line, JaggedLine):
        raise TypeError(f"`line` must be a JaggedLine, got {type(line).__name__}")
    if line.partials.shape[0] < 2:
        return 0.0
    return float(line.partials.diff(dim=0).abs().mean())


def _value_range(inputs: Tensor) -> Tensor:
    """``x_max - x_min`` per sample ``[B]``; 1 for a constant sample (so the noise is not zero)."""
    flat = inputs.flatten(1)  # [B, D]
    span = flat.max(dim=1).values - flat.min(dim=1).values
    return torch.where(span > 0, span, torch.ones_like(span))


def _randn_like(inputs: Tensor, gen: torch.Generator) -> Tensor:
    return torch.randn(inputs.shape, generator=gen, dtype=inputs.dtype, device=gen.device).to(inputs.device)


def _forward(model: nn.Module, inputs: Tensor) -> Tensor:
    with preserve_model(model, warn_training=False), torch.no_grad():
        return check_logits(model(inputs), inputs.shape[0])


def _grad_and_logits(model: nn.Module, inputs: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Vanilla gradient and logits of a batch: one forward and one backward."""
    with preserve_model(model):
        grad, logits, _ = VanillaGradient(model)._score_and_grad(inputs, target)
    return grad, logits


def gradient_along_line(
    model: nn.Module,
    x: Tensor,
    pixel: tuple[int, int] | None = None,
    t_steps: int = 101,
    eps_std: float = 0.01,
    seed: int | torch.Generator = 0,
    target: TargetSpec = None,
    method: Any = None,
    batch_size: int = 16,
) -> JaggedLine:
    """One pixel's partial derivatives along :math:`x + t\\varepsilon` (SmoothGrad paper, Fig. 2).

    Args:
        model: classifier returning ``[B, classes]`` logits.
        x: one image ``[1, C, H, W]``.
        pixel: ``(h, w)`` to follow; ``None`` = the pixel holding the largest ``|entry|`` of the
            vanilla gradient at ``t = 0`` (taken from the vanilla gradient even when ``method`` is
            given, so lines of different methods follow the same pixel).
        t_steps: number ``T >= 2`` of points, evenly spaced in [0, 1].
        eps_std: :math:`s`, the noise std as a fraction of ``x.max() - x.min()``.
        seed: int or ``torch.Generator`` for :math:`\\varepsilon`.
        target: class to explain; ``None`` = the class predicted at ``t = 0``.
        method: an attribution method (``.attribute(inputs, target)``) to use instead of the vanilla
            gradient, e.g. ``Smooth(VanillaGradient(model), noise_level=0.1)``; it must explain ``model``.
        batch_size: points evaluated per call (one forward + backward per chunk for the gradient).
    Returns:
        :class:`JaggedLine`. Warns when some point changes the predicted class.
    """
    check_inputs(x, name="x", ndim=4)
    if x.shape[0] != 1:
        raise ValueError(f"`x` must hold one image, shape [1, C, H, W], got shape {tuple(x.shape)}")
    t_steps = check_positive_int(t_steps, "t_steps", minimum=2)
    batch_size = check_positive_int(batch_size, "batch_size")
    eps_std = check_nonnegative(eps_std, "eps_std")
    if method is not None and not callable(getattr(method, "attribute", None)):
        raise TypeError(f"`method` must have an .attribute(inputs, target) method, got {type(method).__name__}")
    x = x.detach()
    _, _, height, width = x.shape

    logits0 = _forward(model, x)
    predicted = int(logits0.argmax(dim=1))
    target_t = resolve_targets(target, logits0)  # [1]
    if pixel is None:
        grad0, _ = _grad_and_logits(model, x, target_t)
        flat = grad0[0].abs().amax(dim=0).flatten()  # [H*W]: largest |partial| over channels
        idx = int(flat.argmax())
        pixel = (idx // width, idx % width)
    if (
        not isinstance(pixel, (tuple, list))
        or len(pixel) != 2
        or not all(isinstance(p, int) and not isinstance(p, bool) for p in pixel)
        or not (0 <= pixel[0] < height and 0 <= pixel[1] < width)
    ):
        raise ValueError(f"`pixel` must be (h, w) with 0 <= h < {height}, 0 <= w < {width}, got {pixel!r}")
    h, w = int(pixel[0]), int(pixel[1])

    gen = make_generator(seed)
    direction = _randn_like(x, gen) * (eps_std * _value_range(x)).view(1, 1, 1, 1)  # [1, C, H, W]
    ts = torch.linspace(0.0, 1.0, t_steps, dtype=x.dtype, device=x.device)  # [T]

    raw, scale, keeps = [], [], []
    for start in range(0, t_steps, batch_size):
        tc = ts[start : start + batch_size]
        points = x + tc.view(-1, 1, 1, 1) * direction  # [t, C, H, W]
        targets = target_t.expand(points.shape[0])
        if method is None:
            maps, logits = _grad_and_logits(model, points, targets)
        else:
            maps = method.attribute(points, targets)
            logits = _forward(model, points)
        raw.append(maps[:, :, h, w])  # [t, C']
        scale.append(maps.flatten(1).abs().amax(dim=1))  # [t]
        keeps.append(logits.argmax(dim=1) == predicted)
    raw_partials = torch.cat(raw).detach()  # [T, C']
    scale_t = torch.cat(scale).detach()  # [T]
    keeps_class = torch.cat(keeps)  # [T]
    safe = torch.where(scale_t > 0, scale_t, torch.ones_like(scale_t))
    partials = raw_partials / safe[:, None]
    if not bool(keeps_class.all()):
        n_bad = int((~keeps_class).sum())
        warnings.warn(
            f"{n_bad} of {t_steps} points on the line x + t*eps change the predicted class "
            f"(class {predicted} at t=0); see `keeps_class`. Lower `eps_std` to stay in one class.",
            UserWarning,
            stacklevel=2,
        )
    return JaggedLine(
        t=ts,
        partials=partials,
        keeps_class=keeps_class,
        raw_partials=raw_partials,
        scale=scale_t,
        pixel=(h, w),
        target=int(target_t),
        predicted=predicted,
        direction=direction,
    )


def gradient_roughness(
    method: Any,
    inputs: Tensor,
    targets: TargetSpec = None,
    radius: float = 0.01,
    n_pairs: int = 8,
    seed: int | torch.Generator = 0,
    *,
    reference: Tensor | None = None,
) -> Tensor:
    """Mean relative change of the map between each input and ``n_pairs`` nearby points.

    .. math:: R(x) = \\frac{1}{K}\\sum_{k=1}^{K} \\frac{\\|M(x + \\delta_k) - M(x)\\|_2}{\\|M(x)\\|_2},
              \\qquad \\delta_k \\sim \\mathcal{N}(0, (r\\,(x_{\\max} - x_{\\min}))^2 I)

    The range is taken per sample. The target class is fixed at the one chosen for :math:`x`.
    Offset :math:`k` is one standard-normal draw shared by every sample of the batch (scaled by
    each sample's range), so a sample's score does not depend on the batch it is in.
    The map at each perturbed batch ``x + delta_k`` comes from a separate call with the same batch
    layout, so a seeded stochastic method (``Smooth``) uses the same noise draws for :math:`x` and
    its neighbours (common random numbers): :math:`R` then measures the smoothed map's own
    roughness, not its Monte-Carlo error.

    Args:
        method: attribution method with ``.attribute(inputs, target)`` (and ``.model`` if
            ``targets`` is ``None``).
        inputs: ``[B, ...]``.
        targets: ``None`` (predicted class at each input), an int or ``B`` ints.
        radius: :math:`r`, the neighbour distance as a fraction of the value range (``> 0``).
        n_pairs: :math:`K`, neighbours per input.
        seed: int or ``torch.Generator`` for the offsets :math:`\\delta_k`.
        reference: the map :math:`M(x)` if already computed (with the same targets), to save a call.
    Returns:
        ``[B]`` roughness; 0 where the map does not change, ``inf`` where :math:`M(x) = 0` but a
        neighbour's map is not.
    """
    if not callable(getattr(method, "attribute", None)):
        raise TypeError(f"`method` must have an .attribute(inputs, target) method, got {type(method).__name__}")
    check_inputs(inputs)
    radius = check_nonnegative(radius, "radius")
    if radius == 0:
        raise ValueError(f"`radius` must be > 0, got {radius}")
    n_pairs = check_positive_int(n_pairs, "n_pairs")
    inputs = inputs.detach()
    model = model_of(method)
    if model is not None:
        targets_t = resolve_targets(targets, _forward(model, inputs))
    elif targets is None:
        raise TypeError("`method` exposes no `.model`; pass `targets` explicitly")
    else:
        targets_t = targets
    if reference is None:
        base = method.attribute(inputs, targets_t).detach()
    else:
        if not isinstance(reference, Tensor) or reference.shape[0] != inputs.shape[0]:
            shape = tuple(reference.shape) if isinstance(reference, Tensor) else type(reference).__name__
            raise ValueError(f"`reference` must be the map of `inputs`, shape [B, ...] with B={inputs.shape[0]}, got {shape}")
        base = reference.detach()
    base_norm = base.flatten(1).norm(dim=1)  # [B]
    gen = make_generator(seed)
    sigma = (radius * _value_range(inputs)).view(-1, *([1] * (inputs.dim() - 1)))
    total = torch.zeros_like(base_norm)
    for _ in range(n_pairs):
        near = inputs + _randn_like(inputs[:1], gen) * sigma  # one draw shared by the batch, scaled per sample
        diff = (method.attribute(near, targets_t).detach() - base).flatten(1).norm(dim=1)  # [B]
        rel = torch.where(
            base_norm > 0,
            diff / torch.where(base_norm > 0, base_norm, torch.ones_like(base_norm)),
            torch.where(diff > 0, torch.full_like(diff, float("inf")), torch.zeros_like(diff)),
        )
        total = total + rel
    return total / n_pairs


_CHANNEL_COLOURS = ("tab:red", "tab:green", "tab:blue")


def plot_jaggedness(lines: Mapping[str, JaggedLine], path: str | Path) -> Path:
    """Plot each line's partials against ``t`` (R, G, B for 3 channels), one panel per label.

    Points where the class changes are shaded grey. Saved with the Agg backend.

    Args:
        lines: ``{label: JaggedLine}``, e.g. ``{"gradient": ..., "SmoothGrad 10%": ...}``.
        path: PNG file to write (folders are created).
    Returns:
        the path written.
    """
    if not isinstance(lines, Mapping) or not lines:
        raise ValueError("`lines` must be a non-empty dict {label: JaggedLine}")
    for label, line in lines.items():
        if not isinstance(line, JaggedLine):
            raise TypeError(f"`lines[{label!r}]` must be a JaggedLine, got {type(line).__name__}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(lines)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.4), squeeze=False, sharey=True)
    for ax, (label, line) in zip(axes[0], lines.items()):
        t = line.t.cpu().numpy()
        parts = line.partials.cpu().numpy()
        for c in range(parts.shape[1]):
            colour = _CHANNEL_COLOURS[c] if parts.shape[1] == 3 else None
            name = "RGB"[c] if parts.shape[1] == 3 else f"channel {c}"
            ax.plot(t, parts[:, c], color=colour, lw=1.2, label=name)
        bad = ~line.keeps_class.cpu().numpy()
        if bad.any():
            ax.fill_between(t, -1, 1, where=bad, color="0.85", step="mid", label="class changed")
        ax.axhline(0.0, color="0.5", lw=0.6)
        ax.set_ylim(-1.05, 1.05)
        ax.set_title(f"{label}\npixel {line.pixel}, TV/step {line.roughness:.3g}", fontsize=9)
        ax.set_xlabel("t  (x + t·ε)")
    axes[0][0].set_ylabel("∂S/∂x_pixel ÷ max |∂S/∂x|")
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
