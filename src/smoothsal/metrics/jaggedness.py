r"""How jagged is a model's gradient? The SmoothGrad paper's Fig. 2, as a function and a score.

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
The figure itself (R, G, B partials against :math:`t`) is drawn by the evaluate study
(``smoothsal.studies.evaluate.plots``); the library only computes.

The noise scale follows the paper on inputs in [0, 1]: :math:`\varepsilon \sim \mathcal{N}(0,
(s\,(x_{\max} - x_{\min}))^2)` with ``eps_std`` :math:`s = 0.01`, i.e. exactly
:math:`\mathcal{N}(0, 0.01^2)` for an image spanning [0, 1], and scaled with the range otherwise.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from smoothsal._core.validation import TargetSpec, check_inputs, check_nonnegative, check_positive_int, resolve_targets
from smoothsal.execution.calls import predict, resolve_model_targets
from smoothsal.execution.memory import MemorySpec
from smoothsal.methods.base import model_of
from smoothsal.methods.gradient import VanillaGradient
from smoothsal.metrics._base import attribution_maps, metric
from smoothsal.noise import make_generator, standard_sampler, value_span


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
        direction: ``[1, C, H, W]`` the noise direction :math:`\\varepsilon`, or ``None`` for a
            line read back from a results file (only the numbers above are stored).
    """

    t: Tensor
    partials: Tensor
    keeps_class: Tensor
    raw_partials: Tensor
    scale: Tensor
    pixel: tuple[int, int]
    target: int
    predicted: int
    direction: Tensor | None = None

    @property
    def roughness(self) -> float:
        """:func:`line_roughness` of this line."""
        return line_roughness(self)


@metric("curve", higher_is_better=False)
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


def _span(inputs: Tensor) -> Tensor:
    """Value range per sample ``[B]``; 1 for a constant sample, so its noise is not zero."""
    span = value_span(inputs)
    return torch.where(span > 0, span, torch.ones_like(span))


def _standard_normal(like: Tensor, gen: torch.Generator) -> Tensor:
    return standard_sampler("gaussian")(tuple(like.shape), gen, like.device, like.dtype)


@metric("sensitivity", higher_is_better=None)
def gradient_along_line(
    method: Any,
    inputs: Tensor,
    targets: TargetSpec = None,
    *,
    pixel: tuple[int, int] | None = None,
    t_steps: int = 101,
    eps_std: float = 0.01,
    seed: int | torch.Generator = 0,
    batch_size: int | None = None,
    max_memory: MemorySpec = None,
) -> JaggedLine:
    """One pixel's partial derivatives along :math:`x + t\\varepsilon` (SmoothGrad paper, Fig. 2).

    Args:
        method: the attribution method whose map is followed, with a ``.model`` (e.g.
            ``VanillaGradient(model)`` for the paper's figure, or
            ``Smooth(VanillaGradient(model), noise_level=0.1)`` to show how smoothing calms the line).
        inputs: one image ``[1, C, H, W]``.
        targets: class to explain; ``None`` = the class predicted at ``t = 0``.
        pixel: ``(h, w)`` to follow; ``None`` = the pixel holding the largest ``|entry|`` of the
            vanilla gradient at ``t = 0`` (taken from the vanilla gradient whatever ``method`` is,
            so lines of different methods follow the same pixel).
        t_steps: number ``T >= 2`` of points, evenly spaced in [0, 1].
        eps_std: :math:`s`, the noise std as a fraction of ``x.max() - x.min()``.
        seed: int or ``torch.Generator`` for :math:`\\varepsilon`.
        batch_size: most model rows per call (a row: one forward(+backward) pass of one input-shaped
            tensor); ``None``: learned from the calls' timings under the memory budget. Never changes the
            result. Here a point of the line costs the method's rows per input.
        max_memory: the memory budget when ``batch_size`` is ``None`` (bytes, ``"4GB"``, ``"25%"``;
            ``None``: the default of :func:`smoothsal.execution.memory.memory_budget`).
    Returns:
        :class:`JaggedLine`. Warns when some point changes the predicted class.
    """
    if not callable(getattr(method, "attribute", None)):
        raise TypeError(f"`method` must have an .attribute(inputs, target) method, got {type(method).__name__}")
    model = model_of(method)
    if model is None:
        raise TypeError(f"`method` must expose the model it explains as `.model`; {type(method).__name__} does not")
    check_inputs(inputs, name="inputs", ndim=4)
    if inputs.shape[0] != 1:
        raise ValueError(f"`inputs` must hold one image, shape [1, C, H, W], got shape {tuple(inputs.shape)}")
    t_steps = check_positive_int(t_steps, "t_steps", minimum=2)
    if batch_size is not None:
        check_positive_int(batch_size, "batch_size")
    eps_std = check_nonnegative(eps_std, "eps_std")
    x = inputs.detach()
    _, _, height, width = x.shape

    logits0 = predict(model, x, batch_size=batch_size, max_memory=max_memory)
    predicted = int(logits0.argmax(dim=1))
    target_t = resolve_targets(targets, logits0)  # [1]
    if pixel is None:
        grad0 = VanillaGradient(model).attribute(x, target_t)
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
    direction = _standard_normal(x, gen) * (eps_std * _span(x)).view(1, 1, 1, 1)  # [1, C, H, W]
    ts = torch.linspace(0.0, 1.0, t_steps, dtype=x.dtype, device=x.device)  # [T]

    points = x + ts.view(-1, 1, 1, 1) * direction  # [T, C, H, W]
    maps = attribution_maps(method, points, target_t.expand(t_steps), batch_size=batch_size, max_memory=max_memory)
    logits = predict(model, points, batch_size=batch_size, max_memory=max_memory)
    raw_partials = maps[:, :, h, w].detach()  # [T, C']
    scale_t = maps.flatten(1).abs().amax(dim=1).detach()  # [T]
    keeps_class = logits.argmax(dim=1) == predicted  # [T]
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


@metric("sensitivity", higher_is_better=False)
def gradient_roughness(
    method: Any,
    inputs: Tensor,
    targets: TargetSpec = None,
    *,
    radius: float = 0.01,
    n_pairs: int = 8,
    seed: int | torch.Generator = 0,
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
        targets_t = resolve_model_targets(model, inputs, targets)
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
    sigma = (radius * _span(inputs)).view(-1, *([1] * (inputs.dim() - 1)))
    total = torch.zeros_like(base_norm)
    for _ in range(n_pairs):
        near = inputs + _standard_normal(inputs[:1], gen) * sigma  # one draw shared by the batch, scaled per sample
        diff = (method.attribute(near, targets_t).detach() - base).flatten(1).norm(dim=1)  # [B]
        rel = torch.where(
            base_norm > 0,
            diff / torch.where(base_norm > 0, base_norm, torch.ones_like(base_norm)),
            torch.where(diff > 0, torch.full_like(diff, float("inf")), torch.zeros_like(diff)),
        )
        total = total + rel
    return total / n_pairs
