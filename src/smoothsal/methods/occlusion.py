r"""Occlusion (Zeiler & Fergus 2014, "Visualizing and Understanding Convolutional Networks",
arXiv:1311.2901, Sec. 4.2): how much the class score drops when a patch is hidden.

A ``window_h x window_w`` patch, covering all channels, slides over the image with the given
stride; the window positions :math:`P` cover the whole image (the last window of a row or column
sits flush with the border even when the stride does not divide the size). Each patch is replaced
by the baseline :math:`x'`, and every pixel receives the mean score drop over the windows
:math:`p \ni (i, j)` that cover it:

.. math::

    A_{c,ij}(x) = \frac{1}{|\{p \ni (i,j)\}|} \sum_{p \ni (i,j)}
        \big(F_t(x) - F_t(x \odot (1 - M_p) + x' \odot M_p)\big)

the same value for every channel :math:`c` (the output is shaped like the inputs). :math:`M_p` is
the patch mask and :math:`F_t` the target logit. A pixel no window covers (only possible when the
stride exceeds the window) gets 0.

Cost: :math:`B \cdot |P|` forward rows, run ``batch_size`` occluded images at a time (learned
under the memory budget when ``None``, :mod:`smoothsal.execution.policy`); only one such chunk of
occluded copies exists at a time.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from smoothsal._core.validation import TargetSpec, check_positive_int, resolve_targets
from smoothsal.execution.memory import MemorySpec
from smoothsal.execution.policy import RowContext
from smoothsal.execution.runner import policy_for, run_rows
from smoothsal.methods.base import Attribution
from smoothsal.methods.baselines import BaselineSpec, check_baseline_spec, make_baseline

OcclusionBaseline = BaselineSpec  # plus the string "mean"


def _pair(value: int | tuple[int, int], name: str) -> tuple[int, int]:
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return check_positive_int(value[0], name), check_positive_int(value[1], name)
    if isinstance(value, (tuple, list)):
        raise ValueError(f"`{name}` must be an int or a pair (h, w) of ints, got {value!r}")
    check_positive_int(value, name)
    return value, value


def window_starts(size: int, window: int, stride: int) -> Tensor:
    """Start offsets along one axis: ``0, stride, 2*stride, ...`` plus ``size - window`` (flush end).

    Example:
        >>> window_starts(10, 4, 3).tolist()
        [0, 3, 6]
        >>> window_starts(10, 4, 4).tolist()
        [0, 4, 6]
    """
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] != size - window:
        starts.append(size - window)
    return torch.tensor(starts, dtype=torch.long)


def _interval_masks(starts: Tensor, window: int, size: int) -> Tensor:
    """``[n, size]`` booleans: position ``i`` lies in ``[starts[k], starts[k] + window)``."""
    idx = torch.arange(size, device=starts.device)  # [size]
    return (idx >= starts[:, None]) & (idx < starts[:, None] + window)


def window_masks(starts_h: Tensor, starts_w: Tensor, window: tuple[int, int], size: tuple[int, int]) -> Tensor:
    """Boolean masks ``[n, H, W]`` of ``n`` windows with top-left corners ``(starts_h[k], starts_w[k])``."""
    in_rows = _interval_masks(starts_h, window[0], size[0])  # [n, H]
    in_cols = _interval_masks(starts_w, window[1], size[1])  # [n, W]
    return in_rows[:, :, None] & in_cols[:, None, :]  # [n, H, W]


def occlusion_baseline(spec: OcclusionBaseline, inputs: Tensor) -> Tensor:
    """The replacement values, shaped like ``inputs`` ``[B, C, H, W]``.

    ``"mean"`` is each sample's per-channel mean; every other spec goes to
    :func:`smoothsal.methods.baselines.make_baseline` (a number, a tensor broadcastable to the
    inputs, ``"black"``, ``"blur"``, ``"uniform"`` with seed 0, or a callable).
    """
    if isinstance(spec, str) and spec == "mean":
        return inputs.mean(dim=(2, 3), keepdim=True).expand_as(inputs)
    return make_baseline(spec, inputs)


class Occlusion(Attribution):
    r"""Occlusion sensitivity (Zeiler & Fergus 2014, arXiv:1311.2901).

    .. math:: A_{c,ij} = \operatorname{mean}_{p \ni (i,j)} \big(F_t(x) - F_t(x^{(p)})\big)

    where :math:`x^{(p)}` is :math:`x` with window :math:`p` (all channels) replaced by the baseline.

    Args:
        model: ``nn.Module`` mapping ``[B, C, H, W]`` images to ``[B, classes]`` logits.
        window: patch side in pixels, an int or a pair ``(h, w)``, each ``>= 1``.
        stride: step between window positions, an int or ``(h, w)``, each ``>= 1``.
        baseline: what fills the patch: a number, a tensor broadcastable to the inputs,
            ``"mean"`` (per-sample per-channel mean), ``"blur"`` (the Gaussian-blurred input,
            :func:`~smoothsal.methods.baselines.gaussian_blur` with σ = max(H, W) / 10), or any
            other spec of :func:`~smoothsal.methods.baselines.make_baseline`.
        batch_size: most model rows per call (a row: one forward(+backward) pass of one input-shaped
            tensor); ``None``: learned from the calls' timings under the memory budget. Never changes the
            result. Here a row is one occluded image (forward passes only); under a caller that batches, the
            caller's rows rule.
        max_memory: the memory budget when ``batch_size`` is ``None`` (bytes, ``"4GB"``, ``"25%"``;
            ``None``: the default of :func:`smoothsal.execution.memory.memory_budget`).
    Returns (from :meth:`attribute`):
        attributions shaped like ``inputs`` (equal across channels).

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 1, bias=False)).eval()
        >>> with torch.no_grad():
        ...     _ = model[1].weight.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
        >>> Occlusion(model, window=1, stride=1).attribute(torch.ones(1, 1, 2, 2), target=0)
        tensor([[[[1., 2.],
                  [3., 4.]]]])
    """

    required_ndim = 4
    reads_row_context = True

    def __init__(
        self,
        model: nn.Module,
        window: int | tuple[int, int] = 16,
        stride: int | tuple[int, int] = 8,
        baseline: OcclusionBaseline = 0.0,
        batch_size: int | None = None,
        max_memory: MemorySpec = None,
    ) -> None:
        super().__init__(model)
        self.window = _pair(window, "window")
        self.stride = _pair(stride, "stride")
        if not (isinstance(baseline, str) and baseline == "mean"):
            check_baseline_spec(baseline)
        self.baseline = baseline
        self.batch_size = None if batch_size is None else check_positive_int(batch_size, "batch_size")
        self.max_memory = max_memory
        if self.stride[0] > self.window[0] or self.stride[1] > self.window[1]:
            warnings.warn(
                f"`stride` {self.stride} exceeds `window` {self.window}: some pixels are never occluded "
                "and get attribution 0",
                UserWarning,
                stacklevel=2,
            )

    def _attribute(self, inputs: Tensor, target: TargetSpec, *, context: RowContext | None = None) -> Tensor:
        b, c, h, w = inputs.shape
        (wh, ww), (sh, sw) = self.window, self.stride
        if wh > h or ww > w:
            raise ValueError(f"`window` {self.window} is larger than the image ({h}, {w})")
        policy = context.policy() if context is not None else policy_for(
            self.model, inputs[0], "occlusion", batch_size=self.batch_size, max_memory=self.max_memory)
        with torch.no_grad():
            logits = self._logits(inputs)
            targets = resolve_targets(target, logits)
            clean = logits.gather(1, targets[:, None]).squeeze(1)  # [B]
            baseline = occlusion_baseline(self.baseline, inputs)  # [B, C, H, W]

            rows = window_starts(h, wh, sh).to(inputs.device)  # [Ph]
            cols = window_starts(w, ww, sw).to(inputs.device)  # [Pw]
            grid_h = rows.repeat_interleave(cols.numel())  # [P], P = Ph * Pw
            grid_w = cols.repeat(rows.numel())  # [P]
            n_pos = grid_h.numel()

            total = torch.zeros(b, h, w, dtype=inputs.dtype, device=inputs.device)  # sum of drops

            # row k = (position k // B, sample k % B), in calls the policy sizes
            def masks(lo: int, hi: int) -> tuple[Tensor, Tensor]:
                pair = torch.arange(lo, hi, device=inputs.device)
                pos, sample = pair // b, pair % b  # [n], [n]
                return window_masks(grid_h[pos], grid_w[pos], self.window, (h, w)), sample  # [n, H, W], [n]

            def drops(lo: int, hi: int) -> Tensor:
                mask, sample = masks(lo, hi)
                occluded = torch.where(mask[:, None].logical_not(), inputs[sample], baseline[sample])  # [n, C, H, W]
                scores = self._logits(occluded).gather(1, targets[sample, None]).squeeze(1)  # [n]
                return clean[sample] - scores  # [n]

            def add(lo: int, hi: int, drop: Tensor) -> None:
                mask, sample = masks(lo, hi)
                total.index_add_(0, sample, drop[:, None, None] * mask.to(inputs.dtype))  # [B, H, W]

            run_rows(policy, n_pos * b, drops, consume=add)

            # windows covering each pixel; separable because the positions form a grid
            cover_h = _interval_masks(rows, wh, h).sum(0)  # [H]
            cover_w = _interval_masks(cols, ww, w).sum(0)  # [W]
            count = (cover_h[:, None] * cover_w[None, :]).to(inputs.dtype)  # [H, W]
            attr = torch.where(count > 0, total / count.clamp(min=1), 0.0)  # [B, H, W]
        return attr[:, None].expand(b, c, h, w).clone()  # [B, C, H, W]


def occlusion(
    model: nn.Module,
    inputs: Tensor,
    target: TargetSpec = None,
    window: int | tuple[int, int] = 16,
    stride: int | tuple[int, int] = 8,
    baseline: OcclusionBaseline = 0.0,
    batch_size: int | None = None,
    max_memory: MemorySpec = None,
) -> Tensor:
    """Functional form of :class:`Occlusion`."""
    return Occlusion(model, window, stride, baseline, batch_size, max_memory).attribute(inputs, target)
