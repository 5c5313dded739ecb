"""Dataset sources on small generated folders: an image folder and torchvision's layouts, read without a network."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from pydantic import TypeAdapter

from conftest import make_study_repo, run, tiny_params, tiny_weights
from pretraining_gap import config
from pretraining_gap.data import datasets
from pretraining_gap.data.prepared import POOL, TEST, UNUSED, VAL, Prepared
from pretraining_gap.grid import ParamsError

COLOURS = {"cat": (200, 40, 40), "dog": (40, 200, 40), "owl": (40, 40, 200)}


def write_image(path: Path, colour: tuple[int, int, int], index: int, grey: bool = False) -> Path:
    """A small image of a class colour, landscape and portrait alternating, with a bright stripe in the centre and
    its own smooth pattern (images of a class are not duplicates of each other: data/duplicates.py)."""
    size = (24, 16) if index % 2 else (16, 24)
    pattern = np.random.default_rng([index, *colour]).integers(-30, 31, (3, 3)).astype(np.float32)
    shade = np.asarray(Image.fromarray(pattern, mode="F").resize(size, Image.Resampling.BILINEAR))
    array = (np.array(colour, dtype=np.float32) + shade[..., None]).clip(0, 255).astype(np.uint8)
    array[size[1] // 2 - 2 : size[1] // 2 + 2] = 255
    image = Image.fromarray(array)
    path.parent.mkdir(parents=True, exist_ok=True)
    (image.convert("L") if grey else image).save(path)
    return path


def image_folder(root: Path, counts: dict[str, int], first: int = 0) -> Path:
    """One sub-folder per class of generated PNGs, numbered from `first` (another number, another image); every
    fifth image grey."""
    for name, count in counts.items():
        for i in range(first, first + count):
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
    image_folder(tmp_path / "test", {"cat": 4, "dog": 5}, first=100)
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
    for part, (split, counts) in enumerate(per_split.items()):
        lines = []
        for name, count in counts.items():
            for i in range(count):
                file = f"{name}_{split}_{i:03d}.jpg"
                write_image(base / "images" / name / file, COLOURS[name], 100 * part + i)
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


def test_torchvision_images_are_read_as_they_are_and_every_bad_one_is_listed(tmp_path):
    parts = {"train": {"cat": 4, "dog": 4}, "val": {"cat": 1, "dog": 1}, "test": {"cat": 2, "dog": 2}}
    root = make_dtd(tmp_path / "tv", parts)
    images = root / "dtd" / "dtd" / "images"
    logo = np.zeros((16, 16, 4), dtype=np.uint8)  # transparent black around an opaque red square
    logo[4:12, 4:12] = (*COLOURS["cat"], 255)
    Image.fromarray(logo).save(images / "cat" / "cat_train_000.jpg", format="PNG")  # torchvision blackens it
    cfg = {"source": "torchvision", "name": "DTD", "root": str(root), "resolution": 16}
    cfg.update(val_per_class=1, test_per_class=2)
    data = datasets.prepare("textures", typed(cfg), sizes=[1])
    assert data.conversions["rgb+alpha composited"] == 1
    assert (
        sum(((image[0, 0] == 255).all() and (image[8, 8] == COLOURS["cat"]).all()) for image in data.images)
        == 1
    )
    for file in ("cat/cat_train_001.jpg", "dog/dog_test_001.jpg"):
        (images / file).write_bytes(b"\xff\xd8\xff cut short")
    with pytest.raises(ParamsError, match=r"2 of its images cannot be decoded") as error:
        datasets.prepare("textures", typed(cfg), sizes=[1])
    assert error.value.key == "datasets.textures.root"
    assert [line.split(": ")[0].strip() for line in str(error.value).splitlines()[1:]] == [
        str(images / "cat/cat_train_001.jpg"),
        str(images / "dog/dog_test_001.jpg"),
    ]


def test_an_official_part_too_small_asks_for_what_it_has(tmp_path):
    parts = {"train": {"cat": 4, "dog": 4}, "val": {"cat": 2, "dog": 3}, "test": {"cat": 1, "dog": 1}}
    root = make_dtd(tmp_path / "tv", parts)
    cfg = {"source": "torchvision", "name": "DTD", "root": str(root), "resolution": 8}
    cfg.update(val_per_class=3, test_per_class=1)
    with pytest.raises(
        ParamsError, match=r"class 'cat' has only 2 validation images in the source's own"
    ) as error:
        datasets.prepare("textures", typed(cfg), sizes=[1])
    assert error.value.problems[0][1:] == (
        "class 'cat' has only 2 validation images in the source's own validation part, 3 asked",
        "lower datasets.textures.val_per_class to at most 2",
    )
    cfg["val_per_class"] = 2
    data = datasets.prepare("textures", typed(cfg), sizes=[1])
    data.save(tmp_path / "textures.npz")
    again = Prepared.load(tmp_path / "textures.npz")
    assert again.official == [
        "val",
        "test",
    ]  # so subsample's check knows the pool shares its images with neither
    with pytest.raises(ParamsError, match=r"keep study.sizes at most 4$"):
        datasets.check_class_sizes(
            "textures", typed(cfg), again.labels, again.split, again.class_names, [5], again.official
        )


def test_torchvision_pets_carve_validation_from_trainval(tmp_path):
    """OxfordIIITPet has trainval and test but no val part: validation comes out of trainval, per class."""
    base = tmp_path / "tv" / "oxford-iiit-pet"
    for part, (split, count) in enumerate((("trainval", 7), ("test", 4))):
        lines = []
        for label, name in enumerate(("Abyssinian", "beagle"), start=1):
            for i in range(count):
                image_id = f"{name}_{split}{i}"
                write_image(
                    base / "images" / f"{image_id}.jpg", list(COLOURS.values())[label], 100 * part + i
                )
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
        # every image of a class goes to validation and test: 'keep study.sizes at most 0' would not work
        ([1], {"cat": 12, "dog": 5}, "study.sizes", r"class 'dog' has only 0 training"),
        # test takes them all: 'val_per_class at most 0' would not work either
        ([1], {"cat": 12, "dog": 3}, "datasets.pets.val_per_class", r"class 'dog' has only 0 validation"),
    ],
)
def test_a_class_too_small_is_refused_before_decoding_with_fixes_that_each_work(
    tmp_path, sizes, counts, key, message
):
    root = image_folder(tmp_path / "pets", counts)
    with pytest.raises(ParamsError, match=message + ".*Fix:") as error:
        datasets.prepare("pets", folder_cfg(root), sizes=sizes)
    assert error.value.key == key
    fixes = error.value.problems[0][2].split(", or ")
    assert not any(re.search(r"at most 0\b", fix) for fix in fixes), fixes
    for fix in fixes:  # each fix alone, applied, is enough
        block, fixed_sizes = folder_block(root), sizes
        if found := re.fullmatch(r"lower datasets\.pets\.(\w+) to at most (\d+)", fix):
            block[found[1]] = int(found[2])
        elif found := re.fullmatch(r"keep study\.sizes at most (\d+)", fix):
            fixed_sizes = [s for s in sizes if s <= int(found[1])]
        elif found := re.fullmatch(r"add (\d+) images? to that class", fix):
            image_folder(tmp_path / "more", {"dog": int(found[1])}, first=1000)  # new images, not copies
            for i, file in enumerate(sorted((tmp_path / "more" / "dog").iterdir())):
                file.rename(root / "dog" / f"more_{i}.png")
        else:
            raise AssertionError(f"unexpected fix {fix!r}")
        assert len(datasets.prepare("pets", typed(block), fixed_sizes).images) > 0, fix
        for file in (root / "dog").glob("more_*"):
            file.unlink()


def test_every_class_short_of_images_is_listed_in_one_message(tmp_path):
    root = image_folder(tmp_path / "pets", {"cat": 5, "dog": 3, "owl": 12})
    with pytest.raises(ParamsError) as error:
        datasets.prepare("pets", folder_cfg(root), sizes=[2])
    assert [(key, problem.split(" has")[0]) for key, problem, _ in error.value.problems] == [
        ("study.sizes", "2 examples per class asked, but class 'cat'"),
        ("datasets.pets.val_per_class", "class 'dog'"),
    ]


def test_a_single_class_is_refused_before_anything_trains(tmp_path):
    root = image_folder(tmp_path / "pets", {"cat": 12})
    with pytest.raises(
        ParamsError, match=r"1 class found \('cat'\); a study needs at least 2 classes"
    ) as error:
        datasets.prepare("pets", folder_cfg(root), sizes=[1])
    assert error.value.key == "datasets.pets.path"


def test_an_empty_class_folder_is_named(tmp_path):
    root = image_folder(tmp_path / "pets", {"cat": 8})
    (root / "dog").mkdir()
    (root / "dog" / ".DS_Store").write_bytes(b"\0")
    with pytest.raises(ParamsError, match=r"class folder .*dog holds no images.*Fix: add images") as error:
        datasets.prepare("pets", folder_cfg(root), sizes=[1])
    assert error.value.key == "datasets.pets.path"


def test_every_file_that_is_no_image_is_listed_in_one_message_before_decoding(tmp_path):
    root = image_folder(tmp_path / "pets", {"cat": 8, "dog": 8})
    bad = {
        root / "dog" / "dog_003.png": b"\x89PNG broken",
        root / "dog" / "notes.txt": b"taken at the shelter",
        root / "cat" / "empty.jpg": b"",
        root / "cat" / "indoor" / "cut.jpg": (root / "cat" / "cat_000.png").read_bytes()[:60],
    }
    for file, data in bad.items():
        file.parent.mkdir(exist_ok=True)
        file.write_bytes(data)
    with pytest.raises(ParamsError) as error:
        datasets.prepare("pets", folder_cfg(root), sizes=[1])
    assert error.value.key == "datasets.pets.path"
    message = str(error.value)
    assert "4 files in its class folders are not images" in message and "Fix: replace them" in message
    listed = [line.strip().split(": ")[0] for line in message.splitlines()[1:]]
    assert listed == sorted(str(file) for file in bad)


def test_every_file_pillow_decodes_is_used_junk_is_counted_and_the_rest_named(tmp_path):
    """A class of .jfif files (JPEG data) is not dropped; sub-folders belong to their class, as in ImageFolder."""
    root = image_folder(tmp_path / "pets", {"cat": 6})
    jpeg = tmp_path / "photo.jpg"
    for i, name in enumerate(("a.jfif", "b.JFIF", "c.jpe", "d", "e.jpeg.bak", "outdoor/f.jfif")):
        write_image(jpeg, COLOURS["dog"], i)  # six photos, not six copies of one (data/duplicates.py)
        Image.open(jpeg).save(jpeg, format="JPEG")
        (root / "dog" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "dog" / name).write_bytes(jpeg.read_bytes())
    for junk in ("cat/.DS_Store", "cat/Thumbs.db", "dog/._a.jfif", ".ipynb_checkpoints/x.png", "__MACOSX/y"):
        (root / junk).parent.mkdir(parents=True, exist_ok=True)
        (root / junk).write_bytes(b"\0\5\26\7")
    (root / "LICENSE.txt").write_text("CC BY 4.0\n")
    data = datasets.prepare("pets", folder_cfg(root, val_per_class=1, test_per_class=2), sizes=[3])
    assert np.bincount(data.labels).tolist() == [6, 6]
    assert (data.images[data.labels == 1][:, 2, 2, 1] > 150).all()  # the dogs are green
    assert data.junk == 5 and data.unused == [(str(root / "LICENSE.txt"), "outside every class folder")]
    assert data.conversions == {"rgb": 11, "grey": 1}  # the grey one: cat_004


def test_images_come_out_as_a_viewer_shows_them_and_the_kinds_are_kept_with_the_file(tmp_path):
    root = image_folder(tmp_path / "pets", {"cat": 6, "dog": 5})
    logo = np.zeros((16, 16, 4), dtype=np.uint8)  # transparent black around an opaque green square
    logo[4:12, 4:12] = (*COLOURS["dog"], 255)
    Image.fromarray(logo).save(root / "dog" / "logo.png")
    ramp = np.linspace(0, 65535, 16 * 16).astype(np.uint16).reshape(16, 16)  # a 16-bit grey scan
    Image.fromarray(ramp).save(root / "dog" / "scan.png")
    cfg = folder_cfg(root, resolution=16, val_per_class=1, test_per_class=1)
    data = datasets.prepare("pets", cfg, sizes=[1])
    names = datasets.catalogue("pets", cfg).names
    order = [names.index(str(root / "dog" / n)) for n in ("logo.png", "scan.png")]  # no image is unused
    logo_out, scan_out = data.images[order[0]], data.images[order[1]]
    assert (logo_out[0, 0] == 255).all() and (logo_out[8, 8] == COLOURS["dog"]).all()  # white, not black
    assert scan_out[..., 0].min() <= 10 and scan_out[..., 0].max() >= 245 and len(np.unique(scan_out)) > 100
    assert data.conversions == {"rgb": 9, "grey": 2, "rgb+alpha composited": 1, "16-bit rescaled": 1}
    data.save(tmp_path / "pets.npz")
    again = Prepared.load(tmp_path / "pets.npz")
    assert again.conversions == data.conversions and again.digest() == data.digest()


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


def test_an_experiment_in_a_copy_names_the_untracked_image_folder_and_dvc_add_makes_it_work(
    tmp_path, monkeypatch
):
    """`dvc exp run --temp` runs in a copy under .dvc/tmp/exps/, as `--queue` does, of what git and DVC track: images
    unpacked into data/raw are not there. The message says why and how out; `dvc add`, as the README says, works."""
    for var, value in (("NAME", "test"), ("EMAIL", "test@example.com")):
        monkeypatch.setenv(f"GIT_AUTHOR_{var}", value)
        monkeypatch.setenv(f"GIT_COMMITTER_{var}", value)
    p = tiny_params(tiny_weights(tmp_path / "tiny.safetensors"))
    p["study"].update(datasets=["pets"], sizes=[2])
    p["datasets"] = {"pets": folder_block("data/raw/pets", resolution=8)}
    repo = make_study_repo(tmp_path / "repo", p)
    shutil.copy(Path(__file__).resolve().parents[1] / ".gitignore", repo)  # the project's own
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "study"], repo)
    image_folder(repo / "data" / "raw" / "pets", {"cat": 8, "dog": 8})  # unpacked there, as the README does

    done = run(["dvc", "exp", "run", "--temp", "prepare@pets"], repo, check=False)
    assert done.returncode != 0
    message = next(line for line in done.stderr.splitlines() if "datasets.pets.path" in line)
    assert "folder data/raw/pets is in the workspace but not in this experiment's copy" in message
    assert "dvc add data/raw/pets" in message and str(repo / "data/raw/pets") in message
    assert "Traceback" not in done.stderr

    run(["dvc", "add", "data/raw/pets"], repo)
    run(["git", "add", "data/raw/pets.dvc"], repo)
    run(["git", "commit", "-qm", "images tracked by DVC"], repo)
    # a whole `dvc exp run` checks out every DVC-tracked folder in its copy; one with targets, only theirs: the
    # .dvc file stands in for the rest of the pipeline, which the README's `dvc exp run --queue` runs
    run(["dvc", "exp", "run", "--temp", "data/raw/pets.dvc", "prepare@pets"], repo)


def test_the_shipped_params_and_an_image_folder_block_validate(tmp_path):
    p = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    p["datasets"]["pets"] = folder_block(image_folder(tmp_path / "pets", {"cat": 8}))
    p["study"]["datasets"] = ["digits", "pets"]
    assert isinstance(config.validate(p).datasets["pets"], config.ImageFolder)
