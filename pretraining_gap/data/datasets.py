"""Target datasets: list a source, fix its pool / validation / test split, then decode and resize each image once."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..config import Dataset, ImageFolder, SklearnDigits, Torchvision
from ..grid import ALL, ParamsError
from .prepared import POOL, TEST, UNUSED, VAL, Prepared

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


@dataclass
class Catalogue:
    """A source's images before decoding: a reader per image, labels, and the source's own split if it has one."""

    read: Callable[[int], Image.Image]
    names: list[str]  # what to call image i in a message (its file, where it has one)
    labels: np.ndarray
    class_names: list[str]
    official: np.ndarray | None = None  # POOL / VAL / TEST per image from the source's own split


def _sklearn_digits(key: str, cfg: SklearnDigits) -> Catalogue:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)  # 0..16 ink levels to 0..255
    return Catalogue(
        lambda i: Image.fromarray(images[i]),
        [f"digit {i}" for i in range(len(images))],
        digits.target.astype(np.int64),
        [str(c) for c in digits.target_names],
    )


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )


def _class_folders(key: str, root: Path) -> dict[str, list[Path]]:
    """One sub-folder per class, each with at least one image."""
    if not root.is_dir():
        raise ParamsError(
            key, f"folder {root} not found", "point it at a folder holding one sub-folder per class"
        )
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise ParamsError(
            key, f"{root} has no class sub-folders", "put each class's images in its own sub-folder"
        )
    files = {folder.name: _image_files(folder) for folder in folders}
    for name, images in files.items():
        if not images:
            raise ParamsError(
                key,
                f"class folder {root / name} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})",
                "add images to it or remove the folder",
            )
    return files


def _imagefolder(key: str, cfg: ImageFolder) -> Catalogue:
    """`path`: one sub-folder per class; an optional `test_path` with the same sub-folders is the test set."""
    train = _class_folders(f"{key}.path", cfg.path)
    test = _class_folders(f"{key}.test_path", cfg.test_path) if cfg.test_path else {}
    if test and set(test) != set(train):
        raise ParamsError(
            f"{key}.test_path",
            f"its class folders differ from path's: only in one of them: {sorted(set(test) ^ set(train))}",
            "give both folders the same class sub-folders",
        )
    class_names = sorted(train)
    entries = [(file, c, POOL) for c, name in enumerate(class_names) for file in train[name]]
    entries += [(file, c, TEST) for c, name in enumerate(class_names) for file in test.get(name, [])]
    files = [file for file, _, _ in entries]
    return Catalogue(
        lambda i: Image.open(files[i]),
        [str(f) for f in files],
        np.array([c for _, c, _ in entries], dtype=np.int64),
        class_names,
        np.array([part for _, _, part in entries], dtype=np.int8) if test else None,
    )


# Constructor arguments of each official part, tried in order: torchvision rejects a split it lacks with ValueError.
_PARTS = (
    (POOL, ({"split": "train"}, {"split": "trainval"}, {"train": True}, {})),
    (VAL, ({"split": "val"}, {"split": "valid"})),
    (TEST, ({"split": "test"}, {"train": False})),
)


def _open_parts(key: str, cls: type, cfg: Torchvision) -> list[tuple[int, object]]:
    """The official parts of a torchvision dataset class: train (or trainval), val and test where it has them."""
    arguments = inspect.signature(cls).parameters
    parts = []
    for code, options in _PARTS:
        for option in options:
            if not set(option) <= set(arguments):
                continue
            try:
                parts.append((code, cls(root=cfg.root, download=cfg.download, **option)))
                break
            except ValueError:  # no such split in this class
                continue
            except (
                RuntimeError,
                OSError,
            ) as error:  # torchvision's "Dataset not found or corrupted", missing files
                raise ParamsError(
                    f"{key}.root",
                    f"{cls.__name__} not found under {cfg.root} ({error})",
                    "set download: true once, or point root at the folder torchvision downloaded into",
                ) from error
    return parts


def _labels_of(dataset) -> list[int]:
    for attribute in ("targets", "_labels", "labels", "y"):  # where torchvision's classes keep them
        if isinstance(getattr(dataset, attribute, None), (list, np.ndarray)):
            return [int(label) for label in getattr(dataset, attribute)]
    return [int(dataset[i][1]) for i in range(len(dataset))]  # decodes every image: only for unusual classes


def _file_of(dataset, index: int) -> str:
    """The image's file for messages, where the class exposes it."""
    for attribute in ("_image_files", "_images", "samples", "imgs"):
        files = getattr(dataset, attribute, None)
        if isinstance(files, list) and index < len(files):
            return str(files[index][0] if isinstance(files[index], tuple) else files[index])
    return f"{type(dataset).__name__} image {index}"


def _class_names_of(dataset) -> list[str] | None:
    names = getattr(dataset, "classes", None) or getattr(dataset, "categories", None)
    return [str(n) for n in names] if names else None


def _torchvision(key: str, cfg: Torchvision) -> Catalogue:
    """A torchvision dataset class, with its official train / val / test parts where it has them."""
    import torchvision.datasets

    cls = getattr(torchvision.datasets, cfg.name, None)
    if not inspect.isclass(cls):
        known = [
            n
            for n in dir(torchvision.datasets)
            if n[0].isupper() and n not in ("VisionDataset", "DatasetFolder")
        ]
        raise ParamsError(f"{key}.name", f"torchvision has no dataset {cfg.name!r}", f"use one of {known}")
    parts = _open_parts(key, cls, cfg)
    reference = _class_names_of(parts[0][1])
    items, labels, official = [], [], []
    for code, dataset in parts:
        names = _class_names_of(dataset)
        # parts may number classes differently (DTD numbers the classes present in each part): match by name
        to_reference = [reference.index(n) for n in names] if reference and names else None
        for index, label in enumerate(_labels_of(dataset)):
            items.append((dataset, index))
            labels.append(to_reference[label] if to_reference else label)
            official.append(code)

    def read(i: int) -> Image.Image:
        dataset, index = items[i]
        return dataset[index][0]  # (PIL image, label): no transform is set

    return Catalogue(
        read,
        [_file_of(d, i) for d, i in items],
        np.array(labels, dtype=np.int64),
        reference or [str(c) for c in range(max(labels) + 1)],
        np.array(official, dtype=np.int8) if len(parts) > 1 else None,
    )


