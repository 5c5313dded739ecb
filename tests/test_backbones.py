"""The packaged ImageNet EfficientNet-Lite0 weights load into timm by the explicit key mapping."""

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_sample_image
from timm.data import ImageNetInfo

from pretraining_gap import backbones

BUILDINGS = {"palace", "monastery", "church", "castle", "bell cote", "stupa", "mosque", "boathouse"}


def imagenet_top3(model: torch.nn.Module, name: str, resolution: int) -> list[str]:
    """Resize the short side to resolution / 0.875, centre-crop, normalise as the checkpoint expects."""
    image = Image.fromarray(load_sample_image(name))
    scale = resolution / 0.875 / min(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC)
    left, top = (image.width - resolution) // 2, (image.height - resolution) // 2
    image = image.crop((left, top, left + resolution, top + resolution))
    mean, std = backbones.normalisation(model)
    x = (torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255 - torch.tensor(mean)[:, None, None]) \
        / torch.tensor(std)[:, None, None]
    with torch.no_grad():
        top = model.eval()(x[None])[0].topk(3).indices
    info = ImageNetInfo()
    return [info.index_to_description(int(i)).split(",")[0] for i in top]


@pytest.fixture(scope="module")
def lite0():
    return backbones.create({"model": "tf_efficientnet_lite0", "weights": "package"}, 1000, pretrained=True, seed=0)


def test_mapping_covers_every_key_exactly():
    model = backbones.create({"model": "tf_efficientnet_lite0", "weights": "package"}, 1000, pretrained=False, seed=0)
    packaged = torch.load(backbones.packaged_weights_path("tf_efficientnet_lite0"), map_location="cpu")
    renamed = backbones.packaged_to_timm(packaged, model)
    assert set(renamed) == set(model.state_dict())
    assert all(renamed[k].shape == v.shape for k, v in model.state_dict().items())


def test_china_is_a_building_and_flower_a_daisy(lite0):
    assert BUILDINGS & set(imagenet_top3(lite0, "china.jpg", 224))
    assert "daisy" in imagenet_top3(lite0, "flower.jpg", 224)


def test_random_init_does_not_know_imagenet():
    """The control: without the mapping's weights the same test fails, so it measures the load."""
    scratch = backbones.create({"model": "tf_efficientnet_lite0", "weights": "package"}, 1000, pretrained=False, seed=0)
    assert "daisy" not in imagenet_top3(scratch, "flower.jpg", 224)


def test_new_head_has_the_target_classes_and_keeps_the_backbone():
    model = backbones.create({"model": "tf_efficientnet_lite0", "weights": "package"}, 10, pretrained=True, seed=0)
    packaged = torch.load(backbones.packaged_weights_path("tf_efficientnet_lite0"), map_location="cpu")
    assert model.get_classifier().out_features == 10
    assert torch.equal(model.conv_stem.weight, packaged["_conv_stem.weight"])
