"""Dataset sources on small generated folders: an image folder and torchvision's layouts, read without a network."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import make_study_repo, run, tiny_params, tiny_weights
from PIL import Image
from pydantic import TypeAdapter

from pretraining_gap import config
from pretraining_gap.data import datasets
from pretraining_gap.data.prepared import POOL, TEST, UNUSED, VAL, Prepared
from pretraining_gap.grid import ParamsError

COLOURS = {"cat": (200, 40, 40), "dog": (40, 200, 40), "owl": (40, 40, 200)}


def write_image(path: Path, colour: tuple[int, int, int], index: int, grey: bool = False) -> Path:
    """A small image of a class colour, landscape and portrait alternating, with a bright stripe in the centre."""
    size = (24, 16) if index % 2 else (16, 24)
    array = np.zeros((size[1], size[0], 3), dtype=np.uint8) + np.array(colour, dtype=np.uint8)
    array[size[1] // 2 - 2 : size[1] // 2 + 2] = 255
    image = Image.fromarray(array)
    path.parent.mkdir(parents=True, exist_ok=True)
    (image.convert("L") if grey else image).save(path)
    return path


def image_folder(root: Path, counts: dict[str, int]) -> Path:
    """One sub-folder per class of generated PNGs; every fifth image grey."""
    for name, count in counts.items():
        for i in range(count):
            write_image(root / name / f"{name}_{i:03d}.png", COLOURS[name], i, grey=i % 5 == 4)
    return root


def folder_block(path: Path | str, **extra) -> dict:
    """A dataset block as params.yaml holds it."""
    return {
        "source": "imagefolder",
        "path": str(path),
        "resolution": 12,
        "val_per_class": 2,
        "test_per_class": 3,
        "split_seed": 0,
        **extra,
    }


def typed(block: dict) -> config.Dataset:
    return TypeAdapter(config.Dataset).validate_python(block)


def folder_cfg(path: Path | str, **extra) -> config.Dataset:
    return typed(folder_block(path, **extra))


def test_an_image_folder_is_decoded_once_split_per_class_and_squared(tmp_path):
    root = image_folder(tmp_path / "pets", {"cat": 12, "dog": 10, "owl": 9})
    data = datasets.prepare("pets", folder_cfg(root), sizes=[1, 4])
    assert data.class_names == ["cat", "dog", "owl"]
    assert data.images.shape == (31, 12, 12, 3) and data.images.dtype == np.uint8
    for c, total in enumerate((12, 10, 9)):
        of_class = data.split[data.labels == c]
        assert [(of_class == code).sum() for code in (TEST, VAL, POOL)] == [3, 2, total - 5]
    # the centred square keeps the stripe across the middle row and the class colour above it
    cat = data.images[data.labels == 0]
    assert (cat[:, 6] > 230).all() and (cat[:, 1, :, 0] > cat[:, 1, :, 1] + 50).mean() > 0.7
    grey = cat[4]  # cat_004 was saved grey: three equal channels
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 1], grey[..., 2])


def test_a_separate_test_folder_is_the_test_set(tmp_path):
    root = image_folder(tmp_path / "train", {"cat": 8, "dog": 8})
    image_folder(tmp_path / "test", {"cat": 4, "dog": 5})
    data = datasets.prepare("pets", folder_cfg(root, test_path=str(tmp_path / "test")), sizes=[3])
    assert len(data.images) == 8 + 8 + 3 + 3  # every training image, test_per_class of the test folder
    assert np.bincount(data.labels[data.split == TEST]).tolist() == [3, 3]
    assert np.bincount(data.labels[data.split == POOL]).tolist() == [
        6,
        6,
    ]  # val carved from the training folder


def test_the_split_is_fixed_by_split_seed(tmp_path):
    root = image_folder(tmp_path / "pets", {"cat": 12, "dog": 10})
    cfg = folder_cfg(root)
    listed = datasets.catalogue("pets", cfg)
    split = datasets.assign_split(listed.labels, listed.official, 2, 3, seed=0)
    assert np.array_equal(split, datasets.assign_split(listed.labels, listed.official, 2, 3, seed=0))
    assert not np.array_equal(split, datasets.assign_split(listed.labels, listed.official, 2, 3, seed=1))


def make_dtd(root: Path, per_split: dict[str, dict[str, int]]) -> Path:
    """torchvision's DTD layout: dtd/dtd/images/<class>/*.jpg and dtd/dtd/labels/<split>1.txt."""
    base = root / "dtd" / "dtd"
    for split, counts in per_split.items():
        lines = []
        for name, count in counts.items():
            for i in range(count):
                file = f"{name}_{split}_{i:03d}.jpg"
                write_image(base / "images" / name / file, COLOURS[name], i)
                lines.append(f"{name}/{file}")
        (base / "labels").mkdir(parents=True, exist_ok=True)
        (base / "labels" / f"{split}1.txt").write_text("\n".join(lines) + "\n")
    return root


