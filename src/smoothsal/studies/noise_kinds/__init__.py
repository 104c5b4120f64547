r"""Which noise buys the most stability per unit of fidelity: input noise, weight noise, or both?

SmoothGrad averages a map over noisy *inputs*; NoiseGrad over noisy *weights*, the analogue of the
randomness of training that the stability error measures; FusionGrad over both (Bykov et al.,
AAAI 2022, arXiv:2106.10185; :mod:`smoothsal.weight_noise`). This study puts the three on one
axis of Ye & Farnia's trade-off (AISTATS 2025, arXiv:2411.05837, eqs. 12–13), for the gradient
map, over a grid of levels per kind:

* input: ``Smooth(noise_level=ℓ)``; weights: ``Smooth(noise_level=0, weight_noise=ℓ)``; both:
  ``Smooth(noise_level=ℓ, weight_noise=ℓ)``; level 0 is the raw gradient, shared by all kinds;
* model pairs: the MNIST DT / DR / DA pairs (:func:`smoothsal.studies.train.model_pairs`, 3 pairs
  each) on held-out digits, and EfficientNet-Lite0/1/2 (setting DA, its 3 pairs) on the bundled
  photos, resized to ``photo_size`` so the run fits a CPU;
* per (pair, image): the **stability error** :math:`\lVert \mathbb E S_1(x) - \mathbb E S_2(x)\rVert^2`
  and the **fidelity error** :math:`\lVert \mathbb E S(x) - S_{raw}(x)\rVert^2` (mean of the pair's two
  models), each debiased by the halves of the draws
  (:func:`smoothsal.metrics.tradeoff.smoothed_halves`, :func:`~smoothsal.metrics.tradeoff.debiased_distance`:
  unbiased squared distances, so the Monte-Carlo noise of a smoothed map is not read as
  instability), and divided by the squared norm of the raw map(s) of that image (a fixed scale,
  so the debiasing holds);
* each front point is :math:`\sqrt{\text{mean}}` of those squared errors over pairs × images, with a
  95 % interval resampling both (:func:`smoothsal.metrics.intervals.two_level_interval`, crossed:
  the same images under every pair), the bounds square-rooted (clipped at 0).

**The conclusion's rule, fixed before any data** (:data:`~smoothsal.studies.noise_kinds.config.FIDELITY_TARGETS`):
compare the kinds at *matched fidelity*. For each group and each target :math:`F^*` (relative
fidelity errors 0.3 and 0.6: the smoothed map a third / three fifths of the raw map's norm away
from it), each kind's level is placed where its mean squared fidelity error crosses
:math:`F^{*2}` (linear interpolation between the two grid levels around the crossing, level 0
included; the weights are computed from the means and then held fixed), and every unit's squared
stability error is interpolated with the same weights. The kind with the lowest mean interpolated
stability error **wins** the cell iff the 95 % two-level interval of its per-unit difference to
*every* other kind that reaches :math:`F^*` lies below 0 (and rests on at least
:data:`~smoothsal.metrics.intervals.MIN_IMAGES` images); otherwise the cell is **inconclusive**. A kind
whose fidelity error never reaches :math:`F^*` on the grid takes no part in that cell (said so).
The overall answer is the kind that wins every decisive cell, if there is one and at least one cell is
decisive; otherwise "mixed" (different winners) or "inconclusive" (no decisive cell). The result is
reported whichever way it comes out. The interpolation weights' own estimation error is not
in the interval (stated in the summary).
"""

from smoothsal.studies.noise_kinds.command import register_cli
from smoothsal.studies.noise_kinds.config import NoiseKindsConfig
from smoothsal.studies.noise_kinds.run import run_noise_kinds

__all__ = ["NoiseKindsConfig", "register_cli", "run_noise_kinds"]
