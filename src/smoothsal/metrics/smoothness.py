r"""How smooth a map is, a blur matched to a smoothness, and how much of a map lies on one half.

SmoothGrad's claim that averaging over noisy inputs *sharpens* maps (Smilkov et al. 2017,
arXiv:1706.03825, Figs. 3 and 5) needs a control: any averaging makes a map smoother, and a
smoother map can score better on a localization metric for that reason alone. The control here is
the gradient blurred spatially **to the same smoothness** as the SmoothGrad map, smoothness
measured as the map's normalised total variation

.. math:: \operatorname{TV}(m) = \frac{\sum_{h,w} |m_{h+1,w} - m_{h,w}| + |m_{h,w+1} - m_{h,w}|}{\sum_{h,w} m_{h,w}},
          \qquad m = \sum_c |a_c|

(scale-free: a map and twice it have one TV). :func:`blur_to_smoothness` finds, per map, the
Gaussian width whose blur of the gradient has the SmoothGrad map's TV, by bisection: blurring
with a unit-mass positive kernel never raises the total variation, and Gaussian blurs compose
(:math:`G_{\sigma_2} = G_{\sqrt{\sigma_2^2 - \sigma_1^2}} * G_{\sigma_1}`), so the TV falls
monotonically with the width. If SmoothGrad then puts more of its mass on the object than the
matched blur, the gain is not smoothness alone.

:func:`half_share` scores discriminativity on a composite of two objects side by side (Fig. 6):
the share of a class's map magnitude on the half that holds that class's object.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["BlurMatch", "blur_to_smoothness", "half_share", "map_magnitude", "total_variation"]


def map_magnitude(maps: Tensor) -> Tensor:
    """``[B, H, W]`` :math:`m = \\sum_c |a_c|` (float64) of ``[B, C, H, W]`` or ``[B, H, W]`` maps."""
    if not isinstance(maps, Tensor) or maps.dim() not in (3, 4):
        raise ValueError(f"`maps` must be a tensor [B, C, H, W] or [B, H, W], got {getattr(maps, 'shape', type(maps))}")
    a = maps.detach().double().abs()
    return a.sum(dim=1) if a.dim() == 4 else a


def total_variation(maps: Tensor) -> Tensor:
    r"""``[B]`` normalised total variation of each map's magnitude (module docstring); NaN for an all-zero map.

    Example:
        >>> m = torch.zeros(1, 1, 4, 4); m[0, 0, 1, 1] = 2.0  # one spike: 4 edges of height 2, mass 2
        >>> total_variation(m)
        tensor([4.], dtype=torch.float64)
    """
    m = map_magnitude(maps)
    tv = (m.diff(dim=1).abs().sum(dim=(1, 2)) + m.diff(dim=2).abs().sum(dim=(1, 2)))
    mass = m.sum(dim=(1, 2))
    return torch.where(mass > 0, tv / torch.where(mass > 0, mass, torch.ones_like(mass)), torch.full_like(mass, float("nan")))


@dataclass(frozen=True)
class BlurMatch:
    """The blurred maps and how they were matched.

    Attributes:
        maps: ``[B, 1, H, W]`` the blurred magnitudes.
        sigmas: ``[B]`` the Gaussian widths in pixels.
        tv: ``[B]`` their total variation.
        target: ``[B]`` the smoothness asked for.
        matched: ``[B]`` whether ``|tv - target| <= tol * target`` (False where even the widest blur
            is rougher than the target, or the map is already smoother than it: then sigma is 0).
    """

    maps: Tensor
    sigmas: Tensor
    tv: Tensor
    target: Tensor
    matched: Tensor


def blur_to_smoothness(
    maps: Tensor, target: Tensor, *, max_sigma: float | None = None, tol: float = 1e-3, max_iter: int = 60
) -> BlurMatch:
    r"""Blur each map's magnitude with the Gaussian whose result has total variation ``target`` (module docstring).

    Args:
        maps: ``[B, C, H, W]`` or ``[B, H, W]`` (e.g. the gradient).
        target: ``[B]`` total variations to reach (e.g. :func:`total_variation` of SmoothGrad's maps).
        max_sigma: widest blur tried, in pixels (default: half the longer side).
        tol: relative tolerance of the match.
        max_iter: bisection steps at most.
    Returns:
        :class:`BlurMatch`.
    """
    from smoothsal.methods.baselines import gaussian_blur

    m = map_magnitude(maps)  # [B, H, W]
    goal = torch.as_tensor(target, dtype=torch.float64).flatten()
    if goal.shape[0] != m.shape[0]:
        raise ValueError(f"`target` must hold one value per map ({m.shape[0]}), got {tuple(goal.shape)}")
    if not 0 < tol < 1:
        raise ValueError(f"`tol` must lie in (0, 1), got {tol}")
    top = float(max(m.shape[-2:]) / 2 if max_sigma is None else max_sigma)
    out, sigmas, tvs, ok = [], [], [], []
    for i in range(m.shape[0]):
        x = m[i][None, None]  # [1, 1, H, W]

        def tv_at(s: float, x: Tensor = x) -> tuple[Tensor, float]:
            y = gaussian_blur(x, s) if s > 0 else x.clone()
            return y, float(total_variation(y)[0])

        g = float(goal[i])
        y, tv = tv_at(0.0)
        s = 0.0
        if tv > g:  # rougher than the target: blur
            y_hi, tv_hi = tv_at(top)
            if tv_hi > g:  # even the widest blur is rougher: report it, unmatched
                y, tv, s = y_hi, tv_hi, top
            else:
                lo, hi = 0.0, top
                y, tv, s = y_hi, tv_hi, top
                for _ in range(max_iter):
                    mid = 0.5 * (lo + hi)
                    y_mid, tv_mid = tv_at(mid)
                    if tv_mid > g:
                        lo = mid
                    else:
                        hi, y, tv, s = mid, y_mid, tv_mid, mid
                    if abs(tv - g) <= tol * g:
                        break
        out.append(y[0])
        sigmas.append(s)
        tvs.append(tv)
        ok.append(abs(tv - g) <= tol * g)
    return BlurMatch(torch.stack(out), torch.tensor(sigmas, dtype=torch.float64), torch.tensor(tvs, dtype=torch.float64),
                     goal, torch.tensor(ok))  # fmt: skip


def half_share(maps: Tensor, side: Tensor) -> Tensor:
    r"""``[B]`` share of each map's magnitude on its own half: the left half where ``side`` is 0,
    the right half where it is 1 (an odd middle column counts for neither side; 0.5 for an
    all-zero map, no preference).

    Example:
        >>> m = torch.tensor([[[1.0, 3.0], [0.0, 4.0]]])  # [1, 2, 2]: left 1, right 7
        >>> half_share(m, torch.tensor([1]))
        tensor([0.8750], dtype=torch.float64)
    """
    m = map_magnitude(maps)
    w = m.shape[-1]
    left, right = m[..., : w // 2].sum(dim=(1, 2)), m[..., w - w // 2 :].sum(dim=(1, 2))
    side = torch.as_tensor(side, device=m.device).flatten()
    if side.shape[0] != m.shape[0] or not bool(((side == 0) | (side == 1)).all()):
        raise ValueError(f"`side` must hold 0 (left) or 1 (right) per map ({m.shape[0]}), got {side.tolist()}")
    own = torch.where(side == 1, right, left)
    total = left + right
    return torch.where(total > 0, own / torch.where(total > 0, total, torch.ones_like(total)), torch.full_like(total, 0.5))