def test_torchvision_dtd_keeps_its_official_train_val_test(tmp_path):
    # val lists its classes in another order and test lacks none: labels must still agree by name
    root = make_dtd(
        tmp_path / "tv",
        {"train": {"cat": 6, "dog": 5}, "val": {"dog": 3, "cat": 4}, "test": {"cat": 5, "dog": 5}},
    )
    cfg = {
        "source": "torchvision",
        "name": "DTD",
        "root": str(root),
        "resolution": 8,
        "val_per_class": 2,
        "test_per_class": 4,
    }
    listed = datasets.catalogue("textures", typed(cfg))
    data = datasets.prepare("textures", typed(cfg), sizes=[5])
    assert data.class_names == ["cat", "dog"]
    assert np.bincount(data.labels[data.split == POOL]).tolist() == [
        6,
        5,
    ]  # all of official train, nothing else
    assert np.bincount(data.labels[data.split == VAL]).tolist() == [2, 2]
    assert np.bincount(data.labels[data.split == TEST]).tolist() == [4, 4]
    chosen = np.flatnonzero(datasets.assign_split(listed.labels, listed.official, 2, 4, seed=0) != UNUSED)
    names = [listed.names[i] for i in chosen]
    for code, part in ((POOL, "train"), (VAL, "val"), (TEST, "test")):
        assert all(f"_{part}_" in n for n, s in zip(names, data.split) if s == code)
    # the class colour survives: red cats, green dogs
    assert (data.images[data.labels == 0][:, 1, :, 0] > 150).all() and (
        data.images[data.labels == 1][:, 1, :, 1] > 150
    ).all()


