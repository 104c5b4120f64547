"""Trainer: fixed splits, determinism, disk cache, noise options, settings, clear errors."""

import json
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

import smoothsal.studies.train.cache as cache_mod
from smoothsal.studies.train import (
    ARCHS,
    ShiftedSoftplus,
    TrainConfig,
    add_input_noise,
    build_model,
    config_key,
    disjoint_splits,
    load_split,
    models_for_setting,
    noisy_weight_backward,
    random_shift,
    setting_configs,
    train_model,
    training_set,
)

# a tiny, fast config: 16x16 digits, 1/8 of the training set, one epoch
TINY = TrainConfig(dataset="digits", image_size=16, split=(0, 8), epochs=1, batch_size=32)


def _weights(trained):
    return trained.model.state_dict()


def _same_weights(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return train_model(TINY, cache_dir=tmp_path_factory.mktemp("models"), progress=False)


# ---- data splits --------------------------------------------------------------------------------
def test_disjoint_splits_are_disjoint_and_cover():
    parts = disjoint_splits(103, 4, seed=1)
    assert [p.numel() for p in parts] == [26, 26, 26, 25]
    assert torch.equal(torch.cat(parts).sort().values, torch.arange(103))
    assert all(torch.equal(p, p.sort().values) for p in parts)
    again = disjoint_splits(103, 4, seed=1)
    assert all(torch.equal(p, q) for p, q in zip(parts, again))
    assert not torch.equal(parts[0], disjoint_splits(103, 4, seed=2)[0])


def test_load_split_is_fixed_stratified_and_disjoint():
    train, test = load_split("digits", image_size=8)
    assert len(train) + len(test) == 1797
    counts, test_counts = torch.bincount(torch.cat([train.labels, test.labels])), torch.bincount(test.labels)
    assert torch.equal(test_counts, (0.25 * counts).round().long())
    # no test image appears in the training set
    assert (torch.cdist(test.images.flatten(1), train.images.flatten(1)).amin(1) > 0).all()
    train2, test2 = load_split("digits", image_size=8)
    assert torch.equal(test.images, test2.images) and torch.equal(train.labels, train2.labels)


def test_split_config_trains_on_its_part_only():
    full = training_set(replace(TINY, split=None))
    parts = [training_set(replace(TINY, split=(i, 3))) for i in range(3)]
    assert sum(len(p) for p in parts) == len(full)
    # parts are disjoint: no image of part 0 is in part 1
    assert (torch.cdist(parts[0].images.flatten(1), parts[1].images.flatten(1)).amin(1) > 0).all()


def test_shuffle_labels_permutes_the_training_labels():
    plain = training_set(TINY)
    shuffled = training_set(replace(TINY, shuffle_labels=True))
    assert torch.equal(plain.images, shuffled.images)
    assert not torch.equal(plain.labels, shuffled.labels)
    assert torch.equal(plain.labels.sort().values, shuffled.labels.sort().values)
    assert (plain.labels == shuffled.labels).float().mean() < 0.3


# ---- models -------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("channels", [1, 3])
def test_build_model_shapes(arch, channels):
    model = build_model(arch, channels, 4, 20)
    assert model(torch.rand(2, channels, 20, 20)).shape == (2, 4)
    kind = ShiftedSoftplus if arch == "smooth_mlp" else torch.nn.ReLU
    acts = [m for m in model.modules() if isinstance(m, kind)]
    assert len({id(r) for r in acts}) == len(acts) >= 1 and not any(getattr(r, "inplace", False) for r in acts)
    if arch != "smooth_mlp":  # one module per nonlinearity
        assert len(acts) >= 2


# ---- training steps -----------------------------------------------------------------------------
def test_random_shift_moves_each_image_by_at_most_two_pixels():
    x = torch.rand(6, 2, 10, 10)
    out = random_shift(x, 2, torch.Generator().manual_seed(0))
    padded = F.pad(x, (2, 2, 2, 2), mode="replicate")
    for i in range(6):
        crops = [padded[i, :, dy : dy + 10, dx : dx + 10] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i], c) for c in crops)
    assert not torch.equal(out, x)
    assert torch.equal(random_shift(x, 0, torch.Generator()), x)


def test_input_noise_is_a_fraction_of_each_samples_range():
    x = torch.zeros(2, 1, 200, 200)
    x[0, 0, 0, 0], x[1, 0, 0, 0] = 1.0, 0.5  # ranges 1 and 0.5
    noise = add_input_noise(x, 0.1, torch.Generator().manual_seed(0)) - x
    torch.testing.assert_close(noise.flatten(1).std(1), torch.tensor([0.1, 0.05]), rtol=0.02, atol=0)
    assert torch.equal(add_input_noise(x, 0.0, torch.Generator()), x)


