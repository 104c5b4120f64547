import pytest
import torch
from torch import nn

from conftest import Linear, Quadratic, small_cnn
from smoothsal.execution.guard import preserve_model
from smoothsal.methods.gradient import GradientXInput, VanillaGradient, gradient_x_input, vanilla_gradient


def test_gradient_of_linear_model_is_its_weight_row():
    w = torch.tensor([[2.0, -1.0, 0.5], [0.0, 3.0, 1.0]])
    model = Linear(w)
    x = torch.randn(4, 3)
    torch.testing.assert_close(VanillaGradient(model).attribute(x, target=1), w[1].expand(4, 3))
    torch.testing.assert_close(GradientXInput(model).attribute(x, target=0), w[0] * x)


def test_per_sample_targets_and_default_prediction():
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    model = Linear(w)
    x = torch.tensor([[3.0, 1.0], [1.0, 3.0]])  # predicted classes 0 and 1
    torch.testing.assert_close(VanillaGradient(model).attribute(x), w)
    torch.testing.assert_close(VanillaGradient(model).attribute(x, target=[1, 0]), w.flip(0))
    torch.testing.assert_close(VanillaGradient(model).attribute(x, target=torch.tensor([1, 0])), w.flip(0))


def test_gradient_of_quadratic_is_closed_form():
    a = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    x = torch.tensor([[0.5, -2.0]])
    torch.testing.assert_close(vanilla_gradient(Quadratic(a), x, 0), x @ (a + a.T).T)


def test_batched_equals_per_sample():
    model = small_cnn()
    x = torch.rand(5, 3, 8, 8)
    batched = VanillaGradient(model).attribute(x, target=2)
    single = torch.cat([VanillaGradient(model).attribute(x[i : i + 1], target=2) for i in range(5)])
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(gradient_x_input(model, x, 2), batched * x, rtol=1e-5, atol=1e-7)


def test_inputs_and_parameter_grads_are_untouched():
    model = small_cnn()
    x = torch.rand(2, 3, 8, 8)
    x_copy = x.clone()
    VanillaGradient(model).attribute(x)
    assert torch.equal(x, x_copy)
    assert x.grad is None and not x.requires_grad
    assert all(p.grad is None for p in model.parameters())


def _snapshot(model: nn.Module):
    return (
        {k: v.clone() for k, v in model.state_dict().items()},
        [m.training for m in model.modules()],
        [getattr(m, "inplace", None) for m in model.modules()],
        [(len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks)) for m in model.modules()],
        ["forward" in m.__dict__ for m in model.modules()],
    )


def test_model_is_restored_also_when_method_raises():
    model = small_cnn().train()
    model[0].register_forward_hook(lambda *a: None)  # the user's own hook must survive
    before = _snapshot(model)

    class Leaky(VanillaGradient):
        def _attribute(self, inputs, target):
            for m in self.model.modules():
                if hasattr(m, "inplace"):
                    m.inplace = not m.inplace
                m.register_forward_hook(lambda *a: None)
                m.forward = lambda *a: None
            raise RuntimeError("midway")

    with pytest.warns(UserWarning, match="training mode"), pytest.raises(RuntimeError, match="midway"):
        Leaky(model).attribute(torch.rand(1, 3, 8, 8))
    after = _snapshot(model)
    assert all(torch.equal(before[0][k], after[0][k]) for k in before[0])
    assert before[1:] == after[1:]
    assert model.training


def test_training_model_is_explained_in_eval_mode():
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.9), nn.Linear(8, 2)).train()
    x = torch.rand(3, 4)
    with pytest.warns(UserWarning, match="model.eval"):
        a = VanillaGradient(model).attribute(x, target=0)
    with pytest.warns(UserWarning):
        b = VanillaGradient(model).attribute(x, target=0)
    torch.testing.assert_close(a, b)  # dropout off: deterministic
    assert model.training
    with preserve_model(model, warn_training=False):
        assert not model.training
    assert model.training


@pytest.mark.parametrize(
    ("inputs", "target", "error", "match"),
    [
        (torch.tensor([1.0, 2.0]), None, ValueError, "batch dimension"),
        (torch.tensor([[1.0, float("nan")]]), None, ValueError, "finite"),
        (torch.tensor([[1.0, float("inf")]]), None, ValueError, "finite"),
        (torch.tensor([[1, 2]]), None, TypeError, "floating-point"),
        (torch.rand(2, 2), 5, ValueError, r"target.*\[0, 1\]"),
        (torch.rand(2, 2), -1, ValueError, "target"),
        (torch.rand(2, 2), [0, 1, 0], ValueError, "one class per sample"),
        (torch.rand(2, 2), 0.5, TypeError, "target"),
        ([[1.0, 2.0]], None, TypeError, "torch.Tensor"),
    ],
)
def test_bad_inputs_raise_clear_errors(inputs, target, error, match):
    model = Linear(torch.eye(2))
    with pytest.raises(error, match=match):
        VanillaGradient(model).attribute(inputs, target=target)


def test_model_output_must_be_batch_by_classes():
    class Flat(nn.Module):
        def forward(self, x):
            return x.sum()

    with pytest.raises(ValueError, match=r"model output must have shape \[B, classes\]"):
        VanillaGradient(Flat().eval()).attribute(torch.rand(2, 3))
    with pytest.raises(TypeError, match="nn.Module"):
        VanillaGradient(lambda x: x)
