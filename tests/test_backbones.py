"""The packaged ImageNet EfficientNet-Lite0/1/2 weights load into timm by the explicit key mapping; bad weights fail
with a message naming the params key."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import timm
import torch
import yaml
from PIL import Image
from safetensors.torch import save_file
from sklearn.datasets import load_sample_image
from timm.data import ImageNetInfo

from conftest import ROOT, tiny_weights
from pretraining_gap.config import Backbone
from pretraining_gap.grid import ParamsError
from pretraining_gap.training import backbones

BUILDINGS = {"palace", "monastery", "church", "castle", "bell cote", "stupa", "mosque", "boathouse"}
# flower.jpg is a pompon dahlia, a class ImageNet lacks: Lite0 calls it a daisy, Lite1 and Lite2 a honeycomb
# (its cells of petals); a random init says neither.
FLOWER = {"daisy", "honeycomb"}
CLOTHES = {"military uniform", "suit", "Windsor tie", "bow tie", "academic gown", "mortarboard"}


def sample_image(name: str) -> Image.Image:
    """scikit-learn's china.jpg and flower.jpg, or matplotlib's grace_hopper.jpg (the officer in uniform)."""
    if name == "grace_hopper.jpg":
        return Image.open(Path(matplotlib.get_data_path()) / "sample_data" / name).convert("RGB")
    return Image.fromarray(load_sample_image(name))


def imagenet_top3(model: torch.nn.Module, name: str, resolution: int, crop: float = 0.875) -> list[str]:
    """Resize the short side to resolution / crop, centre-crop, normalise as the checkpoint expects."""
    image = sample_image(name)
    scale = resolution / crop / min(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC)
    left, top = (image.width - resolution) // 2, (image.height - resolution) // 2
    image = image.crop((left, top, left + resolution, top + resolution))
    mean, std = backbones.normalisation(model)
    x = (
        torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255 - torch.tensor(mean)[:, None, None]
    ) / torch.tensor(std)[:, None, None]
    with torch.no_grad():
        top = model.eval()(x[None])[0].topk(3).indices
    info = ImageNetInfo()
    return [info.index_to_description(int(i)).split(",")[0] for i in top]


@pytest.fixture(scope="module")
def lite0():
    return backbones.create(
        Backbone(model="tf_efficientnet_lite0", weights="package"), 1000, pretrained=True, seed=0
    )


@pytest.mark.parametrize("model_name", sorted(backbones.PACKAGED))
def test_mapping_covers_every_key_exactly(model_name):
    model = backbones.create(Backbone(model=model_name, weights="package"), 1000, pretrained=False, seed=0)
    packaged = torch.load(backbones.packaged_weights_path(model_name), map_location="cpu")
    renamed = backbones.packaged_to_timm(packaged, model)
    assert set(renamed) == set(model.state_dict())
    assert all(renamed[k].shape == v.shape for k, v in model.state_dict().items())


def test_china_is_a_building_and_flower_a_daisy(lite0):
    assert BUILDINGS & set(imagenet_top3(lite0, "china.jpg", 224))
    assert "daisy" in imagenet_top3(lite0, "flower.jpg", 224)


def test_random_init_does_not_know_imagenet():
    """The control: without the mapping's weights the same test fails, so it measures the load."""
    scratch = backbones.create(
        Backbone(model="tf_efficientnet_lite0", weights="package"), 1000, pretrained=False, seed=0
    )
    assert "daisy" not in imagenet_top3(scratch, "flower.jpg", 224)


def test_new_head_has_the_target_classes_and_keeps_the_backbone():
    model = backbones.create(
        Backbone(model="tf_efficientnet_lite0", weights="package"), 10, pretrained=True, seed=0
    )
    packaged = torch.load(backbones.packaged_weights_path("tf_efficientnet_lite0"), map_location="cpu")
    assert model.get_classifier().out_features == 10
    assert torch.equal(model.conv_stem.weight, packaged["_conv_stem.weight"])


