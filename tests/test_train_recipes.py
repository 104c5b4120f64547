"""MNIST model sets: recipe hashing and cache hits, DT halves, DR/DA recipes, the theory's regime
(plain SGD with α_t = c/(t + t0) <= c/t, softplus, ‖x‖ <= C, its constants), permuted labels that fit,
input-noise pairs and the accuracy floor. Tiny subsets and one epoch: the real accuracies come from
benchmarks/train_mnist_models.py."""

import math
from dataclasses import fields, replace

import pytest
import torch
import torch.nn.functional as F

import smoothsal.studies.train.cache as cache_mod
import smoothsal.studies.train.fit as fit_mod
from smoothsal.datasets import load_mnist
from smoothsal.studies.train import (
    DA_ARCHS,
    MNIST_BASE,
    BallProjection,
    ShiftedSoftplus,
    TheoryConstants,
    TrainConfig,
    build_model,
    check_accuracy,
    config_key,
    held_out_inputs,
    label_permutation,
    load_split,
    model_pairs,
    models_for_setting,
    noise_configs,
    randomization_configs,
    setting_configs,
    step_size,
    theory_recipe,
    train_model,
    training_indices,
    training_set,
)
from smoothsal.studies.train.fit import fit
from smoothsal.studies.train.theory import NormTracker, spectral_norms

# 100 MNIST training images (part 0 of 600), one epoch
TINY = replace(MNIST_BASE, split=(0, 600), epochs=1, batch_size=32)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


# ---- data --------------------------------------------------------------------------------------
def test_mnist_split_is_mnists_own_train_and_test():
    train, test = load_split("mnist")
    assert (len(train), len(test)) == (60_000, 10_000) and train.image_shape == (1, 28, 28)
    assert torch.equal(test.labels, load_mnist("test").labels)
    held = held_out_inputs("mnist", None, 5, seed=3)
    rows = (test.images.flatten(1)[:, None] == held.images.flatten(1)[None]).all(-1)  # [10000, 5]
    assert rows.any(0).all()  # every held-out input is a test image
    assert TrainConfig(dataset="mnist").image_size == 28 and TrainConfig(dataset="digits").image_size == 32


@pytest.mark.parametrize("pair", [0, 1, 2])
def test_dt_halves_are_disjoint_cover_the_training_set_and_are_redrawn_per_pair(pair):
    a, b = setting_configs("DT", "mnist", pair=pair)
    ia, ib = training_indices(a), training_indices(b)
    assert ia.numel() == ib.numel() == 30_000
    assert torch.equal(torch.cat([ia, ib]).sort().values, torch.arange(60_000))
    assert replace(a, split=None) == replace(b, split=None)  # the halves are the only difference
    other = setting_configs("DT", "mnist", pair=pair + 1)[0]
    assert not torch.equal(training_indices(other), ia) and other.seed == a.seed + 1
    # DR and DA train on the same data as DT's first model of the pair
    for setting in ("DR", "DA"):
        assert all(torch.equal(training_indices(c), ia) for c in setting_configs(setting, "mnist", pair=pair))


def test_dr_and_da_differ_in_recipe_or_arch_only():
    dr = setting_configs("DR", "mnist", pair=1)
    assert {c.optimizer for c in dr} == {"sgd", "adam"} and {c.augment for c in dr} == {False, True}
    sgd = next(c for c in dr if c.optimizer == "sgd")
    assert sgd.momentum == 0.9 and sgd.lr_schedule == "step" and sgd.weight_decay > 0
    assert len({(c.arch, c.seed, c.split, c.split_seed) for c in dr}) == 1
    da = setting_configs("DA", "mnist", pair=1)
    assert tuple(c.arch for c in da) == DA_ARCHS
    assert replace(da[1], arch="lenet") == da[0]
    assert da[0] == setting_configs("DT", "mnist", pair=1)[0]  # one cached LeNet serves DT and DA
    with pytest.raises(ValueError, match="`n_models` must be 2 for setting 'DR' on MNIST"):
        setting_configs("DR", "mnist", n_models=3)


# ---- cache -------------------------------------------------------------------------------------
def test_same_recipe_is_a_cache_hit_without_training(cache, monkeypatch):
    first = train_model(TINY, cache_dir=cache, progress=False)
    assert not first.from_cache and 0 <= first.test_accuracy <= 1 and first.cpu_seconds > 0

    def no_training(*args, **kwargs):
        raise AssertionError("trained although the recipe is cached")

    monkeypatch.setattr(cache_mod, "fit", no_training)
    again = train_model(replace(TINY), cache_dir=cache, progress=False)
    assert again.from_cache and again.path == first.path
    assert again.test_accuracy == first.test_accuracy and again.train_accuracy == first.train_accuracy
    assert all(torch.equal(a, b) for a, b in zip(first.model.state_dict().values(), again.model.state_dict().values()))


