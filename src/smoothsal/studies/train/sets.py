"""Train (or load) the model sets the reproductions compare: Table 1's pairs, the theory's pair,
the data-randomization models and the input-noise models (recipes in :mod:`.recipes`).

Each model is cached on its own (:func:`~smoothsal.studies.train.train_model`), so an
interrupted set resumes with the models it has; a bar counts the models of a set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tqdm.auto import tqdm

from smoothsal._core.validation import check_positive_int
from smoothsal.studies.train.cache import TrainedModel, train_model
from smoothsal.studies.train.config import TrainConfig
from smoothsal.studies.train.recipes import (
    MIN_TEST_ACCURACY,
    RANDOM_LABEL_MAX_EPOCHS,
    noise_configs,
    randomization_configs,
    setting_configs,
    theory_recipe,
)


def check_accuracy(trained: TrainedModel, minimum: float | None) -> TrainedModel:
    """``trained`` itself, or ``RuntimeError`` naming its recipe when its test accuracy is below
    ``minimum`` (``None``: no floor)."""
    if minimum is not None and not trained.test_accuracy >= minimum:
        raise RuntimeError(
            f"model {trained.config.describe()} reached test accuracy {trained.test_accuracy:.4f} < {minimum:g} "
            f"(weights kept in {trained.path}); change the recipe or pass min_accuracy=None"
        )
    return trained


def _train_all(
    configs: list[TrainConfig], cache_dir: str | Path | None, progress: bool, desc: str, min_accuracy: float | None = None
) -> list[TrainedModel]:
    """Each config trained or loaded, in order, with one bar over the models; the first model below
    ``min_accuracy`` stops the set (:func:`check_accuracy`)."""
    out = []
    with tqdm(total=len(configs), desc=desc, unit="model", disable=not progress or len(configs) < 2) as bar:
        for config in configs:
            out.append(check_accuracy(train_model(config, cache_dir=cache_dir, progress=progress), min_accuracy))
            bar.update(1)
    return out


def models_for_setting(
    setting: str,
    dataset: str = "digits",
    n_models: int = 2,
    base: TrainConfig | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    pair: int = 0,
    min_accuracy: float | None | Literal["auto"] = "auto",
) -> list[TrainedModel]:
    """Train (or load) ``n_models`` models that differ in one way (Ye & Farnia 2025, Table 1).

    Digits / synthetic (``base`` defaults to :class:`TrainConfig`'s defaults):

    * ``"DT"``: ``base``'s arch and recipe, model ``i`` trained on part ``i`` of ``n_models``
      disjoint parts of the training set (``split=(i, n_models)``); the models share the seed
      (same initial weights), so they differ only in their training data;
    * ``"DR"``: the full training set, different recipes: ``base``; SGD (lr 0.05, momentum 0.9)
      instead of Adam (or Adam lr 1e-3 if ``base`` uses SGD); ``augment`` toggled; then ``base``
      with seeds ``seed + 1, seed + 2, ...``;
    * ``"DA"``: the full training set and ``base``'s recipe, different archs: ``base.arch``, then
      the others of ``cnn, cnn_wide, mlp, cnn_deep`` (at most 4 models).

    MNIST: see :mod:`smoothsal.studies.train.recipes` (30,000 images per model; DR and DA have
    two models). ``pair`` picks the replicate (seed and parts' draw); ``min_accuracy`` turns a model
    below it into a ``RuntimeError`` naming the recipe (``None``: no floor; ``"auto"``:
    :data:`~smoothsal.studies.train.recipes.MIN_TEST_ACCURACY` for MNIST's own recipes, i.e.
    ``dataset="mnist"`` and ``base=None``, else no floor). Returns the :class:`TrainedModel` s in the
    order of :func:`setting_configs`.
    """
    if min_accuracy == "auto":
        min_accuracy = MIN_TEST_ACCURACY if dataset == "mnist" and base is None else None
    configs = setting_configs(setting, dataset, n_models, base, pair)
    return _train_all(configs, cache_dir, progress, f"{setting} pair {pair}", min_accuracy)


def model_pairs(
    setting: str,
    n_pairs: int = 3,
    dataset: str = "mnist",
    base: TrainConfig | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    min_accuracy: float | None | Literal["auto"] = "auto",
) -> list[list[TrainedModel]]:
    """``n_pairs`` independently trained pairs of one setting: ``[models_for_setting(..., pair=p)]``
    for ``p = 0 .. n_pairs - 1``. With MNIST's own recipes every model must reach 98.5 %
    (``min_accuracy="auto"``, see :func:`models_for_setting`)."""
    check_positive_int(n_pairs, "n_pairs")
    return [
        models_for_setting(setting, dataset, 2, base, cache_dir, progress, pair=p, min_accuracy=min_accuracy)
        for p in range(n_pairs)
    ]


def theory_pairs(
    n_pairs: int = 1, dataset: str = "mnist", cache_dir: str | Path | None = None, progress: bool = True
) -> list[list[TrainedModel]]:
    """Setting ``"DT"`` in the theory's regime (:func:`~smoothsal.studies.train.recipes.theory_recipe`):
    pairs of ``"smooth_mlp"`` on disjoint halves, each model with its
    :class:`~smoothsal.studies.train.theory.TheoryConstants` in ``.theory``. No accuracy floor:
    the regime is the theory's, not a competition model's (the accuracy is in ``.test_accuracy``)."""
    return model_pairs("DT", n_pairs, dataset, theory_recipe(dataset), cache_dir, progress, min_accuracy=None)


@dataclass
class RandomizationModels:
    """The data-randomization test's models: one true-label model and one random-label model per
    label permutation (``label_seeds[i]`` → ``random_label[i]``)."""

    true_label: TrainedModel
    random_label: list[TrainedModel]
    label_seeds: list[int] = field(default_factory=list)


def randomization_models(
    label_seeds: tuple[int, ...] | list[int] = (0, 1, 2),
    base: TrainConfig | None = None,
    fit_accuracy: float = 0.95,
    max_epochs: int = RANDOM_LABEL_MAX_EPOCHS,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> RandomizationModels:
    """The true-label model and one random-label model per seed in ``label_seeds``
    (:func:`~smoothsal.studies.train.recipes.randomization_configs`): LeNet-5 on 5,000 MNIST
    images by default. Each random-label model has its own initialization and fits its permuted
    labels to ``fit_accuracy`` (``RuntimeError`` naming the recipe if not within ``max_epochs``);
    ``.train_accuracy`` is that fit, ``.test_accuracy`` its (chance-level) accuracy on true test labels."""
    seeds = [check_positive_int(s, "label_seeds[i]", minimum=0) for s in label_seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"`label_seeds` must be distinct seeds (at least one), got {list(label_seeds)}")
    pairs = [randomization_configs(s, base, fit_accuracy, max_epochs) for s in seeds]
    trained = _train_all([pairs[0][0]] + [random for _, random in pairs], cache_dir, progress, "randomization")
    return RandomizationModels(trained[0], trained[1:], seeds)


def noise_models(
    noise_level: float = 0.2,
    n_pairs: int = 1,
    base: TrainConfig | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> list[tuple[TrainedModel, TrainedModel]]:
    """``n_pairs`` of ``(plain, noisy)`` models (:func:`~smoothsal.studies.train.recipes.noise_configs`),
    replicate ``p`` with seed and data of DT's pair ``p``."""
    check_positive_int(n_pairs, "n_pairs")
    configs = [c for p in range(n_pairs) for c in noise_configs(noise_level, p, base)]
    trained = _train_all(configs, cache_dir, progress, "input noise")
    return [(trained[2 * p], trained[2 * p + 1]) for p in range(n_pairs)]