@pytest.mark.parametrize("model_name", ["tf_efficientnet_lite1", "tf_efficientnet_lite2"])
def test_lite1_and_lite2_know_imagenet_at_their_own_resolution(model_name):
    """Each at the input size and crop of its pretrained config (Lite1: 240 px / 0.882, Lite2: 260 px / 0.89)."""
    model = backbones.create(Backbone(model=model_name, weights="package"), 1000, pretrained=True, seed=0)
    resolution, crop = model.pretrained_cfg["input_size"][-1], model.pretrained_cfg["crop_pct"]
    assert BUILDINGS & set(imagenet_top3(model, "china.jpg", resolution, crop))
    assert FLOWER & set(imagenet_top3(model, "flower.jpg", resolution, crop))
    assert CLOTHES & set(imagenet_top3(model, "grace_hopper.jpg", resolution, crop))
    scratch = backbones.create(Backbone(model=model_name, weights="package"), 1000, pretrained=False, seed=0)
    assert not FLOWER & set(imagenet_top3(scratch, "flower.jpg", resolution, crop))


def test_an_unknown_timm_model_suggests_close_names():
    with pytest.raises(
        ParamsError,
        match=r"timm has no model 'tf_efficientnet_lite7'.*did you mean.*"
        r"tf_efficientnet_lite[0-4]",
    ) as error:
        backbones.check("small", Backbone(model="tf_efficientnet_lite7", weights="package"))
    assert error.value.key == "backbones.small.model"


def test_package_weights_exist_only_for_lite0_to_lite2():
    with pytest.raises(ParamsError, match=r"no packaged weights for resnet18.*Fix:") as error:
        backbones.check("r18", Backbone(model="resnet18", weights="package"))
    assert error.value.key == "backbones.r18.weights"
    backbones.check("lite2", Backbone(model="tf_efficientnet_lite2", weights="package"))


def test_a_weights_file_for_another_architecture_names_the_mismatching_keys(tmp_path):
    weights = tiny_weights(tmp_path / "tiny.safetensors")
    backbones.check("tiny", Backbone(model="test_efficientnet", weights=str(weights)))
    with pytest.raises(
        ParamsError,
        match=r"does not fit tf_efficientnet_lite0: missing \d+ \(.*\), unexpected "
        r"\d+.*other shape \d+",
    ) as error:
        backbones.check("mine", Backbone(model="tf_efficientnet_lite0", weights=str(weights)))
    assert error.value.key == "backbones.mine.weights"


def test_a_missing_or_unreadable_weights_file_is_named(tmp_path):
    with pytest.raises(ParamsError, match=r"weights file .*absent\.pth not found"):
        backbones.check("mine", Backbone(model="test_efficientnet", weights=str(tmp_path / "absent.pth")))
    (tmp_path / "broken.safetensors").write_bytes(b"not a state dict")
    with pytest.raises(ParamsError, match=r"cannot read .*broken\.safetensors") as error:
        backbones.check(
            "mine", Backbone(model="test_efficientnet", weights=str(tmp_path / "broken.safetensors"))
        )
    assert error.value.key == "backbones.mine.weights"


def test_a_file_missing_one_layer_fails_with_that_layer(tmp_path):
    state = timm.create_model("test_efficientnet").state_dict()
    del state["conv_head.weight"]
    save_file(state, str(tmp_path / "partial.safetensors"))
    with pytest.raises(
        ParamsError, match=r"missing 1 \(conv_head\.weight\), unexpected 0 \(\), other shape 0"
    ):
        backbones.check(
            "mine", Backbone(model="test_efficientnet", weights=str(tmp_path / "partial.safetensors"))
        )


def test_hub_names_are_checked_against_timm_pretrained_tags_before_any_download():
    with pytest.raises(ParamsError, match=r"no hub weights for resnet50.zz_in1k.*resnet50\.a1_in1k") as error:
        backbones.check("r50", Backbone(model="resnet50.zz_in1k", weights="hub"))
    assert error.value.key == "backbones.r50.weights"