CHANGES = {
    "dataset": "digits", "arch": "resnet", "optimizer": "sgd", "lr": 0.002, "epochs": 2, "batch_size": 64,
    "seed": 1, "augment": True, "input_noise": 0.1, "weight_noise": 0.01, "weight_noise_samples": 2,
    "split": (1, 600), "shuffle_labels": True, "image_size": None, "momentum": 0.5, "weight_decay": 1e-4,
    "lr_schedule": "constant", "label_smoothing": 0.1, "loss_scale": 0.5, "split_seed": 7, "label_seed": 3,
    "fit_train_accuracy": 0.9,
}  # fmt: skip


@pytest.mark.parametrize("name", [f.name for f in fields(TrainConfig)])
def test_every_field_changes_the_key(name):
    if name in ("lr_milestones", "lr_gamma"):
        changed = replace(TINY, lr_schedule="step", epochs=3, lr_milestones=(1,) if name == "lr_milestones" else (2,),
                          lr_gamma=0.5 if name == "lr_gamma" else 0.1)  # fmt: skip
        base = replace(TINY, lr_schedule="step", epochs=3, lr_milestones=(2,))
    elif name == "lr_offset":
        base, changed = replace(TINY, lr_schedule="inverse_t"), replace(TINY, lr_schedule="inverse_t", lr_offset=10)
    elif name == "image_size":
        base, changed = replace(TINY, dataset="digits", image_size=32), replace(TINY, dataset="digits", image_size=16)
    else:
        base, changed = TINY, replace(TINY, **{name: CHANGES[name]})
    assert config_key(base) != config_key(changed)
    assert config_key(base) == config_key(replace(base))


# ---- the theory's regime -----------------------------------------------------------------------
def test_theory_recipe_is_plain_sgd_with_c_over_t_steps_and_a_smooth_bias_free_mlp():
    recipe = theory_recipe()
    assert recipe.optimizer == "sgd" and recipe.momentum == 0 and recipe.weight_decay == 0
    assert recipe.lr_schedule == "inverse_t" and recipe.augment is False and recipe.input_noise == 0
    assert recipe.loss_scale == pytest.approx(1 / math.sqrt(2))
    model = build_model(recipe.arch, 1, 10, 28)
    assert not any(isinstance(m, torch.nn.ReLU) for m in model.modules())
    assert sum(isinstance(m, ShiftedSoftplus) and m.beta == 4 for m in model.modules()) == 1
    assert all(getattr(m, "bias", None) is None for m in model.modules() if isinstance(m, torch.nn.Linear))
    c, t0 = recipe.lr, recipe.lr_offset
    for t in (1, 2, 10, 1000):
        assert step_size(recipe, t, 469) == c / (t + t0) <= c / t
    exact = replace(recipe, lr_offset=0)
    assert [step_size(exact, t, 469) for t in (1, 2, 10)] == [c / 1, c / 2, c / 10]


@pytest.mark.parametrize("offset", [0, 7])
def test_the_optimizer_steps_are_plain_sgd_at_c_over_t_plus_t0(offset, monkeypatch):
    config = replace(theory_recipe(), lr=0.5, lr_offset=offset, split=(0, 600), epochs=1, batch_size=8)
    train = training_set(config)
    model = build_model(config.arch, 1, 10, 28)
    steps, real = [], fit_mod.make_optimizer

    def recording_optimizer(cfg, net):
        opt = real(cfg, net)

        def before(optimizer, args, kwargs):
            params = optimizer.param_groups[0]["params"]
            steps.append({"lr": optimizer.param_groups[0]["lr"], "w": [p.detach().clone() for p in params],
                          "g": [p.grad.clone() for p in params]})  # fmt: skip

        def after(optimizer, args, kwargs):
            steps[-1]["w_next"] = [p.detach().clone() for p in optimizer.param_groups[0]["params"]]

        opt.register_step_pre_hook(before)
        opt.register_step_post_hook(after)
        return opt

    monkeypatch.setattr(fit_mod, "make_optimizer", recording_optimizer)
    fit(model, train, config)
    assert len(steps) == math.ceil(len(train) / 8)
    for t in (1, 2, 10):
        step = steps[t - 1]
        assert step["lr"] == 0.5 / (t + offset)
        for w, g, w_next in zip(step["w"], step["g"], step["w_next"]):  # W_{t+1} = W_t - α_t ∇ℓ: no momentum, no decay
            torch.testing.assert_close(w_next, w - step["lr"] * g, rtol=0, atol=1e-7)


