"""Target datasets: list a source, fix its pool / validation / test split, check it, then decode each image once.

Every file of an image folder is used or named: a file Pillow decodes is an image of its class whatever its
extension; junk (hidden files, Thumbs.db, ...) is skipped and counted; any other file in a class folder stops
`prepare` with the list of them all (a class would shrink without a word otherwise), and a file beside the class
folders is named in the report. Images are converted as a viewer shows them (data/images.py).
"""

from __future__ import annotations

import inspect
import unicodedata
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..config import Dataset, ImageFolder, SklearnDigits, Torchvision
from ..grid import ALL, ParamsError
from . import duplicates, images
from .prepared import PARTS, POOL, TEST, UNUSED, VAL, Prepared


@dataclass
class Catalogue:
    """A source's images before decoding: a reader per image, labels, and the source's own split if it has one."""

    read: Callable[[int], Image.Image]
    names: list[str]  # what to call image i in a message (its file, where it has one)
    labels: np.ndarray
    class_names: list[str]
    official: np.ndarray | None = None  # POOL / VAL / TEST per image from the source's own split
    junk: int = 0  # files skipped by design (images.is_junk)
    unused: list[tuple[str, str]] = field(default_factory=list)  # (file, reason): not in any class, not used
    merged: list[tuple[str, list[str]]] = field(default_factory=list)  # (class, its folders): equal under NFC

    def official_parts(self) -> list[str]:
        """The parts ("val", "test") the source's own split gives; the others are taken from the pool."""
        has = set() if self.official is None else set(np.unique(self.official).tolist())
        return [PARTS[code] for code in (VAL, TEST) if code in has]


def source_key(name: str, cfg: Dataset) -> str:
    """The params key that names where a dataset's images come from."""
    leaf = "path" if isinstance(cfg, ImageFolder) else "root" if isinstance(cfg, Torchvision) else "source"
    return f"datasets.{name}.{leaf}"


def _sklearn_digits(key: str, cfg: SklearnDigits) -> Catalogue:
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = np.round(digits.images * (255 / 16)).astype(np.uint8)  # 0..16 ink levels to 0..255
    return Catalogue(
        lambda i: Image.fromarray(pixels[i]),
        [f"digit {i}" for i in range(len(pixels))],
        digits.target.astype(np.int64),
        [str(c) for c in digits.target_names],
    )


def _listing(lines: Sequence[tuple[Path | str, str]]) -> str:
    return "".join(f"\n    {path}: {reason}" for path, reason in lines)


def _scan(key: str, root: Path) -> images.DatasetScan:
    """The folder's class sub-folders, every file of each used or named; refused with every problem listed."""
    try:
        scan = images.scan_dataset(root)
    except OSError as error:
        raise ParamsError(
            key,
            f"folder {root} cannot be listed ({error.strerror})",
            "point it at a folder holding one sub-folder per class",
        ) from None
    if not scan.classes:
        raise ParamsError(
            key, f"{root} has no class sub-folders", "put each class's images in its own sub-folder"
        )
    problems = [
        (key, f"class folder {root / name} holds no images", "add images to it or remove the folder")
        for name, found in scan.classes.items()
        if not found.files and not found.unused
    ]
    bad = [entry for found in scan.classes.values() for entry in found.unused]
    if bad:
        problems.append(
            (
                key,
                f"{len(bad)} files in its class folders are not images Pillow can decode (listed below); "
                "every file in a class folder is an example of that class",
                "replace them with images, or move them out of the class folders:" + _listing(bad),
            )
        )
    if problems:
        raise ParamsError(*problems[0], *problems[1:])
    return scan


def _by_class(scan: images.DatasetScan) -> dict[str, list[str]]:
    """Class name (NFC) -> its folders: `café` written precomposed and with a combining accent (as archives made
    on macOS hold it) is one class, named the same on every system."""
    classes: dict[str, list[str]] = {}
    for folder in scan.classes:
        classes.setdefault(unicodedata.normalize("NFC", folder), []).append(folder)
    return classes