HUB_PARAMS = {
    "study": {"name": "s", "datasets": ["digits"], "backbones": ["hubby"], "regimes": ["finetune"]},
    "datasets": {
        "digits": {"source": "sklearn_digits", "resolution": 8, "val_per_class": 1, "test_per_class": 1}
    },
    "backbones": {"hubby": {"model": "test_efficientnet.r160_in1k", "weights": "hub"}},
}


def test_hub_weights_without_a_network_stop_the_first_stage_at_once_with_the_key_and_the_fix(tmp_path):
    """HF_HUB_OFFLINE=1 and an empty cache: prepare, which checks every backbone, ends in one line (without the
    hub's minute of retries), naming the key and two fixes that work offline."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for block, values in HUB_PARAMS.items():
        params[block] = {**params[block], **values} if block == "study" else values
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "stages" / "prepare.py"), "digits", "--out", "digits.npz"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr and "Retry" not in done.stderr
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "error: params.yaml: backbones.hubby.weights: the hub weights of test_efficientnet.r160_in1k "
            "(timm/test_efficientnet.r160_in1k) are not in the local cache and the hub cannot be reached "
            "(HF_HUB_OFFLINE is set). Fix: set weights: to a local .safetensors / .pth file, or download the hub "
            f"weights once with a network (into the Hugging Face cache, {tmp_path / 'hf' / 'hub'})"
        )
    )
    assert not (tmp_path / "digits.npz").exists()


NETWORK_OFF = """
import sys
from pathlib import Path
import timm, torch
from pydantic import TypeAdapter
from safetensors.torch import save_file
from pretraining_gap import config
from pretraining_gap.data import datasets
from pretraining_gap.grid import ParamsError
from pretraining_gap.training import backbones

flowers = {"source": "torchvision", "name": "Flowers102", "root": sys.argv[2], "download": True}
flowers.update(resolution=8, val_per_class=1, test_per_class=1)
try:
    datasets.prepare("flowers", TypeAdapter(config.Dataset).validate_python(flowers), sizes=[1])
except ParamsError as error:
    print("refused:", error)
cfg = config.Backbone(model="test_efficientnet.r160_in1k", weights="hub")
try:
    backbones.check("hubby", cfg)
except ParamsError as error:
    print("refused:", error)
