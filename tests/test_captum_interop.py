"""Captum interop (smoothsal.interop): Smooth of a Captum object, metrics on Captum's outputs.

Cross-checks against smoothsal's own methods, which the rest of the suite checks on analytic
models: the same noise (one seed) through Captum's Saliency / IntegratedGradients and through
smoothsal's VanillaGradient / IntegratedGradients must give the same maps.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from conftest import Linear, small_cnn
import smoothsal as ss
from smoothsal import metrics as M
from smoothsal.interop import CaptumMethod, as_attributions, from_captum, rebind_captum
from smoothsal.methods.base import Attribution

try:
    import captum.attr as ca
except ImportError:  # the library never needs it; these tests do
    ca = None

needs_captum = pytest.mark.skipif(ca is None, reason='captum is not installed: pip install "smoothsal[captum]"')


class AbsGradient(Attribution):
    """|∂S_c/∂x|: what Captum's Saliency returns by default (abs=True)."""

    def _attribute(self, inputs, target):
        grad, _, _ = self._score_and_grad(inputs, target)
        return grad.abs()


def smooth_net(seed: int = 0) -> nn.Module:
    """A smooth (tanh/softplus) conv net: IG's quadrature agrees to float precision across libraries."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, 4, 3, padding=1), nn.Softplus(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 3),
    ).eval()


SMOOTH = dict(noise_level=0.2, n_samples=8, seed=3, batch_size=6)


# ---- Smooth ------------------------------------------------------------------------------------------
@needs_captum
def test_smooth_of_captum_saliency_is_smoothgrad_for_the_same_seed():
    model = small_cnn()
    x = torch.rand(3, 3, 8, 8)
    expected = ss.SmoothGrad(model, **SMOOTH).attribute(x)
    # Captum's Saliency is |gradient| by default; SmoothGrad averages the signed gradient
    signed = ss.Smooth(from_captum(ca.Saliency(model), abs=False), **SMOOTH).attribute(x)
    torch.testing.assert_close(signed, expected)
    bare = ss.Smooth(ca.Saliency(model), **SMOOTH).attribute(x)
    torch.testing.assert_close(bare, ss.Smooth(AbsGradient(model), **SMOOTH).attribute(x))
    assert not torch.allclose(bare, expected)  # the two conventions really differ here


@needs_captum
def test_smooth_of_captum_saliency_on_a_linear_model_is_its_weight_row():
    w = torch.tensor([[2.0, -1.0, 0.5, 3.0], [-4.0, 1.0, -1.0, 0.0]])
    model = Linear(w)
    x = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0], [-1.0, 0.0, 0.0, 0.0]])  # predicted: 0, 0, 1
    got = ss.Smooth(ca.Saliency(model), noise_level=0.3, n_samples=5).attribute(x)  # target=None
    torch.testing.assert_close(got, w[[0, 0, 1]].abs())
    got = ss.Smooth(from_captum(ca.Saliency(model), abs=False), noise_level=0.3, n_samples=5).attribute(x, target=1)
    torch.testing.assert_close(got, w[1].expand(3, 4))


@needs_captum
@pytest.mark.parametrize("rule", ["gausslegendre", "riemann_left", "riemann_trapezoid"])
def test_smooth_of_captum_ig_equals_smoothsal_ig(rule):
    model = smooth_net()
    x = torch.rand(2, 3, 6, 6)
    t = torch.tensor([0, 2])
    n = 12
    ours = ss.IntegratedGradients(model, steps=n, baseline="black", rule=rule)
    theirs = from_captum(ca.IntegratedGradients(model), n_steps=n, method=rule)  # baselines: zeros
    assert theirs.rows_per_input == n and theirs.has_convergence_delta
    # Captum's trapezoid rule weighs its n nodes on linspace(0, 1, n) by 1/n (ends halved): the
    # weights sum to (n - 1)/n, not 1, so its map is smoothsal's (weights 1/(n - 1)) times (n - 1)/n
    scale = (n - 1) / n if rule == "riemann_trapezoid" else 1.0
    torch.testing.assert_close(theirs.attribute(x, t), scale * ours.attribute(x, t), rtol=1e-4, atol=1e-6)
    kw = dict(noise_level=0.15, n_samples=6, seed=1, batch_size=2 * n)  # 2 noisy inputs per model call
    torch.testing.assert_close(ss.Smooth(theirs, **kw).attribute(x, t), scale * ss.Smooth(ours, **kw).attribute(x, t),
                               rtol=1e-4, atol=1e-6)
    # Captum's convergence delta becomes smoothsal's ConvergenceDelta (same sign convention)
    a_ours, d_ours = ours.attribute_with_delta(x, t)
    _, d_theirs = theirs.attribute_with_delta(x, t)
    torch.testing.assert_close(d_theirs.expected, d_ours.expected, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(d_theirs.delta, scale * a_ours.flatten(1).sum(1) - d_ours.expected, rtol=1e-3, atol=1e-6)


@needs_captum
def test_captum_model_is_found_restored_and_inputs_untouched():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(inplace=True), nn.Dropout(0.5), nn.Linear(8, 3)).train()
    x = torch.rand(5, 4)
    x0 = x.clone()
    sal = ca.Saliency(model)
    sm = ss.Smooth(sal, noise_level=0.1, n_samples=4)
    assert sm.model is model and isinstance(sm.method, CaptumMethod)
    with pytest.warns(UserWarning, match="training mode"):
        a = sm.attribute(x)
    with pytest.warns(UserWarning, match="training mode"):
        b = sm.attribute(x)
    torch.testing.assert_close(a, b)  # explained in eval mode: dropout off, the map is not random
    assert model.training and model[1].inplace and not model._forward_hooks
    assert torch.equal(x, x0) and not x.requires_grad and x.grad is None
    # a bound method as forward_func is found too; a plain function leaves the target to the caller
    assert from_captum(ca.Saliency(model.forward)).model is model
    fn = from_captum(ca.Saliency(lambda inp: model(inp)))
    assert fn.model is None
    with pytest.raises(ValueError, match="`target` must be given"):
        ss.Smooth(fn, n_samples=2).attribute(x)


@needs_captum
def test_captum_bad_arguments_are_named():
    model = small_cnn()
    with pytest.raises(TypeError, match="`target`"):
        from_captum(ca.Saliency(model), target=0)
    with pytest.raises(TypeError, match="Captum attribution object"):
        CaptumMethod(ss.VanillaGradient(model))
    with pytest.raises(TypeError, match="has no convergence delta"):
        from_captum(ca.Saliency(model)).attribute_with_delta(torch.rand(1, 3, 8, 8))


# ---- metrics --------------------------------------------------------------------------------------------
@needs_captum
@pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients")
def test_metrics_take_captum_tuples_as_tensors():
    model = small_cnn()
    x = torch.rand(2, 3, 12, 12)
    t = torch.tensor([0, 1])
    a = ca.Saliency(model).attribute((x.clone(),), target=t)  # a 1-tuple, as Captum returns for tuple inputs
    assert isinstance(a, tuple) and len(a) == 1
    g = a[0]
    b = ss.VanillaGradient(model).attribute(x, t)
    masks = torch.zeros(2, 12, 12, dtype=torch.bool)
    masks[:, 2:6, 2:6] = True
    torch.testing.assert_close(M.l2_distance(a, (b,)), M.l2_distance(g, b))
    torch.testing.assert_close(M.spearman(a, b), M.spearman(g, b))
    torch.testing.assert_close(M.pointing_game(a, masks), M.pointing_game(g, masks))
    torch.testing.assert_close(M.sparseness(attributions=a), M.sparseness(g))
    torch.testing.assert_close(M.deletion_auc(model, x, a, t, steps=4), M.deletion_auc(model, x, g, t, steps=4))
    torch.testing.assert_close(M.stability_from_maps([a, (b,)], k=10).per_input, M.stability_from_maps([g, b], k=10).per_input)
    with pytest.raises(ValueError, match="`a` must be one tensor"):
        M.l2_distance((g, g), b)
    assert as_attributions([g]) is g


@needs_captum
def test_comparison_metrics_rebuild_a_captum_object_for_each_model():
    models = [small_cnn(seed) for seed in range(3)]
    x = torch.rand(4, 3, 12, 12)
    sal = ca.Saliency(models[0])
    expected = M.stability_error(ss.VanillaGradient, models, x, k=10)
    got = M.stability_error(from_captum(sal, abs=False), models, x, k=10)
    assert got.mean == pytest.approx(expected.mean, rel=1e-6)
    torch.testing.assert_close(got.per_input, expected.per_input)
    assert got.ssim == pytest.approx(expected.ssim, rel=1e-6)
    # Captum's default abs=True, given as an object or as the class (a factory model -> method)
    absolute = M.stability_error(AbsGradient, models, x, k=10).mean
    assert M.stability_error(sal, models, x, k=10).mean == pytest.approx(absolute, rel=1e-6)
    assert M.stability_error(ca.Saliency, models, x, k=10).mean == pytest.approx(absolute, rel=1e-6)
    assert absolute != pytest.approx(expected.mean, rel=1e-3)
    assert sal.forward_func is models[0]  # the user's object is not changed by the rebuilding
    # fidelity on a model the Captum object was NOT built on: it is rebuilt for models[2]
    f_ours = M.fidelity_error(ss.VanillaGradient, models[2], x, noise_level=0.2, n_samples=4)
    f_captum = M.fidelity_error(from_captum(sal, abs=False), models[2], x, noise_level=0.2, n_samples=4)
    assert f_captum.mean == pytest.approx(f_ours.mean, rel=1e-6)


@needs_captum
def test_sanity_check_takes_a_captum_ig():
    model = smooth_net()
    x = torch.rand(2, 3, 12, 12)
    ours = M.model_parameter_randomization(lambda m: ss.IntegratedGradients(m, steps=8), model, x)
    theirs = M.model_parameter_randomization(from_captum(ca.IntegratedGradients(model), n_steps=8), model, x)
    assert theirs.layers == ours.layers
    torch.testing.assert_close(theirs.spearman_abs, ours.spearman_abs, rtol=1e-3, atol=1e-4)


@needs_captum
def test_rebind_replaces_layers_by_name_and_refuses_plain_functions():
    m0, m1 = small_cnn(0), small_cnn(1)
    x = torch.rand(2, 3, 8, 8)
    cam = ca.LayerGradCam(m0, m0[2])
    rebuilt = rebind_captum(cam, m1)
    assert rebuilt.forward_func is m1 and rebuilt.layer is m1[2] and cam.layer is m0[2]
    torch.testing.assert_close(from_captum(rebuilt).attribute(x, 0), ca.LayerGradCam(m1, m1[2]).attribute(x, target=0))
    tunnel = rebind_captum(ca.NoiseTunnel(ca.Saliency(m0)), m1)
    assert tunnel.attribution_method.forward_func is m1
    with pytest.raises(TypeError, match="factory"):
        rebind_captum(ca.Saliency(lambda inp: m0(inp)), m1)


@needs_captum
def test_sensitivity_metrics_take_a_captum_object():
    model = small_cnn()
    x = torch.rand(2, 3, 8, 8)
    ours = M.max_sensitivity(ss.VanillaGradient(model), x, n_samples=3)
    theirs = M.max_sensitivity(from_captum(ca.Saliency(model), abs=False), x, n_samples=3)
    torch.testing.assert_close(theirs, ours)
    torch.testing.assert_close(M.max_sensitivity(ca.Saliency(model), x, n_samples=3),
                               M.max_sensitivity(AbsGradient(model), x, n_samples=3))
    torch.testing.assert_close(M.attribution_maps(ca.Saliency(model), x, torch.tensor([0, 1])),
                               AbsGradient(model).attribute(x, [0, 1]))


# ---- never required -----------------------------------------------------------------------------------
def test_library_runs_without_captum_and_says_what_to_install():
    code = textwrap.dedent(
        """
        import sys

        class _Blocker:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "captum":
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                return None

        sys.meta_path.insert(0, _Blocker())
        import torch
        import smoothsal as ss
        from smoothsal._core.extras import MissingExtraError

        model = torch.nn.Linear(4, 3).eval()
        x = torch.rand(2, 4)
        sg = ss.SmoothGrad(model, n_samples=3).attribute(x, 0)
        assert ss.metrics.stability_error(ss.VanillaGradient, [model, model], x).mean == 0.0
        assert ss.metrics.l2_distance((sg,), sg).abs().max() == 0.0
        try:
            ss.interop.from_captum(object())
        except MissingExtraError as err:
            print(err)
        assert "captum" not in sys.modules
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == (
        'captum is not installed: pip install "smoothsal[captum]" (or pip install captum) '
        "(needed by smoothsal.interop.from_captum)"
    )