def _imagefolder(key: str, cfg: ImageFolder) -> Catalogue:
    """`path`: one sub-folder per class (its sub-folders belong to it, as in torchvision's ImageFolder); an optional
    `test_path` with the same sub-folders is the test set. Folders equal after Unicode NFC normalisation are one
    class (listed in `merged`)."""
    train = _scan(f"{key}.path", cfg.path)
    test = _scan(f"{key}.test_path", cfg.test_path) if cfg.test_path else None
    parts = [(train, _by_class(train), POOL)] + ([(test, _by_class(test), TEST)] if test else [])
    if test and set(parts[1][1]) != set(parts[0][1]):
        raise ParamsError(
            f"{key}.test_path",
            "its class folders differ from path's: only in one of them: "
            f"{sorted(set(parts[1][1]) ^ set(parts[0][1]))}",
            "give both folders the same class sub-folders",
        )
    class_names = sorted(parts[0][1])
    entries = [
        (file, c, code)
        for scan, folders, code in parts
        for c, name in enumerate(class_names)
        for folder in folders[name]
        for file in scan.classes[folder].files
    ]
    files = [file for file, _, _ in entries]
    return Catalogue(
        lambda i: Image.open(files[i]),
        [str(f) for f in files],
        np.array([c for _, c, _ in entries], dtype=np.int64),
        class_names,
        np.array([code for _, _, code in entries], dtype=np.int8) if test else None,
        sum(scan.junk_count() for scan, _, _ in parts),
        [(str(path), reason) for scan, _, _ in parts for path, reason in scan.all_unused()],
        [(name, found) for _, folders, _ in parts for name, found in folders.items() if len(found) > 1],
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
    # the file as it is: torchvision's default loader converts to RGB, which blackens transparent pixels
    unconverted = {"loader": Image.open} if "loader" in arguments else {}
    parts = []
    for code, options in _PARTS:
        for option in options:
            if not set(option) <= set(arguments):
                continue
            try:
                parts.append((code, cls(root=cfg.root, download=cfg.download, **unconverted, **option)))
                break
            except ValueError:  # no such split in this class
                continue
            except (RuntimeError, OSError) as error:  # "Dataset not found or corrupted", no network
                raise ParamsError(
                    f"{key}.root",
                    f"{cls.__name__} not found under {cfg.root} ({error})",
                    "the download needs a network: run once where there is one, or copy the dataset under root"
                    if cfg.download
                    else "set download: true once, or point root at the folder torchvision downloaded into",
                ) from None
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
    return [unicodedata.normalize("NFC", str(n)) for n in names] if names else None


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


def _units(members: np.ndarray, groups: np.ndarray, official: np.ndarray) -> list[tuple[np.ndarray, int]]:
    """A class's images as units the split keeps whole, in order of their first image: (images, official part).

    A unit's part is its most protected image's (test, then validation, then pool): its images from the source's
    other official parts are left out, so that no copy of a test image trains.
    """
    ids, first = np.unique(groups[members], return_index=True)
    units = []
    for g in ids[np.argsort(first)]:
        unit = members[groups[members] == g]
        part = max(official[unit].tolist(), key=[POOL, VAL, TEST].index)
        units.append((unit[official[unit] == part], part))
    return units


def assign_split(
    labels: np.ndarray,
    official: np.ndarray | None,
    val_per_class: int,
    test_per_class: int,
    seed: int,
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """Fixed per-class split (N,) int8. Per class, a seeded order; test images come from the official test part if
    there is one, else the first of the class; validation likewise; the rest of the training part is the pool.

    `groups` (N,) int: images of one group (duplicates, data/duplicates.py) land in one part; a group is taken into
    test or validation only where it fits in what the part still needs, so each part gets exactly its count while
    there are groups small enough. Without groups (or with every image its own group) the split is the same.
    """
    official = np.full(len(labels), POOL, dtype=np.int8) if official is None else official
    groups = np.arange(len(labels)) if groups is None else groups
    has = {code: bool((official == code).any()) for code in (VAL, TEST)}
    split = np.full(len(labels), UNUSED, dtype=np.int8)
    rng = np.random.default_rng(seed)
    for c in np.unique(labels):
        units = _units(np.flatnonzero(labels == c), groups, official)
        order = [units[k] for k in rng.permutation(len(units))]
        for code, count in ((TEST, test_per_class), (VAL, val_per_class)):
            wanted = code if has[code] else POOL
            for unit, part in order:
                if part == wanted and split[unit[0]] == UNUSED and len(unit) <= count:
                    split[unit] = code
                    count -= len(unit)
        for unit, part in order:
            if part == POOL and split[unit[0]] == UNUSED:
                split[unit] = POOL
    return split


def check_classes(name: str, cfg: Dataset, labels: np.ndarray, class_names: list[str]) -> None:
    """A classifier needs at least 2 classes with images (batch norm and the loss have nothing to learn from one)."""
    present = [class_names[c] for c in np.unique(labels)]
    if len(present) < 2:
        raise ParamsError(
            source_key(name, cfg),
            f"{len(present)} class found ({', '.join(map(repr, present)) or 'no images'}); a study needs at least "
            "2 classes",
            "give each class its own sub-folder of images"
            if isinstance(cfg, ImageFolder)
            else "choose a dataset with at least 2 classes",
        )


def check_class_sizes(
    name: str,
    cfg: Dataset,
    labels: np.ndarray,
    split: np.ndarray,
    class_names: list[str],
    sizes: list[int | str],
    official: Collection[str] = (),
) -> None:
    """Every class needs test_per_class test, val_per_class validation and max(sizes) pool images.

    `official`: the parts ("val", "test") that come from the source's own split; the others are taken, in the order
    test, validation, from the class's training images, which the pool then shares with them. Every class short of
    images is listed, each with fixes that work on their own.
    """
    key = f"datasets.{name}"
    largest = max((s for s in sizes if s != ALL), default=1)  # `all` takes what each class has
    needs = {TEST: cfg.test_per_class, VAL: cfg.val_per_class, POOL: largest}
    settings = {TEST: f"{key}.test_per_class", VAL: f"{key}.val_per_class", POOL: "study.sizes"}
    shared_parts = [POOL] + [code for code in (VAL, TEST) if PARTS[code] not in official]
    problems = []
    for c, class_name in enumerate(class_names):
        have = {code: int(((labels == c) & (split == code)).sum()) for code in needs}
        short = next((code for code in (TEST, VAL, POOL) if have[code] < needs[code]), None)
        if short is None:
            continue
        what = {TEST: "test", VAL: "validation", POOL: "training (after validation and test)"}[short]
        if short in shared_parts:
            total = sum(have[code] for code in shared_parts)
            problem = f"class {class_name!r} has only {have[short]} {what} images ({total} in all)"
            asked = sum(needs[code] for code in shared_parts)
            fixes = [
                f"lower {settings[code]} to at most {total - (asked - needs[code])}"
                if code != POOL
                else f"keep study.sizes at most {total - (asked - largest)}"
                for code in shared_parts[::-1]
                if total - (asked - needs[code]) >= 1
            ]
            if not isinstance(cfg, Torchvision):
                fixes.append(f"add {asked - total} image{'s' * (asked - total > 1)} to that class")
            if not fixes:
                fixes.append(f"lower {', '.join(settings[code] for code in shared_parts[::-1])} together")
        else:  # a part of the source's own split
            problem = (
                f"class {class_name!r} has only {have[short]} {what} images in the source's own {what} part"
            )
            fixes = (
                [f"lower {settings[short]} to at most {have[short]}"]
                if have[short]
                else [f"use a dataset whose {what} part holds every class"]
            )
        if short == POOL:
            problem = f"{largest} examples per class asked, but {problem}"
        else:
            problem += f", {needs[short]} asked"
        problems.append((settings[short], problem, ", or ".join(fixes)))
    if problems:
        raise ParamsError(*problems[0], *problems[1:])


def decode(catalogue: Catalogue, chosen: np.ndarray, resolution: int, key: str) -> images.Decoded:
    """Decode, convert (images.to_rgb) and square the images `chosen` (indices), once (a progress bar on stderr).

    Raises ParamsError listing every image that cannot be decoded, all in one message.
    """
    decoded = images.decode_images(
        lambda row: catalogue.read(int(chosen[row])), [catalogue.names[i] for i in chosen], resolution
    )
    if decoded.failures:
        raise ParamsError(
            key,
            f"{len(decoded.failures)} of its images cannot be decoded (listed below)",
            "replace or remove them, then run again:" + _listing(decoded.failures),
        )
    return decoded


def _refuse_conflicts(name: str, cfg: Dataset, found: list) -> None:
    """The same image (or a resized or recompressed copy) under two classes: its label is wrong in one of them."""
    lines = [
        (" = ".join(f"{file} (class {label!r})" for file, label in group), "one image, two labels")
        for group in found
    ]
    raise ParamsError(
        source_key(name, cfg),
        f"the same image lies under two or more classes ({len(found)} such, listed below), as an exact or "
        "near-identical copy (resized, recompressed): one of its labels is wrong, and a copy in the test split "
        "would be scored against the label its twin trained on",
        "delete each copy from the class it does not belong to, then run again (or set "
        f"datasets.{name}.duplicates: keep to use them as they are):" + _listing(lines),
    )


def prepare(name: str, cfg: Dataset, sizes: list[int]) -> Prepared:
    """The dataset block `datasets.<name>`: listed and checked against `sizes` before any image is decoded, then
    decoded, its duplicates found (data/duplicates.py) and handled as `cfg.duplicates` says, then split and checked
    again (removed copies can leave a class short)."""
    listed = catalogue(name, cfg)
    check_classes(name, cfg, listed.labels, listed.class_names)
    first = assign_split(
        listed.labels, listed.official, cfg.val_per_class, cfg.test_per_class, cfg.split_seed
    )
    check_class_sizes(name, cfg, listed.labels, first, listed.class_names, sizes, listed.official_parts())
    chosen = np.flatnonzero(first != UNUSED)
    decoded = decode(listed, chosen, cfg.resolution, source_key(name, cfg))
    labels = listed.labels[chosen]
    found = duplicates.find(decoded.images)
    mixed = duplicates.conflicts(found, labels, [listed.names[i] for i in chosen], listed.class_names)
    if mixed and cfg.duplicates != "keep":
        _refuse_conflicts(name, cfg, mixed)
    kept, groups, report = duplicates.resolve(found, labels, cfg.duplicates)
    report.conflicts = mixed
    official = None if listed.official is None else listed.official[chosen][kept]
    split = assign_split(
        labels[kept],
        official,
        cfg.val_per_class,
        cfg.test_per_class,
        cfg.split_seed,
        None if groups is None else groups[kept],
    )
    check_class_sizes(name, cfg, labels[kept], split, listed.class_names, sizes, listed.official_parts())
    duplicates.count_parts(report, found.group[kept], split)
    used = split != UNUSED
    return Prepared(
        decoded.images[kept][used],
        labels[kept][used],
        split[used],
        listed.class_names,
        dict(sorted(decoded.kinds.items(), key=lambda kind: -kind[1])),
        listed.junk,
        listed.unused,
        listed.official_parts(),
        asdict(report),
        listed.merged,
    )