def test_inputs_are_projected_into_the_ball_of_radius_c():
    model = build_model("smooth_mlp", 1, 10, 28)
    projection = model[0]
    assert isinstance(projection, BallProjection) and projection.radius == 28.0  # C = √784
    seen = []
    model[1].register_forward_hook(lambda mod, inp, out: seen.append(out))  # the network's input
    clean = load_mnist("test").images[:64]
    noisy = clean + 2.0 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    model(torch.cat([clean, noisy]))
    norms = seen[0].norm(dim=1)
    assert (norms <= 28.0 * (1 + 1e-6)).all()
    assert torch.equal(seen[0][:64], clean.flatten(1))  # clean images lie inside the ball: unchanged
    assert (noisy.flatten(1).norm(dim=1) > 28).all() and torch.allclose(norms[64:], torch.full((64,), 28.0))


def test_shifted_softplus_is_zero_at_zero_1_lipschitz_and_1_smooth():
    act = ShiftedSoftplus(4.0)
    u = torch.linspace(-4, 4, 4001, dtype=torch.float64, requires_grad=True)  # β|u| <= 16
    (d1,) = torch.autograd.grad(act(u).sum(), u, create_graph=True)
    (d2,) = torch.autograd.grad(d1.sum(), u)
    d1 = d1.detach()
    assert float(act(torch.zeros(1))) == 0.0
    assert 0 < float(d1.min()) and float(d1.max()) < 1
    assert float(d2.max()) == pytest.approx(1.0, abs=1e-4) and float(d2.min()) >= 0  # β/4 at u = 0


def test_theory_constants_by_hand():
    norms = (2.0, 3.0, 5.0)  # α_{k,0} = 30, α_{k,1} = 15 + 10 + 6 = 31, Σ_{i<k} α_{i,0} = 2 + 6
    constants = TheoryConstants(3, 4, 2.0, 1.0, 0, 10, 100, 1, norms, norms, 0.0, 0.0, 0.0)
    assert constants.gamma == 30 * (2 + 6)
    assert constants.fidelity_bound(0.5) == 240 * 0.5 * 2
    assert constants.fidelity_bound(0.5, "integrated_gradients") == 240 * (3 * 2.0 + 1)
    assert constants.lipschitz_bound == 31 * 2.0 and constants.smoothness_bound == 10 * 31**2 * 4
    beta_c = constants.smoothness_bound * 1.0  # Theorem 6 = Theorem 5 × (α_{k,1} / (2σ α_{k,0} Σ α_{i,1}))^(1/(βc+1))
    factor = (31 / (2 * 0.5 * 30 * (1 + 5))) ** (1 / (beta_c + 1))
    assert constants.stability_bound(0.5) == pytest.approx(constants.stability_bound() * factor, rel=1e-12)
    assert TheoryConstants.from_dict(constants.to_dict()) == constants


def test_trained_theory_model_exposes_constants_that_bound_its_measured_ones(cache):
    config = replace(theory_recipe(), split=(0, 300), epochs=2)
    trained = train_model(config, cache_dir=cache, progress=False)
    th = trained.theory
    assert th is not None and th.layers == 2 and th.input_dim == 784 and th.input_norm_bound == 28.0
    assert (th.step_constant, th.step_offset, th.n_train, th.batch_size) == (1000.0, 1000, 200, 64)
    assert th.steps == 2 * math.ceil(200 / 64) and th.loss_lipschitz == pytest.approx(1.0)
    assert list(th.final_weight_norms) == pytest.approx(spectral_norms(trained.model))
    assert all(b >= f for b, f in zip(th.weight_norms, th.final_weight_norms))
    w1, w2 = (layer.weight.detach().double() for layer in (trained.model[2], trained.model[4]))
    assert th.final_weight_norms[0] == pytest.approx(float(torch.linalg.svdvals(w1)[0]))
    # the analytic bounds hold for what we measure (a wrong γ or L formula would break them)
    assert 0 < th.gamma_estimate <= th.gamma and 0 < th.lipschitz_estimate <= th.lipschitz_bound
    assert th.gamma == pytest.approx(th.weight_norms[0] ** 2 * th.weight_norms[1])
    assert train_model(config, cache_dir=cache, progress=False).theory == th  # stored in the sidecar


def test_norm_tracker_keeps_the_largest_norm_seen_at_any_step():
    model = build_model("smooth_mlp", 1, 3, 8)
    tracker = NormTracker(model)
    with torch.no_grad():
        model[2].weight.mul_(3)
    tracker.step(model)
    tracker(0, model)  # an epoch end: exact norms
    assert tracker.maxima[0] == pytest.approx(tracker.history[1][0])
    with torch.no_grad():
        model[2].weight.mul_(2)  # a step inside an epoch: seen only by the per-step power iteration
    tracker.step(model)
    with torch.no_grad():
        model[2].weight.div_(12)
    tracker.step(model)
    tracker(1, model)
    exact_peak = 2 * tracker.history[1][0]
    assert tracker.step_maxima[0] == pytest.approx(exact_peak, rel=1e-5)  # the top singular vector is kept
    assert tracker.maxima[0] == pytest.approx(exact_peak, rel=1e-5) and tracker.history[2][0] < exact_peak / 5
    assert max(tracker.gaps) < 1e-5