def test_noisy_weight_gradient_is_the_mean_gradient_at_perturbed_weights():
    torch.manual_seed(0)
    model = build_model("mlp", 1, 3, 8)
    x, y = torch.rand(5, 1, 8, 8), torch.tensor([0, 1, 2, 0, 1])
    before = {k: v.clone() for k, v in model.state_dict().items()}

    noisy_weight_backward(model, x, y, 0.05, 3, torch.Generator().manual_seed(7))
    got = {k: p.grad.clone() for k, p in model.named_parameters()}
    assert _same_weights(before, model.state_dict())  # W itself is untouched

    # by hand: replay the same draws, perturb a copy, average the gradients
    gen, expected = torch.Generator().manual_seed(7), {k: torch.zeros_like(v) for k, v in got.items()}
    params = dict(model.named_parameters())
    for _ in range(3):
        copy = build_model("mlp", 1, 3, 8)
        with torch.no_grad():
            for name, p in copy.named_parameters():
                p.copy_(params[name] + 0.05 * torch.randn(p.shape, generator=gen))
        F.cross_entropy(copy(x), y).backward()
        for name, p in copy.named_parameters():
            expected[name] += p.grad / 3
    for k in got:
        torch.testing.assert_close(got[k], expected[k])

    # sigma = 0, one sample: exactly the plain gradient
    model.zero_grad()
    noisy_weight_backward(model, x, y, 0.0, 1, torch.Generator())
    zero = {k: p.grad.clone() for k, p in model.named_parameters()}
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    assert all(torch.equal(zero[k], p.grad) for k, p in model.named_parameters())


# ---- train_model ----------------------------------------------------------------------------------
def test_same_config_same_weights(tiny, tmp_path):
    again = train_model(TINY, cache_dir=tmp_path, progress=False)
    assert not again.from_cache and _same_weights(_weights(tiny), _weights(again))
    assert again.test_accuracy == tiny.test_accuracy
    other_seed = train_model(replace(TINY, seed=1), cache_dir=tmp_path, progress=False)
    assert not _same_weights(_weights(tiny), _weights(other_seed))