SOURCES = {"sklearn_digits": _sklearn_digits, "imagefolder": _imagefolder, "torchvision": _torchvision}


def catalogue(name: str, cfg: Dataset) -> Catalogue:
    """List the dataset block `datasets.<name>` without decoding any image."""
    return SOURCES[cfg.source](f"datasets.{name}", cfg)


def resize(images: np.ndarray, resolution: int) -> np.ndarray:
    """(N, H, W) or (N, H, W, C) uint8 to (N, resolution, resolution, 3) uint8; grey becomes RGB."""
    import torch  # here, so that params checks can read SOURCES without paying for torch
    import torch.nn.functional as F

    x = torch.from_numpy(images).float()
    x = x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2)
    x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)
    x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def square(image: Image.Image, resolution: int) -> np.ndarray:
    """The centred square of the shorter side, resized to (resolution, resolution, 3) uint8.

    Aspect ratio: the long side's edges are cut off rather than the object squashed, as ImageNet evaluation does.
    """
    image.draft("RGB", (resolution, resolution))  # JPEG: decode at a reduced scale still >= resolution (fast)
    image = image.convert("RGB")  # grey, palette and RGBA alike
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return resize(np.array(image.crop((left, top, left + side, top + side)))[None], resolution)[0]


def assign_split(
    labels: np.ndarray, official: np.ndarray | None, val_per_class: int, test_per_class: int, seed: int
) -> np.ndarray:
    """Fixed per-class split. Per class, a seeded order; test images come from the official test part if there is
    one, else the first of the class; validation likewise; the rest of the training part is the pool."""
    official = np.full(len(labels), POOL, dtype=np.int8) if official is None else official
    has = {code: bool((official == code).any()) for code in (VAL, TEST)}
    split = np.full(len(labels), UNUSED, dtype=np.int8)
    rng = np.random.default_rng(seed)
    for c in np.unique(labels):
        order = rng.permutation(np.flatnonzero(labels == c))
        pool = order[official[order] == POOL]
        for code, count in ((TEST, test_per_class), (VAL, val_per_class)):
            candidates = order[official[order] == code] if has[code] else pool
            split[candidates[:count]] = code
            if not has[code]:
                pool = pool[count:]
        split[pool] = POOL
    return split


def check_class_sizes(
    name: str, cfg: Dataset, labels: np.ndarray, split: np.ndarray, class_names: list[str], sizes: list
) -> None:
    """Every class needs val_per_class validation, test_per_class test and max(sizes) pool images."""
    key = f"datasets.{name}"
    for code, need, what, param in (
        (TEST, cfg.test_per_class, "test", "test_per_class"),
        (VAL, cfg.val_per_class, "validation", "val_per_class"),
        (POOL, max((s for s in sizes if s != ALL), default=1), "training (after validation and test)", None),
    ):
        counts = np.bincount(labels[split == code], minlength=len(class_names))
        smallest = int(np.argmin(counts))
        if counts[smallest] >= need:
            continue
        have = int(counts[smallest])
        total = int((labels == smallest).sum())
        problem = f"class {class_names[smallest]!r} has only {have} {what} images ({total} in all)"
        if param:
            raise ParamsError(
                f"{key}.{param}",
                f"{problem}, {need} asked",
                f"lower {key}.{param} to at most {have}, or add images to that class",
            )
        raise ParamsError(
            "study.sizes",
            f"{need} examples per class asked, but {problem}",
            f"keep study.sizes at most {have}, lower {key}.val_per_class / test_per_class, "
            "or add images to that class",
        )


def decode(catalogue: Catalogue, split: np.ndarray, resolution: int, key: str) -> Prepared:
    """Decode and resize every image the split uses, once (a progress bar on stderr)."""
    chosen = np.flatnonzero(split != UNUSED)
    images = np.empty((len(chosen), resolution, resolution, 3), dtype=np.uint8)
    for row, i in enumerate(tqdm(chosen, desc="decode", unit="image", disable=None)):
        try:
            images[row] = square(catalogue.read(int(i)), resolution)
        except OSError as error:  # PIL's UnidentifiedImageError and truncated files
            raise ParamsError(
                key,
                f"cannot read image {catalogue.names[i]}: {error}",
                "replace or remove that file, then run again",
            ) from error
    return Prepared(images, catalogue.labels[chosen], split[chosen], catalogue.class_names)


def prepare(name: str, cfg: Dataset, sizes: list[int]) -> Prepared:
    """The dataset block `datasets.<name>`, split and checked against `sizes` before any image is decoded."""
    listed = catalogue(name, cfg)
    split = assign_split(
        listed.labels, listed.official, cfg.val_per_class, cfg.test_per_class, cfg.split_seed
    )
    check_class_sizes(name, cfg, listed.labels, split, listed.class_names, sizes)
    key = f"datasets.{name}.{'path' if cfg.source == 'imagefolder' else 'source'}"
    return decode(listed, split, cfg.resolution, key)