# ---- data randomization ------------------------------------------------------------------------
def test_random_labels_are_a_seeded_permutation_and_the_model_has_its_own_init():
    true, random = randomization_configs(1)
    assert training_indices(true).numel() == 5_000 and torch.equal(training_indices(true), training_indices(random))
    a, b = training_set(true), training_set(random)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels.sort().values, b.labels.sort().values)
    assert torch.equal(b.labels, a.labels[label_permutation(5_000, 1)])
    assert torch.equal(training_set(randomization_configs(1)[1]).labels, b.labels)  # same seed, same labels
    assert not torch.equal(training_set(randomization_configs(2)[1]).labels, b.labels)
    assert (a.labels == b.labels).float().mean() < 0.2
    assert random.seed != true.seed and randomization_configs(2)[1].seed != random.seed
    assert random.fit_train_accuracy == 0.95 and randomization_configs(2)[0] == true


def test_training_stops_once_the_labels_are_fitted_and_fails_loudly_when_not(cache):
    config = replace(TrainConfig(dataset="mnist", arch="mlp", lr=3e-3, batch_size=16, split=(0, 1200),
                                 shuffle_labels=True, label_seed=5), epochs=60, fit_train_accuracy=0.9)  # fmt: skip
    fitted = train_model(config, cache_dir=cache, progress=False)
    assert fitted.train_accuracy >= 0.9 and fitted.epochs_run < 60
    labels = training_set(config)
    assert fitted.train_accuracy == pytest.approx((fitted.model(labels.images).argmax(1) == labels.labels).double().mean().item())
    with pytest.raises(RuntimeError, match=r"mlp adam .*labels permuted .*reached training accuracy 0\.\d+ < fit_train_accuracy 1"):
        train_model(replace(config, epochs=1, fit_train_accuracy=1.0), cache_dir=cache, progress=False)


# ---- input noise, accuracy floor ---------------------------------------------------------------
def test_noise_pair_differs_only_in_input_noise():
    plain, noisy = noise_configs(0.3, pair=2)
    assert plain == setting_configs("DT", "mnist", pair=2)[0] and noisy == replace(plain, input_noise=0.3)


def test_accuracy_floor_names_the_recipe(cache):
    tiny = train_model(TINY, cache_dir=cache, progress=False)
    assert check_accuracy(tiny, None) is tiny and check_accuracy(tiny, tiny.test_accuracy) is tiny
    with pytest.raises(RuntimeError, match=r"model lenet adam lr=0\.003 onecycle .* < 0\.985"):
        check_accuracy(tiny, 0.985)
    base = replace(MNIST_BASE, epochs=1)
    with pytest.raises(RuntimeError, match="reached test accuracy"):  # 1 epoch on 100 images is far below 98.5 %
        models_for_setting("DT", "mnist", 600, base, cache, progress=False, min_accuracy=0.985)
    # MNIST's own recipe (base=None) gets the floor by default: its 100-image part cannot reach it
    with pytest.raises(RuntimeError, match=r"lenet adam lr=0\.003 onecycle bs=128 8ep part 0/600 .* < 0\.985"):
        models_for_setting("DT", "mnist", 600, None, cache, progress=False)


def test_model_pairs_are_independent_replicates(cache):
    base = TrainConfig(dataset="digits", image_size=16, epochs=1, batch_size=32)
    pairs = model_pairs("DT", 2, "digits", base, cache_dir=cache, progress=False, min_accuracy=None)
    assert len(pairs) == 2 and all(len(p) == 2 for p in pairs)
    (a0, b0), (a1, _) = pairs
    assert (a0.config.seed, a1.config.seed) == (a0.config.seed, a0.config.seed + 1) and b0.config.split == (1, 2)
    assert not torch.equal(a0.model.state_dict()["1.weight"], a1.model.state_dict()["1.weight"])


def test_cross_entropy_scale_and_label_smoothing_reach_the_loss():
    logits, labels = torch.randn(6, 10), torch.arange(6)
    loss = fit_mod.make_loss(replace(TINY, loss_scale=0.25, label_smoothing=0.1))
    assert float(loss(logits, labels)) == pytest.approx(0.25 * float(F.cross_entropy(logits, labels, label_smoothing=0.1)))