def test_torchvision_pets_carve_validation_from_trainval(tmp_path):
    """OxfordIIITPet has trainval and test but no val part: validation comes out of trainval, per class."""
    base = tmp_path / "tv" / "oxford-iiit-pet"
    for split, count in (("trainval", 7), ("test", 4)):
        lines = []
        for label, name in enumerate(("Abyssinian", "beagle"), start=1):
            for i in range(count):
                image_id = f"{name}_{split}{i}"
                write_image(base / "images" / f"{image_id}.jpg", list(COLOURS.values())[label], i)
                lines.append(f"{image_id} {label} {label} 1")
        (base / "annotations").mkdir(parents=True, exist_ok=True)
        (base / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    cfg = {
        "source": "torchvision",
        "name": "OxfordIIITPet",
        "root": str(tmp_path / "tv"),
        "resolution": 8,
        "val_per_class": 2,
        "test_per_class": 3,
    }
    data = datasets.prepare("pets", typed(cfg), sizes=[5])
    assert data.class_names == ["Abyssinian", "Beagle"]
    assert [np.bincount(data.labels[data.split == code]).tolist() for code in (POOL, VAL, TEST)] == [
        [5, 5],
        [2, 2],
        [3, 3],
    ]


@pytest.mark.parametrize(
    "sizes, counts, key, message",
    [
        (
            [1, 4],
            {"cat": 12, "dog": 8},
            "study.sizes",
            r"4 examples per class asked, but class 'dog' has only 3 training",
        ),
        (
            [1],
            {"cat": 12, "dog": 4},
            "datasets.pets.val_per_class",
            r"class 'dog' has only 1 validation images \(4 in all\)",
        ),
        ([1], {"cat": 12, "dog": 2}, "datasets.pets.test_per_class", r"class 'dog' has only 2 test images"),
    ],
)
def test_a_class_too_small_for_val_test_and_the_largest_size_fails_before_decoding(
    tmp_path, sizes, counts, key, message
):
    root = image_folder(tmp_path / "pets", counts)
    (root / "cat" / "cat_000.png").write_bytes(b"not decoded, so never noticed")
    with pytest.raises(ParamsError, match=message + ".*Fix:") as error:
        datasets.prepare("pets", folder_cfg(root), sizes=sizes)
    assert error.value.key == key


def test_an_empty_class_folder_is_named(tmp_path):
    root = image_folder(tmp_path / "pets", {"cat": 8})
    (root / "dog").mkdir()
    (root / "dog" / "notes.txt").write_text("no images here")
    with pytest.raises(ParamsError, match=r"class folder .*dog holds no images.*Fix: add images") as error:
        datasets.prepare("pets", folder_cfg(root), sizes=[1])
    assert error.value.key == "datasets.pets.path"


def test_an_unreadable_image_is_named(tmp_path):
    root = image_folder(tmp_path / "pets", {"cat": 8, "dog": 8})
    (root / "dog" / "dog_003.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(
        ParamsError, match=r"cannot read image .*dog_003\.png.*Fix: replace or remove"
    ) as error:
        datasets.prepare("pets", folder_cfg(root), sizes=[1])
    assert error.value.key == "datasets.pets.path"


def test_test_folder_with_other_classes_is_refused(tmp_path):
    root = image_folder(tmp_path / "train", {"cat": 8, "dog": 8})
    image_folder(tmp_path / "test", {"cat": 4, "owl": 4})
    with pytest.raises(ParamsError, match=r"\['dog', 'owl'\]") as error:
        datasets.prepare("pets", folder_cfg(root, test_path=str(tmp_path / "test")), sizes=[1])
    assert error.value.key == "datasets.pets.test_path"


def test_torchvision_unknown_name_and_missing_files(tmp_path):
    cfg = {
        "source": "torchvision",
        "name": "Flowers103",
        "root": str(tmp_path),
        "resolution": 8,
        "val_per_class": 1,
        "test_per_class": 1,
    }
    with pytest.raises(ParamsError, match=r"no dataset 'Flowers103'.*Flowers102") as error:
        datasets.prepare("flowers", typed(cfg), sizes=[1])
    assert error.value.key == "datasets.flowers.name"
    with pytest.raises(ParamsError, match=r"Flowers102 not found under .*download: true") as error:
        datasets.prepare("flowers", typed({**cfg, "name": "Flowers102"}), sizes=[1])
    assert error.value.key == "datasets.flowers.root"


def test_subsample_checks_sizes_on_the_prepared_file_too():
    labels = np.repeat(np.arange(2), [10, 6])
    split = np.where(np.arange(16) % 4 == 0, TEST, POOL)
    cfg = config.SklearnDigits.model_construct(val_per_class=0, test_per_class=1)
    datasets.check_class_sizes("d", cfg, labels, split, ["a", "b"], [5])  # b: 6 images, 1 test
    with pytest.raises(ParamsError, match=r"6 examples per class asked, but class 'b' has only 5.*at most 5"):
        datasets.check_class_sizes("d", cfg, labels, split, ["a", "b"], [1, 6])


def test_image_folder_study_runs_end_to_end_with_dvc(tmp_path):
    """prepare -> subsample -> features -> train -> aggregate on generated PNGs, then a cost file per backbone."""
    p = tiny_params(tiny_weights(tmp_path / "tiny.safetensors"))
    repo_root = tmp_path / "repo"
    p["study"].update(datasets=["pets"], regimes=["linear"], sizes=[2], seeds=[1])
    p["datasets"] = {"pets": folder_block("images", resolution=16)}  # relative to the study's root
    repo = make_study_repo(repo_root, p)
    image_folder(repo / "images", {"cat": 9, "dog": 8, "owl": 8})
    run(["dvc", "repro"], repo)
    cells = list((repo / "results/cells/pets/tiny").rglob("*.json"))
    assert len(cells) == 1
    assert all(0 <= json.loads(c.read_text())["test_accuracy"] <= 1 for c in cells)
    prepared = Prepared.load(repo / "data/prepared/pets.npz")
    assert prepared.images.shape == (25, 16, 16, 3)
    cost = json.loads((repo / "results/costs/pets/tiny.json").read_text())
    assert cost["resolution"] == 16 and cost["parameters"] > 0


def test_the_shipped_params_and_an_image_folder_block_validate(tmp_path):
    p = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    p["datasets"]["pets"] = folder_block(image_folder(tmp_path / "pets", {"cat": 8}))
    p["study"]["datasets"] = ["digits", "pets"]
    assert isinstance(config.validate(p).datasets["pets"], config.ImageFolder)
