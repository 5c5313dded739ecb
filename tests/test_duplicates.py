"""Duplicate images, names DVC cannot address and look-alike class folders, as a user meets them: a tiny image folder
(3 classes x 8 images at 16 px) and `dvc repro` in a temporary repository."""

from __future__ import annotations

import io
import shutil
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import make_study_repo, run, tiny_params, tiny_weights
from pretraining_gap.data import duplicates, images
from pretraining_gap.data.datasets import assign_split
from pretraining_gap.data.prepared import TEST, VAL, Prepared
from study_repo import write_params

NFC, NFD = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")


def photo(index: int) -> Image.Image:
    """A smooth 64 x 48 colour image of its own (a 4 x 3 grid of random colours, bicubic), photo-like."""
    grid = np.random.default_rng(index).integers(0, 256, (3, 4, 3), dtype=np.uint8)
    return Image.fromarray(grid).resize((64, 48), Image.Resampling.BICUBIC)


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue()))


def tiny_folder(root: Path) -> Path:
    """3 classes x 8 distinct images: a/ and b/ as PNG, café as two folders (NFC, NFD) of 4, as macOS archives
    hold them; the originals b/4-6 are JPEGs (quality 95)."""
    for c, folder in enumerate(("a", "b", NFC, NFD)):
        (root / folder).mkdir(parents=True)
        for i in range(8 if c < 2 else 4):
            image = photo(100 * c + i)
            image.save(root / folder / (f"{i}.jpg" if folder == "b" and i >= 4 else f"{i}.png"), quality=95)
    return root


def plant_copies(root: Path) -> None:
    """Two exact copies in a/ (one re-encoded losslessly, one renamed into a sub-folder), three near copies in b/."""
    Image.open(root / "a/0.png").save(root / "a/0 copy.bmp")
    (root / "a/scans").mkdir()
    shutil.copy(root / "a/1.png", root / "a/scans/IMG_0001 (1).png")
    original = Image.open(root / "b/0.png")
    original.resize((32, 24), Image.Resampling.LANCZOS).save(root / "b/0 small.png")  # resized
    jpeg(Image.open(root / "b/4.jpg"), 60).save(root / "b/4 recompressed.jpg")  # recompressed
    jpeg(Image.open(root / "b/1.png"), 75).save(root / "b/1.jpg")  # PNG saved as JPEG


def folder_block(path: str, **extra) -> dict:
    return {
        "source": "imagefolder",
        "path": path,
        "resolution": 16,
        "val_per_class": 2,
        "test_per_class": 2,
        **extra,
    }


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.safetensors")


def study(path: Path, weights: Path, blocks: dict[str, dict]) -> Path:
    params = tiny_params(weights)
    params["study"].update(datasets=list(blocks), sizes=[1, 2])
    params["datasets"] = blocks
    return make_study_repo(path, params)


def test_planted_copies_are_found_and_distinct_images_are_not():
    originals = [photo(i) for i in range(24)]
    copies = [
        originals[0].resize((32, 24), Image.Resampling.LANCZOS),
        jpeg(jpeg(originals[1], 95), 60),
        jpeg(originals[2], 75),
    ]
    decoded = np.stack([images.square(image, 16) for image in originals + copies])
    found = duplicates.find(decoded)
    assert found.group[24:].tolist() == found.group[:3].tolist()  # each copy with its original
    assert len(np.unique(found.group)) == 24  # and nothing else joined
    assert (found.exact == np.arange(27)).all()  # no copy has the very same pixels at 16 px


def test_a_group_never_straddles_parts_and_without_groups_the_split_is_as_before():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 30)
    groups = rng.integers(0, 40, 90) * 3 + labels  # groups within a class, sizes 1 to 6
    split = assign_split(labels, None, 4, 5, seed=0, groups=groups)
    for g in np.unique(groups):
        assert len(np.unique(split[groups == g])) == 1
    assert [np.bincount(labels[split == code], minlength=3).tolist() for code in (TEST, VAL)] == [
        [5] * 3,
        [4] * 3,
    ]
    singletons = assign_split(labels, None, 4, 5, seed=0, groups=np.arange(90))
    assert np.array_equal(singletons, assign_split(labels, None, 4, 5, seed=0))
    order = np.random.default_rng(0).permutation(
        np.flatnonzero(labels == 0)
    )  # the split of every earlier version
    assert (singletons[order[:5]] == TEST).all()


