"""The near-duplicate rule of pretraining_gap/data/duplicates.py, measured on both sides (docs/duplicates.md):

- recall: copies planted from originals (resized 0.5x and 1.5x, a JPEG recompressed at quality 60, a PNG saved as
  JPEG at quality 75), decoded at the study's resolution as `prepare` decodes them: the share found with their
  original. Originals: 300 digits saved as 32 px PNGs, and 200 crops (96-200 px) of scikit-learn's two photos.
- false positives: pairs of distinct images of scikit-learn's digits (1,797 images, 1.6 M pairs, full of look-alikes)
  that the rule joins.
- what `prepare` finds on digits, and on a folder made from digits (32 px PNGs) with 10% planted copies, in its
  default mode (group) and with keep (how many groups would straddle the parts without grouping).

Run: python -m benchmarks.duplicates   (about 3 minutes on one shared core)
"""

from __future__ import annotations

import argparse
import io
import logging
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from pydantic import TypeAdapter
from sklearn.datasets import load_digits, load_sample_image

from pretraining_gap import config
from pretraining_gap.data import datasets, duplicates, images

RESOLUTIONS = (16, 32)


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue()))


COPIES = {
    "resized 0.5x": lambda im: im.resize(
        (max(1, im.width // 2), max(1, im.height // 2)), Image.Resampling.LANCZOS
    ),
    "resized 1.5x": lambda im: im.resize((im.width * 3 // 2, im.height * 3 // 2), Image.Resampling.BICUBIC),
    "JPEG recompressed (95 -> 60)": lambda im: _jpeg(_jpeg(im, 95), 60),
    "PNG saved as JPEG (75)": lambda im: _jpeg(im, 75),
}


def digit_pixels() -> tuple[np.ndarray, np.ndarray]:
    digits = load_digits()
    return np.round(digits.images * (255 / 16)).astype(np.uint8), digits.target


def originals() -> dict[str, list[Image.Image]]:
    pixels, _ = digit_pixels()
    rng = np.random.default_rng(0)
    crops = []
    for name in ("china.jpg", "flower.jpg"):
        photo = load_sample_image(name)
        for _ in range(100):
            side = rng.integers(96, 200)
            top, left = rng.integers(0, photo.shape[0] - side), rng.integers(0, photo.shape[1] - side)
            crops.append(Image.fromarray(photo[top : top + side, left : left + side]))
    files = [Image.fromarray(p).resize((32, 32), Image.Resampling.BILINEAR) for p in pixels[:300]]
    return {"digits (32 px PNG)": files, "photo crops": crops}


def recall(sources: dict[str, list[Image.Image]], resolution: int) -> None:
    for source, found in sources.items():
        shares = []
        for copy in COPIES.values():
            decoded = np.stack([images.square(im, resolution) for im in found + [copy(im) for im in found]])
            i, j = duplicates.near_pairs(decoded)
            exact = duplicates.find(decoded).exact
            n = len(found)
            joined = set(zip(i.tolist(), j.tolist())) | {(k, k + n) for k in range(n) if exact[k + n] == k}
            shares.append(np.mean([(k, k + n) in joined for k in range(n)]))
        per_copy = ", ".join(f"{name} {share:.1%}" for name, share in zip(COPIES, shares))
        print(
            f"  recall at {resolution} px, {source} ({len(found)} each): {np.mean(shares):.1%} ({per_copy})"
        )


def false_positives(resolution: int) -> None:
    pixels, labels = digit_pixels()
    decoded = np.stack([images.square(Image.fromarray(p), resolution) for p in pixels])
    i, j = duplicates.near_pairs(decoded)
    pairs = len(decoded) * (len(decoded) - 1) // 2
    print(
        f"  false positives at {resolution} px, digits: {len(i)} of {pairs:,} pairs joined ({len(i) / pairs:.2e}), "
        f"{int((labels[i] != labels[j]).sum())} across classes; exact copies: "
        f"{int((duplicates.find(decoded).exact != np.arange(len(decoded))).sum())}"
    )


def planted_folder(root: Path, share: float = 0.1) -> int:
    """Digits as 32 px PNGs, one folder per class, plus `share` of them copied with one of COPIES each."""
    pixels, labels = digit_pixels()
    rng = np.random.default_rng(1)
    planted = rng.choice(len(pixels), int(share * len(pixels)), replace=False)
    for k, (p, label) in enumerate(zip(pixels, labels)):
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(p).resize((32, 32), Image.Resampling.BILINEAR).save(root / str(label) / f"{k}.png")
    for n, k in enumerate(planted):
        original = Image.open(root / str(labels[k]) / f"{k}.png")
        name, copy = list(COPIES.items())[n % len(COPIES)]
        copy(original).save(root / str(labels[k]) / f"{k} copy.{'jpg' if 'JPEG' in name else 'png'}")
    return len(planted)


def prepared_counts() -> None:
    digits = config.SklearnDigits(source="sklearn_digits", resolution=32, val_per_class=20, test_per_class=50)
    print(
        "  digits (32 px, group):",
        duplicates.Report(**datasets.prepare("digits", digits, [50]).duplicates).line(),
    )
    with tempfile.TemporaryDirectory() as folder:
        planted = planted_folder(Path(folder))
        print(f"  digits folder with {planted} planted copies (32 px):")
        for mode in ("group", "keep"):
            block = {"source": "imagefolder", "path": folder, "resolution": 32, "val_per_class": 20}
            block.update(test_per_class=50, duplicates=mode)
            cfg = TypeAdapter(config.Dataset).validate_python(block)
            print(
                f"    {mode}:", duplicates.Report(**datasets.prepare("planted", cfg, [50]).duplicates).line()
            )


def main() -> None:
    argparse.ArgumentParser(
        prog="python -m benchmarks.duplicates",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    ).parse_args()
    logging.disable(logging.WARNING)
    print(
        f"rule: phash Hamming distance <= {duplicates.PHASH_BITS} and mean grey difference <= "
        f"{duplicates.GREY_LEVELS:g}"
    )
    sources = originals()
    for resolution in RESOLUTIONS:
        recall(sources, resolution)
        false_positives(resolution)
    prepared_counts()


if __name__ == "__main__":
    main()