def test_cache_is_reused_without_training(tiny, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("trained although the model is cached")

    monkeypatch.setattr(cache_mod, "fit", no_training)
    cached = train_model(TINY, cache_dir=tiny.path.parent, progress=False)
    assert cached.from_cache and cached.path == tiny.path
    assert _same_weights(_weights(tiny), _weights(cached)) and not cached.model.training
    assert cached.test_accuracy == tiny.test_accuracy and cached.train_seconds == tiny.train_seconds
    meta = json.loads(tiny.path.with_suffix(".json").read_text())
    assert meta["config"]["split"] == [0, 8] and meta["test_accuracy"] == tiny.test_accuracy
    assert tiny.path.stem == config_key(TINY) and len(tiny.path.stem) == 40
    assert not list(tiny.path.parent.glob("*.tmp-*"))


def test_corrupt_or_partial_cache_is_not_reused(tiny, tmp_path):
    weights = tmp_path / tiny.path.name
    weights.write_bytes(b"not a torch file")
    tmp_path.joinpath(tiny.path.with_suffix(".json").name).write_text(tiny.path.with_suffix(".json").read_text())
    with pytest.warns(UserWarning, match="ignoring unusable cached model"):
        fresh = train_model(TINY, cache_dir=tmp_path, progress=False)
    assert not fresh.from_cache and _same_weights(_weights(tiny), _weights(fresh))
    assert train_model(TINY, cache_dir=tmp_path, progress=False).from_cache  # repaired on disk

    weights.with_suffix(".json").unlink()  # weights without their sidecar: an interrupted write
    assert not train_model(TINY, cache_dir=tmp_path, progress=False).from_cache


def test_noise_options_change_training(tiny, tmp_path):
    base = _weights(tiny)
    for option in ({"input_noise": 0.1}, {"weight_noise": 0.01, "weight_noise_samples": 2}, {"augment": True}):
        other = train_model(replace(TINY, **option), cache_dir=tmp_path, progress=False)
        assert not _same_weights(base, _weights(other)), option
        assert torch.isfinite(torch.cat([p.flatten() for p in other.model.parameters()])).all()


def test_zero_weight_noise_equals_plain_training(tiny, tmp_path):
    zero = train_model(replace(TINY, weight_noise=0.0, weight_noise_samples=3), cache_dir=tmp_path, progress=False)
    assert _same_weights(_weights(tiny), _weights(zero))


def test_digits_cnn_beats_chance_and_shuffled_labels_do_not(tmp_path):
    short = TrainConfig(dataset="digits", image_size=16, epochs=2, batch_size=32)
    assert train_model(short, cache_dir=tmp_path, progress=False).test_accuracy > 0.75  # chance: 0.1
    shuffled = train_model(replace(short, shuffle_labels=True), cache_dir=tmp_path, progress=False)
    assert shuffled.test_accuracy < 0.3


def test_progress_bar_reports_loss_and_accuracy(tmp_path, capsys):
    train_model(replace(TINY, split=(1, 8)), cache_dir=tmp_path, progress=True)
    err = capsys.readouterr().err
    assert "loss=" in err and "test_acc=" in err


# ---- settings -----------------------------------------------------------------------------------
def test_setting_configs():
    base = TrainConfig(epochs=3)
    dt = setting_configs("DT", "synthetic", 3, base)
    assert [c.split for c in dt] == [(0, 3), (1, 3), (2, 3)]
    assert all(replace(c, split=None) == replace(base, dataset="synthetic") for c in dt)
    dr = setting_configs("DR", "digits", 5, base)
    assert len(set(dr)) == 5 and dr[0] == base and all(c.split is None and c.arch == "cnn" for c in dr)
    assert {c.optimizer for c in dr} == {"adam", "sgd"} and {c.augment for c in dr} == {False, True}
    da = setting_configs("DA", "digits", 4, replace(base, arch="mlp"))
    assert [c.arch for c in da] == ["mlp", "cnn", "cnn_wide", "cnn_deep"]
    assert all(replace(c, arch="mlp") == replace(base, arch="mlp") for c in da)


def test_models_for_setting_dt(tmp_path):
    models = models_for_setting("DT", "digits", n_models=2, base=replace(TINY, split=None), cache_dir=tmp_path, progress=False)
    assert [m.config.split for m in models] == [(0, 2), (1, 2)]
    assert all(not m.model.training and 0 <= m.test_accuracy <= 1 for m in models)
    assert not _same_weights(_weights(models[0]), _weights(models[1]))


# ---- errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"arch": "vit"}, ValueError, "`arch` must be one of"),
        ({"dataset": "imagenet"}, ValueError, "`dataset` must be one of"),
        ({"dataset": "mnist", "image_size": 32}, ValueError, "`image_size` must be 28"),
        ({"lr_schedule": "cosine"}, ValueError, "`lr_schedule` must be one of"),
        ({"lr_schedule": "step"}, ValueError, "`lr_milestones` must be increasing epochs in"),
        ({"lr_schedule": "step", "lr_milestones": (10,)}, ValueError, "`lr_milestones` must be increasing epochs in"),
        ({"lr_milestones": (3,)}, ValueError, "`lr_milestones` applies to lr_schedule='step' only"),
        ({"lr_offset": 5}, ValueError, "`lr_offset` applies to lr_schedule='inverse_t' only"),
        ({"momentum": 1.0}, ValueError, r"`momentum` must be in \[0, 1\)"),
        ({"label_smoothing": -0.1}, ValueError, "`label_smoothing` must be a finite number >= 0"),
        ({"loss_scale": 0.0}, ValueError, "`loss_scale` must be > 0"),
        ({"lr_gamma": 1.0}, ValueError, r"`lr_gamma` must be in \(0, 1\)"),
        ({"fit_train_accuracy": 1.5}, ValueError, r"`fit_train_accuracy` must be None or in \(0, 1\]"),
        ({"label_seed": -1}, ValueError, "`label_seed` must be >= 0"),
        ({"optimizer": "rmsprop"}, ValueError, "`optimizer` must be one of"),
        ({"split": (2, 2)}, ValueError, r"`split` part index must be in \[0, 1\]"),
        ({"split": (0, 0)}, ValueError, r"`split\[1\] \(n_parts\)` must be >= 1"),
        ({"split": 3}, ValueError, r"`split` must be None or a pair"),
        ({"input_noise": -0.1}, ValueError, "`input_noise` must be a finite number >= 0"),
        ({"weight_noise": -1.0}, ValueError, "`weight_noise` must be a finite number >= 0"),
        ({"weight_noise_samples": 0}, ValueError, "`weight_noise_samples` must be >= 1"),
        ({"lr": 0.0}, ValueError, "`lr` must be > 0"),
        ({"epochs": 0}, ValueError, "`epochs` must be >= 1"),
        ({"augment": 1}, TypeError, "`augment` must be a bool"),
    ],
)
def test_bad_config(kwargs, error, match):
    with pytest.raises(error, match=match):
        TrainConfig(**kwargs)


def test_other_bad_inputs(tmp_path):
    with pytest.raises(TypeError, match="`config` must be a TrainConfig"):
        train_model({"arch": "cnn"}, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="`k` must be <= n=3"):
        disjoint_splits(3, 4)
    with pytest.raises(ValueError, match="`setting` must be one of"):
        models_for_setting("DX")
    with pytest.raises(ValueError, match="`n_models` must be <= 4 for setting 'DA'"):
        models_for_setting("DA", n_models=5)
    with pytest.raises(ValueError, match="`n_models` must be >= 2"):
        models_for_setting("DT", n_models=1)
    with pytest.raises(ValueError, match="`arch` must be one of"):
        build_model("vit", 1, 10, 32)
    assert TrainConfig(split=[1, 2]).split == (1, 2)  # lists (e.g. from JSON) become tuples
    assert config_key(TrainConfig(lr=1)) == config_key(TrainConfig(lr=1.0))