# the cache as a download leaves it: refs/main names the snapshot that holds the file
repo = Path(sys.argv[1]) / "hub" / "models--timm--test_efficientnet.r160_in1k"
(repo / "refs").mkdir(parents=True)
(repo / "refs" / "main").write_text("0" * 40)
(repo / "snapshots" / ("0" * 40)).mkdir(parents=True)
torch.manual_seed(7)
weights = timm.create_model("test_efficientnet").state_dict()
save_file(weights, str(repo / "snapshots" / ("0" * 40) / "model.safetensors"))
backbones.check("hubby", cfg)
model = backbones.create(cfg, 5, pretrained=True, seed=0)
print("loaded:", torch.equal(model.conv_stem.weight, weights["conv_stem.weight"]), model.num_classes)
"""


def test_without_a_network_hub_weights_and_a_dataset_download_fail_fast_and_a_warm_cache_needs_none(tmp_path):
    """The network forced off by a proxy that refuses every connection (nothing leaves the machine)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HOME": str(tmp_path / "hf")}
    env.update(HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9", HF_HUB_OFFLINE="0")
    done = subprocess.run(
        [sys.executable, "-c", NETWORK_OFF, str(tmp_path / "hf"), str(tmp_path / "torchvision")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    download, hub, loaded = done.stdout.strip().splitlines()
    assert download.startswith("refused: params.yaml: datasets.flowers.root: Flowers102 not found under ")
    assert download.endswith(
        "Fix: the download needs a network: run once where there is one, or copy the dataset under root"
    )
    assert hub.startswith("refused: params.yaml: backbones.hubby.weights: the hub weights of ")
    assert "the hub cannot be reached" in hub and "Retry" not in done.stderr
    assert loaded == "loaded: True 5"


@pytest.mark.parametrize("prefix", ["model.", "module.", "model.backbone."])
def test_a_state_dict_saved_from_a_wrapped_model_loads_without_its_prefix(tmp_path, caplog, prefix):
    """PyTorch Lightning saves `model.`-prefixed keys under `state_dict`, DataParallel `module.` ones."""
    torch.manual_seed(0)
    state = timm.create_model("test_efficientnet").state_dict()
    torch.save(
        {"state_dict": {prefix + k: v for k, v in state.items()}, "epoch": 3}, tmp_path / "wrapped.pth"
    )
    cfg = Backbone(model="test_efficientnet", weights=str(tmp_path / "wrapped.pth"))
    with caplog.at_level(logging.INFO):
        backbones.check("mine", cfg)
    model = backbones.create(cfg, 1000, pretrained=True, seed=1)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    if prefix != "module.":  # timm strips that one itself
        assert f"every key started with {prefix!r} (a wrapped model's state dict): stripped" in caplog.text


def test_a_prefix_that_does_not_make_the_keys_fit_is_named(tmp_path):
    other = timm.create_model("test_resnet").state_dict()
    save_file({f"model.{k}": v for k, v in other.items()}, str(tmp_path / "resnet.safetensors"))
    with pytest.raises(
        ParamsError, match=r"every key starts with 'model\.' \(saved from a wrapper\?\), and wi"
    ):
        backbones.check(
            "mine", Backbone(model="test_efficientnet", weights=str(tmp_path / "resnet.safetensors"))
        )
    state = timm.create_model("test_efficientnet").state_dict()
    mixed = {**{f"model.{k}": v for k, v in state.items()}, "criterion.weight": torch.ones(2)}
    save_file(mixed, str(tmp_path / "mixed.safetensors"))
    with pytest.raises(ParamsError, match=rf"{len(state)} of its {len(mixed)} keys start with 'model\.'"):
        backbones.check(
            "mine", Backbone(model="test_efficientnet", weights=str(tmp_path / "mixed.safetensors"))
        )


def test_a_checkpoint_with_another_head_loads_its_body(tmp_path):
    torch.manual_seed(0)
    body = timm.create_model("test_efficientnet", num_classes=21)
    save_file(body.state_dict(), str(tmp_path / "21.safetensors"))
    cfg = Backbone(model="test_efficientnet", weights=str(tmp_path / "21.safetensors"))
    backbones.check("mine", cfg)
    model = backbones.create(cfg, 5, pretrained=True, seed=0)
    assert model.get_classifier().out_features == 5
    assert torch.equal(model.conv_stem.weight, body.conv_stem.weight)


def test_group_norm_replaces_every_batch_norm_and_keeps_the_activations():
    cfg = Backbone(model="tf_efficientnet_lite0", weights="package")
    plain = backbones.create(cfg, 10, pretrained=False, seed=1)
    grouped = backbones.create(cfg, 10, pretrained=False, seed=1, norm="group")
    kinds = [type(m).__name__ for m in grouped.modules()]
    assert "BatchNormAct2d" not in kinds and kinds.count("GroupNormAct") == 49
    assert [type(m).__name__ for m in plain.modules() if type(m).__name__.startswith("ReLU")] == [
        k for k in kinds if k.startswith("ReLU")
    ]
    conv = {n: v for n, v in plain.state_dict().items() if "conv" in n}
    assert all(torch.equal(v, grouped.state_dict()[n]) for n, v in conv.items())  # the same seeded init
    assert grouped(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError):
        backbones.group_norm(torch.nn.Sequential(torch.nn.BatchNorm2d(12)))
