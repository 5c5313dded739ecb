import copy
from pathlib import Path

import pytest
import yaml

from pretraining_gap import params

DEFAULT = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())


def broken(edit):
    p = copy.deepcopy(DEFAULT)
    edit(p)
    return p


def test_the_shipped_params_are_valid():
    params.validate(DEFAULT)
    assert len(params.cells(DEFAULT)) == 3 * 6 * 3


@pytest.mark.parametrize("edit, key", [
    (lambda p: p["study"].update(regimes=["scratch", "transformer"]), "study.regimes"),
    (lambda p: p["study"].update(datasets=["cifar"]), "study.datasets"),
    (lambda p: p["study"].update(sizes=[1, 0]), "study.sizes"),
    (lambda p: p["datasets"]["digits"].update(source="mnist"), "datasets.digits.source"),
    (lambda p: p["datasets"]["digits"].update(split_seed=-1), "datasets.digits.split_seed"),
    (lambda p: p["datasets"]["digits"].update(source="imagefolder"), "datasets.digits.path"),
    (lambda p: p["datasets"]["digits"].update(source="imagefolder", path="no/such/folder"), "datasets.digits.path"),
    (lambda p: p["datasets"]["digits"].update(source="imagefolder", path=".", test_path="no/such"),
     "datasets.digits.test_path"),
    (lambda p: p["datasets"]["digits"].update(source="torchvision", root="."), "datasets.digits.name"),
    (lambda p: p["datasets"]["digits"].update(source="torchvision", name="DTD", root="no/such/folder"),
     "datasets.digits.root"),
    (lambda p: p["datasets"]["digits"].update(source="torchvision", name="DTD", root=".", download="yes"),
     "datasets.digits.download"),
    (lambda p: p["backbones"]["efficientnet_lite0"].update(weights="imagenet"), "backbones.efficientnet_lite0.weights"),
    (lambda p: p["backbones"]["efficientnet_lite0"].update(weights="no/such.pth"),
     "backbones.efficientnet_lite0.weights"),
    (lambda p: p["training"].pop("patience"), "training.patience"),
    (lambda p: p["regimes"]["scratch"].update(budget_multiplier=0.5), "regimes.scratch.budget_multiplier"),
    (lambda p: p["regimes"]["finetune"].update(lr="fast"), "regimes.finetune.lr"),
])
def test_a_bad_value_names_its_key_and_the_fix(edit, key):
    with pytest.raises(params.ParamsError, match="Fix:") as error:
        params.validate(broken(edit))
    assert error.value.key == key


def test_a_torchvision_block_that_may_download_needs_no_folder_yet():
    params.validate(broken(lambda p: p["datasets"]["digits"].update(
        source="torchvision", name="Flowers102", root="data/not-yet-there", download=True)))
