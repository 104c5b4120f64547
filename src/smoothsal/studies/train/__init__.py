r"""Offline classifiers for the studies, trained reproducibly and cached by their recipe.

The stability–fidelity paper (Ye & Farnia 2025, arXiv:2411.05837, Table 1) compares saliency maps of
networks that differ in one way: **DT** the training data, **DR** the training recipe or **DA** the
architecture; the SmoothGrad paper and the sanity checks need models trained with input noise and
on permuted labels. This package trains all of them on the bundled digits, the synthetic shapes
and MNIST (``smoothsal.datasets``), on fixed held-out test splits, so every model is explained
on the same inputs.

* :mod:`~smoothsal.studies.train.config`: :class:`TrainConfig` (the recipe) and :func:`config_key`;
* :mod:`~smoothsal.studies.train.data`: :func:`load_split`, :func:`held_out_inputs`, parts, permuted labels;
* :mod:`~smoothsal.studies.train.architectures`: :func:`build_model` (CNNs, MLPs, LeNet-5, ResNet,
  the theory's ``"smooth_mlp"``);
* :mod:`~smoothsal.studies.train.fit`: the training loop, learning-rate rules, input / weight noise;
* :mod:`~smoothsal.studies.train.cache`: :func:`train_model` and :class:`TrainedModel`;
* :mod:`~smoothsal.studies.train.theory`: the constants of Theorems 5–6 and Proposition 7;
* :mod:`~smoothsal.studies.train.recipes` and :mod:`~smoothsal.studies.train.sets`: the model sets
  (:func:`models_for_setting`, :func:`model_pairs`, :func:`theory_pairs`,
  :func:`randomization_models`, :func:`noise_models`).
"""

from smoothsal.studies.train.architectures import BallProjection, ShiftedSoftplus, Standardize, build_model
from smoothsal.studies.train.cache import TrainedModel, train_model
from smoothsal.studies.train.config import ARCHS, DATASETS, OPTIMIZERS, SCHEDULES, SETTINGS, TrainConfig, config_key
from smoothsal.studies.train.data import (
    disjoint_splits,
    held_out_inputs,
    label_permutation,
    load_split,
    training_indices,
    training_set,
)
from smoothsal.studies.train.fit import add_input_noise, evaluate, noisy_weight_backward, random_shift, step_size
from smoothsal.studies.train.recipes import (
    DA_ARCHS,
    DR_RECIPES,
    MIN_TEST_ACCURACY,
    MNIST_BASE,
    noise_configs,
    randomization_configs,
    setting_configs,
    theory_recipe,
)
from smoothsal.studies.train.sets import (
    RandomizationModels,
    check_accuracy,
    model_pairs,
    models_for_setting,
    noise_models,
    randomization_models,
    theory_pairs,
)
from smoothsal.studies.train.theory import TheoryConstants

__all__ = [
    "ARCHS",
    "DATASETS",
    "DA_ARCHS",
    "DR_RECIPES",
    "MIN_TEST_ACCURACY",
    "MNIST_BASE",
    "OPTIMIZERS",
    "SCHEDULES",
    "SETTINGS",
    "BallProjection",
    "RandomizationModels",
    "ShiftedSoftplus",
    "Standardize",
    "TheoryConstants",
    "TrainConfig",
    "TrainedModel",
    "add_input_noise",
    "build_model",
    "check_accuracy",
    "config_key",
    "disjoint_splits",
    "evaluate",
    "held_out_inputs",
    "label_permutation",
    "load_split",
    "model_pairs",
    "models_for_setting",
    "noise_configs",
    "noise_models",
    "noisy_weight_backward",
    "random_shift",
    "randomization_configs",
    "randomization_models",
    "setting_configs",
    "step_size",
    "theory_pairs",
    "theory_recipe",
    "train_model",
    "training_indices",
    "training_set",
]
