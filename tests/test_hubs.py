"""Hub model specs (torchvision:, timm:, hf:): preprocessing folded in, weights from the cache or a
file, never downloaded, clear errors; and the explain command on them."""

from __future__ import annotations

import os

import pytest
import torch

from smoothsal.models.hubs import load_hub_model, offline, parse_hub_spec
from smoothsal.models.zoo import LoadedModel, load_model


def _need(module: str) -> None:
    """Skip without ``module``; make torchvision importable first (timm and transformers import it)."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")
    from smoothsal.models.hubs import import_torchvision_quietly

    import_torchvision_quietly()



def _tv():
    _need("torchvision")
    from smoothsal.models.hubs import import_torchvision

    return import_torchvision()


def test_parse_hub_spec():
    assert parse_hub_spec("timm:vit_small_patch16_224") == ("timm", "vit_small_patch16_224")
    assert parse_hub_spec("hf:google/vit-base-patch16-224") == ("hf", "google/vit-base-patch16-224")
    assert parse_hub_spec("torchvision:resnet50") == ("torchvision", "resnet50")
    assert parse_hub_spec("lite0") is None and parse_hub_spec("mypkg.models:net") is None
    with pytest.raises(ValueError, match="names no model"):
        parse_hub_spec("timm:")


def test_offline_blocks_downloads_and_restores_the_environment():
    import torch.hub

    before = os.environ.get("HF_HUB_OFFLINE")
    fetch = torch.hub.download_url_to_file
    with offline():
        assert os.environ["HF_HUB_OFFLINE"] == "1"
        with pytest.raises(RuntimeError, match="refusing to download"):
            torch.hub.load_state_dict_from_url("https://example.invalid/w.pth", model_dir="/nonexistent-dir")
    assert os.environ.get("HF_HUB_OFFLINE") == before and torch.hub.download_url_to_file is fetch


def test_torchvision_preprocessing_class_names_and_weight_sources(tmp_path, monkeypatch):
    tv = _tv()
    model = load_hub_model("torchvision:resnet18", random_weights=True)
    meta = tv.models.ResNet18_Weights.DEFAULT
    assert model.class_names == meta.meta["categories"] and model.class_names[0] == "tench"
    pre = model.preprocessing
    assert (pre["image_size"], pre["resize_size"]) == (224, 256)
    assert pre["mean"] == pytest.approx([0.485, 0.456, 0.406]) and pre["std"] == pytest.approx([0.229, 0.224, 0.225])
    # the same seed builds the same untrained model (resumable results), and the global RNG is untouched
    state = torch.random.get_rng_state()
    again = load_hub_model("torchvision:resnet18", random_weights=True)
    assert torch.equal(state, torch.random.get_rng_state())
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(x)
        torch.testing.assert_close(out, again(x))
        # inputs in [0, 1]: the model is net((x - mean) / std)
        mean, std = torch.tensor(pre["mean"]).view(1, 3, 1, 1), torch.tensor(pre["std"]).view(1, 3, 1, 1)
        torch.testing.assert_close(out, model.net((x - mean) / std))
    assert not any(p.requires_grad for p in model.parameters()) and not model.training

    # a state-dict file
    net = tv.models.resnet18(num_classes=1000)
    torch.save(net.state_dict(), tmp_path / "r18.pth")
    from_file = load_model("torchvision:resnet18", weights=str(tmp_path / "r18.pth"))
    assert isinstance(from_file, LoadedModel) and from_file.image_size == 224
    with torch.no_grad():
        torch.testing.assert_close(from_file.model.net(x), net.eval()(x))
    # a fine-tuned head with another number of classes: built to fit, no ImageNet names
    small = tv.models.resnet18(num_classes=7)
    torch.save({"state_dict": small.state_dict()}, tmp_path / "r18_7.pth")
    seven = load_model("torchvision:resnet18", weights=str(tmp_path / "r18_7.pth"))
    assert seven.class_names is None and seven.model(x).shape == (2, 7)
    with pytest.raises(ValueError, match="does not fit"):
        load_model("torchvision:resnet34", weights=str(tmp_path / "r18.pth"))

    # the local cache: torch hub's checkpoints folder, under the weights' own file name
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError, match=r"never downloads.*get_model\('resnet18'.*--random-weights"):
        load_model("torchvision:resnet18")
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(net.state_dict(), tmp_path / "hub" / "checkpoints" / os.path.basename(meta.url))
    cached = load_model("torchvision:resnet18")
    with torch.no_grad():
        torch.testing.assert_close(cached.model.net(x), net(x))


def test_timm_preprocessing_from_pretrained_cfg_and_safetensors_weights(tmp_path):
    _need("timm")
    import timm
    safetensors = pytest.importorskip("safetensors.torch")
    kw = {"img_size": 32, "patch_size": 8, "depth": 1}
    model = load_hub_model("timm:vit_tiny_patch16_224", random_weights=True, **kw)
    cfg = timm.data.resolve_data_config({}, model=model.net)  # states the pretrained 224 px
    pre = model.preprocessing
    assert pre["mean"] == pytest.approx(list(cfg["mean"])) and pre["std"] == pytest.approx(list(cfg["std"]))
    assert cfg["input_size"][-1] == 224 and pre["image_size"] == 32  # img_size=32 overrides it
    assert pre["crop_pct"] == cfg["crop_pct"] and pre["interpolation"] == cfg["interpolation"]
    assert model.class_names is not None and len(model.class_names) == 1000 and model.class_names[0].startswith("tench")
    net = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=3, **kw).eval()
    safetensors.save_file(net.state_dict(), str(tmp_path / "vit.safetensors"))
    loaded = load_hub_model("timm:vit_tiny_patch16_224", weights=tmp_path / "vit.safetensors", **kw)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.net(x), net(x))
    assert loaded.class_names is None  # 3 classes: not an ImageNet head
    with pytest.raises(ValueError, match="timm has no model"):
        load_hub_model("timm:no_such_net", random_weights=True)


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    _need("transformers")
    import transformers
    from smoothsal.models.hubs import import_torchvision_quietly

    import_torchvision_quietly()
    folder = tmp_path_factory.mktemp("hf_vit")
    torch.manual_seed(1)  # not the loader's RANDOM_WEIGHTS_SEED, so random_weights=True differs from it
    cfg = transformers.ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1,
                                 num_attention_heads=2, intermediate_size=32, num_labels=3,
                                 id2label={0: "cat", 1: "cup", 2: "rocket"}, label2id={"cat": 0, "cup": 1, "rocket": 2})  # fmt: skip
    net = transformers.ViTForImageClassification(cfg).eval()
    net.save_pretrained(folder)
    transformers.ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=[0.4, 0.5, 0.6],
                                   image_std=[0.2, 0.25, 0.3]).save_pretrained(folder)  # fmt: skip
    return folder, net


def test_hf_local_folder_with_its_image_processor(hf_folder, tmp_path):
    folder, net = hf_folder
    loaded = load_model(f"hf:{folder}")
    assert loaded.image_size == 32 and loaded.class_names == ["cat", "cup", "rocket"]
    pre = loaded.model.preprocessing
    assert pre["mean"] == pytest.approx([0.4, 0.5, 0.6]) and pre["std"] == pytest.approx([0.2, 0.25, 0.3])
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    mean, std = torch.tensor([0.4, 0.5, 0.6]).view(1, 3, 1, 1), torch.tensor([0.2, 0.25, 0.3]).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), net(pixel_values=(x - mean) / std).logits)
        untrained = load_model(f"hf:{folder}", random_weights=True).model(x)
    assert not torch.allclose(untrained, loaded.model(x))
    # weights missing from the folder: the error says how to get them
    (tmp_path / "cfg_only").mkdir()
    (tmp_path / "cfg_only" / "config.json").write_text((folder / "config.json").read_text())
    with pytest.raises(FileNotFoundError, match="never downloads"):
        load_model(f"hf:{tmp_path / 'cfg_only'}")
    with pytest.raises(FileNotFoundError, match=r"not even its config.json is cached.*from_pretrained"):
        load_model("hf:someone/no-such-vit")


def test_weights_options_are_checked():
    with pytest.raises(ValueError, match="exclude each other"):
        load_model("torchvision:resnet18", weights="x.pth", random_weights=True)
    with pytest.raises(ValueError, match="hub specs"):
        load_model("lite0", random_weights=True)
    from smoothsal.studies.explain.config import ExplainConfig

    with pytest.raises(ValueError, match="hub models"):
        ExplainConfig(images=("chelsea",), model="lite0", random_weights=True)
    with pytest.raises(FileNotFoundError, match="`weights`"):
        ExplainConfig(images=("chelsea",), model="timm:vit_small_patch16_224", weights="/no/such.pth")
    a = ExplainConfig(images=("chelsea",), model="timm:vit_small_patch16_224", random_weights=True)
    b = ExplainConfig(images=("chelsea",), model="timm:vit_small_patch16_224")
    assert a.to_hash(0) != b.to_hash(0)  # untrained maps never resume as pretrained ones


def test_cli_explain_on_an_hf_folder(hf_folder, tmp_path):
    pytest.importorskip("typer")
    from conftest import study_cli_app
    from typer.testing import CliRunner

    from smoothsal.studies.explain.command import register_cli

    cli_app = study_cli_app(register_cli)

    folder, _ = hf_folder
    result = CliRunner().invoke(cli_app, ["explain", "chelsea", "--model", f"hf:{folder}", "--methods", "grad,gradcam",
                                          "--samples", "2", "--no-extras", "--no-progress", "--out", str(tmp_path)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "grid.png").is_file()
    import numpy as np

    maps = np.load(tmp_path / "maps.npz")
    cams = [k for k in maps.files if "gradcam" in k]
    assert cams and all(maps[k].shape[-2:] == (32, 32) for k in cams)
    missing = CliRunner().invoke(cli_app, ["explain", "chelsea", "--model", "hf:someone/no-such-vit", "--out", str(tmp_path / "m")])
    assert missing.exit_code == 2 and "never downloads" in missing.output


def test_missing_hub_packages_say_which_extra_to_install():
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(
        """
        import sys
        class _Blocker:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {"torchvision", "timm", "transformers"}:
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        sys.meta_path.insert(0, _Blocker())
        from smoothsal._core.extras import MissingExtraError
        from smoothsal.models.zoo import load_model
        for spec, extra in [("torchvision:resnet18", "torchvision"), ("timm:vit_small_patch16_224", "timm"),
                            ("hf:google/vit-base-patch16-224", "hf")]:
            try:
                load_model(spec, random_weights=True)
            except MissingExtraError as err:
                assert f'smoothsal[{extra}]' in str(err), err
            else:
                raise AssertionError(spec)
        print("ok")
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