def test_copies_and_look_alike_class_folders_through_dvc_repro(tmp_path, weights):
    """One repository, one `dvc repro prepare`: the same folder with duplicates: group, drop and keep."""
    blocks = {mode: folder_block("images", duplicates=mode) for mode in ("group", "drop", "keep")}
    repo = study(tmp_path / "repo", weights, blocks)
    plant_copies(tiny_folder(repo / "images"))
    done = run(["dvc", "repro", "prepare"], repo)
    log = done.stdout + done.stderr
    assert "Traceback" not in log

    data = {mode: Prepared.load(repo / f"data/prepared/{mode}.npz") for mode in blocks}
    for mode, prepared in data.items():
        assert prepared.class_names == ["a", "b", NFC], mode  # stored NFC: the same on macOS and Linux
        assert prepared.merged == [(NFC, sorted([NFC, NFD]))]
    # 29 files: group drops the 2 exact copies, drop also one image of each of the 3 pairs, keep none
    assert {mode: len(prepared.images) for mode, prepared in data.items()} == {
        "group": 27,
        "drop": 24,
        "keep": 29,
    }
    group = data["group"]
    assert np.bincount(group.labels).tolist() == [8, 11, 8]
    assert group.duplicates["exact_removed"] == 2 and group.duplicates["groups"] == 3
    assert [group.duplicates["by_parts"][pair] for pair in ("pool+val", "pool+test", "val+test")] == [0, 0, 0]
    pixels = {group.images[k].tobytes(): group.split[k] for k in range(len(group.images))}
    tiny = repo / "images"
    for original, copy in (
        ("b/0.png", "b/0 small.png"),
        ("b/4.jpg", "b/4 recompressed.jpg"),
        ("b/1.png", "b/1.jpg"),
    ):
        parts = {pixels[images.square(Image.open(tiny / name), 16).tobytes()] for name in (original, copy)}
        assert len(parts) == 1, (original, copy, parts)
    assert data["drop"].duplicates["near_removed"] == 3
    assert sum(data["keep"].duplicates["by_parts"].values()) == 5  # 2 exact and 3 near groups, counted

    assert (
        "group: duplicates (group): 2 exact copies within a class kept once, 0 near-duplicates dropped, 3 groups of "
        "duplicates kept (6 images), each kept within one part; groups by the parts they lie in: pool "
    ) in log
    folders = " and ".join(map(ascii, sorted([NFC, NFD])))
    assert f"group: class folders {folders} differ only in Unicode normalisation: merged as one class" in log
    assert {VAL, TEST} <= set(group.split.tolist())


def test_a_cross_class_copy_and_names_dvc_cannot_read_end_in_one_message(tmp_path, weights, monkeypatch):
    """`dvc repro` three times in one repository: a copy under two classes, `flowers.v2`, `my flowers`; and
    `dvc exp run` with `flowers.v2`."""
    for var, value in (("NAME", "test"), ("EMAIL", "test@example.com")):
        monkeypatch.setenv(f"GIT_AUTHOR_{var}", value)
        monkeypatch.setenv(f"GIT_COMMITTER_{var}", value)
    repo = study(tmp_path / "repo", weights, {"pets": folder_block("images")})
    tiny_folder(repo / "images")
    Image.open(repo / "images/b/2.png").resize((48, 36)).save(repo / "images/a/b2 resized.png")

    def error_of(done) -> str:
        assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
        return next(line for line in done.stderr.splitlines() if line.startswith("error:"))

    done = run(["dvc", "repro"], repo, check=False)
    message = error_of(done)
    assert (
        "datasets.pets.path: the same image lies under two or more classes (1 such, listed below)" in message
    )
    assert "delete each copy from the class it does not belong to" in message
    assert (
        "images/a/b2 resized.png (class 'a') = images/b/2.png (class 'b'): one image, two labels"
        in done.stderr
    )

    (repo / "images/a/b2 resized.png").unlink()
    params = tiny_params(weights)
    params["study"].update(sizes=[1, 2])
    for name, rename in (("flowers.v2", "flowers_v2"), ("my flowers", "my_flowers")):
        params["study"]["datasets"] = [name]
        params["datasets"] = {name: folder_block("images")}
        write_params(repo / "params.yaml", params)
        message = error_of(run(["dvc", "repro"], repo, check=False))
        assert (
            f"datasets.{name}: a name DVC cannot address" in message and f"rename it to '{rename}'" in message
        )
    # the rename works
    params["study"]["datasets"] = ["my_flowers"]
    params["datasets"] = {"my_flowers": folder_block("images")}
    write_params(repo / "params.yaml", params)
    run(["dvc", "repro", "prepare"], repo)
    assert len(Prepared.load(repo / "data/prepared/my_flowers.npz").images) == 24
