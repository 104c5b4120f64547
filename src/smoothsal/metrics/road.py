r"""ROAD: remove and debias (Rong, Leemann, Borisov, Kasneci & Kasneci, ICML 2022, "A Consistent and
Efficient Evaluation Strategy for Attribution Methods", arXiv:2202.00449).

Deletion-style metrics replace the removed pixels by a constant or a blur, and a model then sees
*where* pixels were removed: the mask's shape leaks the class, so MoRF and LeRF orders rank
methods inconsistently (the paper's §4). ROAD fills every removed pixel by **noisy linear
imputation** (§5), which keeps the image close to the data and hides the mask:

* each removed pixel :math:`p` takes the weighted mean of its 8 neighbours :math:`N(p)` (inside
  the image), known or themselves removed, with the authors' weights :math:`w = 1/6` for the 4
  direct and :math:`w = 1/12` for the 4 diagonal neighbours (:data:`NEIGHBOUR_WEIGHTS`). For all
  removed pixels jointly this is one sparse linear system per image and channel,

  .. math:: \Big(\sum_{q \in N(p)} w_{q-p}\Big)\, v_p - \sum_{q \in N(p),\ q\ \text{removed}} w_{q-p}\, v_q
            = \sum_{q \in N(p),\ q\ \text{known}} w_{q-p}\, x_q \qquad \text{for every removed } p

  (at the border the weights of the neighbours outside the image drop out of the sum on the
  left, so the pixel takes the weighted mean of the neighbours it has), solved exactly with a
  sparse LU factorisation (SciPy's SuperLU, as the authors' ``NoisyLinearImputer``);
* Gaussian noise :math:`\mathcal N(0, \sigma^2)` is added to every imputed value, :math:`\sigma =`
  :data:`ROAD_NOISE` ``= 0.01`` in the inputs' units (the authors' default ``noise=0.01``, applied
  before their normalisation transform, i.e. to images in [0, 1]); known pixels keep their values.

The protocol. Pixels are ranked by the map (``rank_by="abs"``: :math:`\sum_c |a_c|`, as the card's
deletion/insertion; the authors' code ranks the signed channel sum, ``rank_by="signed"``); ties
are broken uniformly at random (one seeded permutation of the pixels, shared by the images; the
authors add :math:`10^{-4}` Gaussian jitter to the min–max normalised map). At each level
:math:`p \in \{10, 20, \dots, 90\}\,\%` (:data:`ROAD_LEVELS`) the :math:`\operatorname{round}(pU)`
most relevant pixels (MoRF) or least relevant pixels (LeRF) of the :math:`U` are removed and
imputed, and the model's score of the target class is read: ``score="prob"`` (default), the
softmax probability, as the paper's curves and the authors' ``road_eval``; ``"logit"`` its logit.

Scores per image. The paper reports the MoRF and LeRF curves and defines no single number;
:meth:`RoadCurves.morf_auc` and :meth:`RoadCurves.lerf_auc` are each curve's mean over its levels
(the area under it per unit of removed share, the levels weighted equally, as pytorch-grad-cam's
``ROADMostRelevantFirstAverage``); a faithful map has a low MoRF area (removing what it marks
destroys the prediction) and a high LeRF area. The combined score is

.. math:: \text{ROAD} = \overline{\text{LeRF}} - \overline{\text{MoRF}}

(higher is better; pytorch-grad-cam's ``ROADCombined`` is the same difference of score *changes*
halved, so it equals half of this up to the noise draws; ``benchmarks/road_crosscheck.py``).

Randomness. One seeded generator draws, in this order, the tie-breaking permutation and one
standard-normal noise field ``[C, H, W]`` per (order, level), MoRF's levels first; the fields are
shared by the images, so an image's scores depend on the image, its map and ``seed`` only, never
on the batch.

The imputation needs SciPy (``pip install "smoothsal[road]"``): a sparse LU factorisation solves
a system exactly in one pass, while an iterative solver in torch (conjugate gradients) needs
hundreds of iterations where a smooth map (a CAM) removes large connected regions, whose systems
are badly conditioned, and was several times slower on the CPU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
import torch
from torch import Tensor, nn

from smoothsal._core.extras import require
from smoothsal._core.validation import TargetSpec, check_choice, check_inputs, check_nonnegative
from smoothsal.execution.memory import MemorySpec
from smoothsal.metrics._base import metric
from smoothsal.metrics.faithfulness import _check_model, _check_score, _forward_scores, _resolve, _units
from smoothsal.noise import make_generator

__all__ = [
    "NEIGHBOUR_WEIGHTS",
    "ROAD_LEVELS",
    "ROAD_NOISE",
    "RoadCurves",
    "noisy_linear_imputation",
    "road_combined",
    "road_curves",
    "road_lerf",
    "road_morf",
]

Seed = Union[int, torch.Generator]

#: the authors' neighbour weights, offset (row, column) -> weight: 1/6 direct, 1/12 diagonal (sum 1).
NEIGHBOUR_WEIGHTS: dict[tuple[int, int], float] = {
    (-1, 0): 1 / 6, (1, 0): 1 / 6, (0, -1): 1 / 6, (0, 1): 1 / 6,
    (-1, -1): 1 / 12, (-1, 1): 1 / 12, (1, -1): 1 / 12, (1, 1): 1 / 12,
}  # fmt: skip
#: the authors' noise σ on the imputed values, in the inputs' units (images in [0, 1]).
ROAD_NOISE = 0.01
#: removed shares, as in the paper's curves and pytorch-grad-cam's averages.
ROAD_LEVELS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
ORDERS: tuple[str, ...] = ("morf", "lerf")
#: most elements of perturbed images held at once (64 MiB of float32)
_MAX_ELEMENTS = 2**24


@dataclass
class RoadCurves:
    """MoRF and LeRF curves of a batch under noisy linear imputation.

    Attributes:
        levels: ``[L]`` share of pixels removed at each level.
        morf: ``[B, L]`` target score with the most relevant pixels removed (``None`` if not computed).
        lerf: ``[B, L]`` target score with the least relevant pixels removed (``None`` if not computed).
        clean: ``[B]`` target score of the unperturbed inputs.
        score: ``"prob"`` or ``"logit"``.
    """

    levels: Tensor
    morf: Tensor | None
    lerf: Tensor | None
    clean: Tensor
    score: str

    def morf_auc(self) -> Tensor:
        """``[B]`` mean MoRF score over the levels; lower is more faithful."""
        if self.morf is None:
            raise ValueError("these curves have no MoRF order (road_curves(..., orders=...) left it out)")
        return self.morf.mean(dim=1)

    def lerf_auc(self) -> Tensor:
        """``[B]`` mean LeRF score over the levels; higher is more faithful."""
        if self.lerf is None:
            raise ValueError("these curves have no LeRF order (road_curves(..., orders=...) left it out)")
        return self.lerf.mean(dim=1)

    def combined(self) -> Tensor:
        """``[B]`` ``lerf_auc() - morf_auc()``; higher is more faithful."""
        return self.lerf_auc() - self.morf_auc()


# ---- noisy linear imputation ------------------------------------------------------------------------
def _linear_system(removed: np.ndarray, image: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray]:
    """The imputation system of one image: ``(A [n, n] sparse CSC, b [n, C], removed pixel indices [n])``.

    ``removed`` ``[H, W]`` bool, ``image`` ``[C, H, W]`` float64; row ``k`` is the equation of the
    ``k``-th removed pixel in row-major order (module docstring).
    """
    sparse = require("scipy.sparse", "ROAD's noisy linear imputation")
    h, w = removed.shape
    flat = removed.ravel()
    pixels = np.flatnonzero(flat)  # [n] removed pixels, row-major
    n = pixels.size
    variable = np.full(h * w, -1, dtype=np.int64)
    variable[pixels] = np.arange(n)
    r0, c0 = pixels // w, pixels % w
    values = image.reshape(image.shape[0], -1)  # [C, H*W]
    diagonal = np.zeros(n)
    b = np.zeros((n, image.shape[0]))
    rows, cols, data = [], [], []
    for (dr, dc), weight in NEIGHBOUR_WEIGHTS.items():
        r, c = r0 + dr, c0 + dc
        inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        diagonal[inside] += weight
        neighbour = np.where(inside, r * w + c, 0)
        unknown = inside & flat[neighbour]
        known = inside & ~flat[neighbour]
        rows.append(np.flatnonzero(unknown))
        cols.append(variable[neighbour[unknown]])
        data.append(np.full(int(unknown.sum()), -weight))
        b[known] += weight * values[:, neighbour[known]].T
    rows.append(np.arange(n))
    cols.append(np.arange(n))
    data.append(diagonal)
    a = sparse.csc_matrix((np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    return a, b, pixels


def _impute_one(image: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """Noise-free linear imputation of one image ``[C, H, W]`` (float64) at ``removed`` ``[H, W]``."""
    out = image.copy()
    if not removed.any():
        return out
    if removed.all():
        raise ValueError("noisy linear imputation needs at least one known pixel; every pixel is removed")
    linalg = require("scipy.sparse.linalg", "ROAD's noisy linear imputation")
    a, b, pixels = _linear_system(removed, image)
    solution = linalg.splu(a).solve(b)  # [n, C]
    out.reshape(image.shape[0], -1)[:, pixels] = solution.T
    return out


def _check_removed(images: Tensor, removed: Tensor) -> Tensor:
    b, _, h, w = images.shape
    if not isinstance(removed, Tensor) or removed.dtype != torch.bool:
        raise TypeError(f"`removed` must be a bool tensor [B, H, W] or [B, 1, H, W], got {type(removed).__name__}"
                        + (f" of dtype {removed.dtype}" if isinstance(removed, Tensor) else ""))  # fmt: skip
    if tuple(removed.shape) not in ((b, h, w), (b, 1, h, w)):
        raise ValueError(f"`removed` must have shape [B, H, W] = {[b, h, w]} or [B, 1, H, W], got {list(removed.shape)}")
    return removed.reshape(b, h, w)


def _impute(images: Tensor, removed: Tensor, noise: float, fields: Tensor | None) -> Tensor:
    """Impute ``images`` ``[N, C, H, W]`` at ``removed`` ``[N, H, W]``, adding ``noise * fields``
    (``[N, C, H, W]`` standard normal, or ``None`` for no noise) to the imputed values."""
    x = images.detach().to("cpu", torch.float64).numpy()
    m = removed.detach().cpu().numpy()
    out = torch.from_numpy(np.stack([_impute_one(x[k], m[k]) for k in range(x.shape[0])]))
    if noise > 0 and fields is not None:
        out = out + noise * fields.to(out.dtype) * removed[:, None].cpu().to(out.dtype)
    return out.to(device=images.device, dtype=images.dtype)


def noisy_linear_imputation(
    images: Tensor, removed: Tensor, *, noise: float = ROAD_NOISE, seed: Seed = 0
) -> Tensor:
    r"""ROAD's noisy linear imputation (Rong et al. 2022, §5; see the module docstring).

    Args:
        images: ``[B, C, H, W]`` float images.
        removed: bool ``[B, H, W]`` or ``[B, 1, H, W]``, ``True`` where the pixel (all channels) is
            removed; at least one pixel of each image must be kept.
        noise: :math:`\sigma` of the Gaussian noise added to the imputed values (absolute, in the
            images' units); ``0`` for the plain linear imputation.
        seed: int or ``torch.Generator``; one standard-normal field ``[C, H, W]`` is drawn and
            shared by the images (an image's result does not depend on the batch).
    Returns:
        ``[B, C, H, W]``: the known pixels unchanged, the removed ones imputed.

    Example:
        >>> x = torch.zeros(1, 1, 3, 3); x[0, 0, 1, 1] = 1.0
        >>> gone = torch.zeros(1, 3, 3, dtype=torch.bool); gone[0, 1, 1] = True
        >>> float(noisy_linear_imputation(x, gone, noise=0.0)[0, 0, 1, 1])   # the mean of its 0 neighbours
        0.0
    """
    check_inputs(images, name="images", ndim=4)
    mask = _check_removed(images, removed)
    check_nonnegative(noise, "noise")
    fields = None
    if noise > 0:
        gen = make_generator(seed)
        fields = torch.randn(images.shape[1:], generator=gen, device=gen.device, dtype=torch.float64)
        fields = fields.cpu().expand(images.shape)
    return _impute(images, mask, noise, fields)


# ---- the protocol ---------------------------------------------------------------------------------
def _check_levels(levels: Sequence[float], n_pixels: int) -> tuple[list[float], list[int]]:
    try:
        values = [float(p) for p in levels]
    except (TypeError, ValueError) as err:
        raise TypeError(f"`levels` must be a sequence of shares in (0, 1), got {levels!r}") from err
    if not values or any(not (0.0 < p < 1.0) or math.isnan(p) for p in values):
        raise ValueError(f"`levels` must be shares strictly between 0 and 1, got {values}")
    if sorted(set(values)) != values:
        raise ValueError(f"`levels` must be increasing without repeats, got {values}")
    counts = [round(p * n_pixels) for p in values]
    if counts[0] < 1 or counts[-1] > n_pixels - 1:
        raise ValueError(f"`levels` {values} remove {counts[0]}..{counts[-1]} of {n_pixels} pixels: each level must "
                         "remove at least one pixel and keep at least one")  # fmt: skip
    return values, counts


@metric("model", higher_is_better=None)
def road_curves(
    model: nn.Module,
    inputs: Tensor,
    attributions: Tensor,
    targets: TargetSpec = None,
    *,
    levels: Sequence[float] = ROAD_LEVELS,
    orders: Sequence[str] = ORDERS,
    noise: float = ROAD_NOISE,
    score: str = "prob",
    rank_by: str = "abs",
    seed: Seed = 0,
    batch_size: int | None = None,
    max_memory: MemorySpec = None,
) -> RoadCurves:
    r"""ROAD's MoRF and LeRF curves under noisy linear imputation (Rong et al. 2022; module docstring).

    Args:
        model: classifier ``[B, C, H, W] -> [B, classes]``; run in eval mode, restored afterwards.
        inputs: ``[B, C, H, W]`` images (in [0, 1] for the default ``noise``).
        attributions: ``[B, C, H, W]``, ``[B, 1, H, W]`` or ``[B, H, W]``.
        targets: ``None`` (the class predicted for the clean input), an int, or ``B`` ints.
        levels: shares of pixels removed, increasing, in (0, 1) (default 10 %, ..., 90 %).
        orders: ``("morf", "lerf")`` or one of them.
        noise: :math:`\sigma` of the imputation noise (absolute, the inputs' units).
        score: ``"prob"`` (softmax probability of the target) or ``"logit"``.
        rank_by: ``"abs"`` (:math:`\sum_c |a_c|`) or ``"signed"`` (:math:`\sum_c a_c`, the authors' code).
        seed: int or ``torch.Generator`` for the tie-breaking and the noise.
        batch_size: most model rows per call (a row: one forward pass of one perturbed image);
            ``None``: learned from the calls' timings under the memory budget. Never changes the result.
        max_memory: the memory budget when ``batch_size`` is ``None`` (bytes, ``"4GB"``, ``"25%"``;
            ``None``: the default of :func:`smoothsal.execution.memory.memory_budget`).
    Returns:
        :class:`RoadCurves`: ``morf``/``lerf`` ``[B, L]``, ``clean`` ``[B]``. Costs one sparse solve
        per image, order and level (on the CPU), and their forward passes, batched.
    """
    _check_model(model)
    check_inputs(inputs, ndim=4)
    _check_score(score)
    check_choice(rank_by, "rank_by", ("abs", "signed"))
    check_nonnegative(noise, "noise")
    orders = [orders] if isinstance(orders, str) else list(orders)
    if not orders or any(o not in ORDERS for o in orders) or len(set(orders)) != len(orders):
        raise ValueError(f"`orders` must name 'morf', 'lerf' or both, got {orders}")
    x = inputs.detach()
    b, c, h, w = x.shape
    relevance = _units(x, attributions, 1, rank_by).relevance  # [B, H*W]
    values, counts = _check_levels(levels, h * w)
    gen = make_generator(seed)
    priority = torch.randperm(h * w, generator=gen, device=gen.device).cpu()  # tie-breaking
    fields = torch.randn((len(ORDERS), len(values), c, h, w), generator=gen, device=gen.device, dtype=torch.float64)
    fields = fields.cpu()  # [2, L, C, H, W]: MoRF's levels, then LeRF's
    t, clean = _resolve(model, x, targets, score, batch_size, max_memory)
    rel = relevance.cpu()[:, priority]  # pixels in priority order: a stable sort then breaks ties by priority
    by_order = {}
    for order in orders:
        key = -rel if order == "morf" else rel
        by_order[order] = priority[key.argsort(dim=1, stable=True)]  # [B, H*W] pixels, first removed first
    per_image = len(orders) * len(values) * c * h * w
    chunk = max(1, _MAX_ELEMENTS // per_image)
    scores = {o: [] for o in orders}
    for start in range(0, b, chunk):
        stop = min(b, start + chunk)
        rows, masks, noise_rows = [], [], []
        for order in orders:
            o_idx = ORDERS.index(order)
            for l_idx, count in enumerate(counts):
                m = torch.zeros(stop - start, h * w, dtype=torch.bool)
                m.scatter_(1, by_order[order][start:stop, :count], True)
                rows.append(x[start:stop])
                masks.append(m.view(-1, h, w))
                noise_rows.append(fields[o_idx, l_idx].expand(stop - start, c, h, w))
        # rows: order-major, then level, then image: [orders * L * N, C, H, W]
        imputed = _impute(torch.cat(rows), torch.cat(masks), noise, torch.cat(noise_rows))
        n = stop - start
        t_rows = t[start:stop].repeat(len(orders) * len(values))
        s = _forward_scores(model, imputed, t_rows, score, batch_size, max_memory).view(len(orders), len(values), n)
        for k, order in enumerate(orders):
            scores[order].append(s[k].T)  # [N, L]
    level_tensor = torch.tensor(values, dtype=x.dtype, device=x.device)
    out = {o: torch.cat(scores[o]).to(x.device) if o in scores else None for o in ORDERS}
    return RoadCurves(level_tensor, out["morf"], out["lerf"], clean, score)


@metric("model", higher_is_better=False)
def road_morf(model: nn.Module, inputs: Tensor, attributions: Tensor, targets: TargetSpec = None, **kw: Any) -> Tensor:
    """``[B]`` ROAD's most-relevant-first score: the MoRF curve's mean over the levels (lower is more
    faithful); keyword arguments as :func:`road_curves`."""
    return road_curves(model, inputs, attributions, targets, orders=("morf",), **kw).morf_auc()


@metric("model", higher_is_better=True)
def road_lerf(model: nn.Module, inputs: Tensor, attributions: Tensor, targets: TargetSpec = None, **kw: Any) -> Tensor:
    """``[B]`` ROAD's least-relevant-first score: the LeRF curve's mean over the levels (higher is more
    faithful); keyword arguments as :func:`road_curves`."""
    return road_curves(model, inputs, attributions, targets, orders=("lerf",), **kw).lerf_auc()


@metric("model", higher_is_better=True)
def road_combined(
    model: nn.Module, inputs: Tensor, attributions: Tensor, targets: TargetSpec = None, **kw: Any
) -> Tensor:
    """``[B]`` ROAD's combined score, mean LeRF minus mean MoRF (higher is more faithful; see the module
    docstring); keyword arguments as :func:`road_curves`."""
    return road_curves(model, inputs, attributions, targets, **kw).combined()
