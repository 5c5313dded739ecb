"""Images as a viewer shows them: every Pillow mode to 8-bit RGB, the study's centred square, and folder scans
that use every decodable file and name every other one.

Conversion kinds (`to_rgb`): one colour source, joined with "+" to the steps that applied, in this order:

- ``first frame``: a multi-frame file (animated GIF, multi-page TIFF, MPO); its first frame is used.
- ``orientation``: the EXIF / TIFF orientation tag turned or mirrored the image (`ImageOps.exif_transpose`).
- the colour source, exactly one of:
  ``rgb`` (8-bit RGB, used as it is), ``grey`` (1-bit or 8-bit grey, copied to three channels),
  ``palette`` (colours looked up in the palette), ``cmyk``, ``ycbcr``, ``lab``, ``hsv`` (Pillow's conversion to
  RGB), ``16-bit rescaled`` (0..65535 to 0..255: value / 257, rounded, so the full range is kept),
  ``32-bit stretched`` (integers outside 0..65535: the image's min..max to 0..255), ``float rescaled`` (floats in
  [0, 1] times 255, rounded), ``float stretched`` (floats outside [0, 1]: min..max to 0..255).
  High bit depths and floats become grey.
- ``alpha composited``: transparent pixels (alpha channel, or a palette / colour marked transparent) were
  composited on `BACKGROUND`, white, as a web page shows them. Fully opaque images do not get this step, nor do
  16-bit and float images (taken as opaque).

So a plain photo is ``rgb``, a phone photo taken upright ``orientation+rgb``, a PNG logo ``palette+alpha
composited``. Embedded ICC profiles are not applied, as in timm's and torchvision's loaders: the pixels are those
the pretrained networks were trained on.
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError
from tqdm import tqdm

BACKGROUND = (255, 255, 255)  # what transparent pixels become: white

FIRST_FRAME, ORIENTATION, ALPHA = "first frame", "orientation", "alpha composited"
SIXTEEN_BIT, THIRTY_TWO_BIT = "16-bit rescaled", "32-bit stretched"
FLOAT_RESCALED, FLOAT_STRETCHED = "float rescaled", "float stretched"
_COLOUR_SOURCES = {  # Pillow mode -> colour source
    mode: kind
    for kind, modes in (
        ("rgb", "RGB RGBX RGBA RGBa"),
        ("grey", "1 L LA La"),
        ("palette", "P PA"),
        ("cmyk", "CMYK"),
        ("ycbcr", "YCbCr"),
        ("lab", "LAB"),
        ("hsv", "HSV"),
    )
    for mode in modes.split()
}
KINDS = (
    FIRST_FRAME,
    ORIENTATION,
    *dict.fromkeys(_COLOUR_SOURCES.values()),
    SIXTEEN_BIT,
    THIRTY_TWO_BIT,
    FLOAT_RESCALED,
    FLOAT_STRETCHED,
    ALPHA,
)  # the vocabulary, in the order the steps are joined

# Skipped without a word but counted: hidden entries (.DS_Store, AppleDouble ._* files, .ipynb_checkpoints, .git)
# and the thumbnails and settings that Windows, macOS zips and Synology drop beside images.
_JUNK_NAMES = {"thumbs.db", "ehthumbs.db", "desktop.ini", "__macosx", "@eadir"}


def to_rgb(image: Image.Image) -> tuple[Image.Image, str]:
    """Any image Pillow opens as 8-bit RGB, the way a viewer shows it, and the kind of conversion (module docstring).

    The result may be `image` itself (already RGB, upright, opaque). Raises ValueError for a float image holding NaN
    or infinity, which viewers disagree on how to show.
    """
    steps = []
    if getattr(image, "is_animated", False):  # Pillow opens a file at its first frame
        steps.append(FIRST_FRAME)
    if image.getexif().get(ExifTags.Base.Orientation, 1) in range(2, 9):
        image = ImageOps.exif_transpose(image)
        steps.append(ORIENTATION)
    if image.mode == "F":
        image, colour = _float_to_grey(image)
    elif image.mode == "I" or image.mode.startswith("I;16"):
        image, colour = _integer_to_grey(image)
    else:
        colour = _COLOUR_SOURCES[image.mode]
        if image.has_transparency_data:
            image, composited = _on_background(image)
            colour += f"+{ALPHA}" if composited else ""
    steps.append(colour)
    return (image if image.mode == "RGB" else image.convert("RGB")), "+".join(steps)


def _on_background(image: Image.Image) -> tuple[Image.Image, bool]:
    """RGBA, LA, PA, palette or colour marked transparent, composited on BACKGROUND where alpha is below 255."""
    if image.mode == "La":  # premultiplied grey: Pillow converts it to LA only
        image = image.convert("LA")
    rgba = image.convert("RGBA")  # honours info["transparency"] of P, L and RGB images
    if rgba.getchannel("A").getextrema()[0] == 255:
        return rgba.convert("RGB"), False
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (*BACKGROUND, 255)), rgba), True


def _integer_to_grey(image: Image.Image) -> tuple[Image.Image, str]:
    """16-bit (I;16*, and I holding 0..65535 as Pillow opens 16-bit PGM) over the full 16-bit range; other 32-bit
    integers stretched from their min..max. Pillow's own convert to L or RGB would clip at 255 instead."""
    image = image.convert("I")
    low, high = image.getextrema()
    if low >= 0 and high <= 65535:
        return image.point(lambda x: x / 257 + 0.5).convert("L"), SIXTEEN_BIT  # + 0.5: convert truncates
    return _stretch(image.convert("F"), low, high), THIRTY_TWO_BIT


def _float_to_grey(image: Image.Image) -> tuple[Image.Image, str]:
    """Floats in [0, 1] (the usual convention of float images) times 255; any other range stretched min..max."""
    if not np.isfinite(np.asarray(image)).all():
        raise ValueError("float image holds NaN or infinite values")
    low, high = image.getextrema()
    if low >= 0 and high <= 1:
        return image.point(lambda x: x * 255 + 0.5).convert("L"), FLOAT_RESCALED
    return _stretch(image, low, high), FLOAT_STRETCHED


def _stretch(image: Image.Image, low: float, high: float) -> Image.Image:
    """Mode F from low..high to L 0..255 (a constant image becomes black)."""
    scale = 255 / (high - low) if high > low else 0.0
    return image.point(lambda x: (x - low) * scale + 0.5).convert("L")


def resize(images: np.ndarray, resolution: int) -> np.ndarray:
    """(N, H, W) or (N, H, W, C) uint8 to (N, resolution, resolution, 3) uint8, bilinear with antialiasing (torch);
    grey becomes RGB."""
    import torch  # here, so that listing a dataset does not pay for importing torch
    import torch.nn.functional as F

    x = torch.from_numpy(images).float()
    x = x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2)
    x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)
    x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def _square(image: Image.Image, resolution: int) -> tuple[np.ndarray, str]:
    image.draft("RGB", (resolution, resolution))  # JPEG: decode at a reduced scale still >= resolution (fast)
    image, kind = to_rgb(image)
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return resize(np.array(image.crop((left, top, left + side, top + side)))[None], resolution)[0], kind


def square(image: Image.Image, resolution: int) -> np.ndarray:
    """The centred square of the shorter side of `to_rgb(image)`, resized to (resolution, resolution, 3) uint8.

    Aspect ratio: the long side's edges are cut off rather than the object squashed, as ImageNet evaluation does.
    """
    return _square(image, resolution)[0]


@dataclass
class Decoded:
    """Images decoded and squared, with what was converted and what failed."""

    images: np.ndarray  # (M, resolution, resolution, 3) uint8: the inputs that decoded, in input order
    used: np.ndarray  # (M,) int64: the input index of each row of `images`
    kinds: dict[str, int]  # conversion kind (module docstring) -> number of images; sums to M
    failures: list[tuple[str, str]]  # (name, reason) of every input that did not decode, in input order


def decode_images(read: Callable[[int], Image.Image], names: Sequence[str], resolution: int) -> Decoded:
    """`square` of read(0) ... read(len(names) - 1), a progress bar on stderr. A failing input does not stop the
    others: every failure is collected with its name, so one message can name them all."""
    images = np.empty((len(names), resolution, resolution, 3), dtype=np.uint8)
    used, kinds, failures = [], Counter(), []
    for i in tqdm(range(len(names)), desc="decode", unit="image", disable=None):
        try:
            with read(i) as image:
                images[len(used)], kind = _square(image, resolution)
        except Exception as error:  # noqa: BLE001 -- one file's fault: Pillow raises OSError, ValueError, ...
            failures.append((names[i], f"cannot be decoded: {error}"))
            continue
        used.append(i)
        kinds[kind] += 1
    return Decoded(images[: len(used)], np.array(used, dtype=np.int64), dict(kinds), failures)


def decode_files(files: Sequence[Path], resolution: int) -> Decoded:
    """`decode_images` of image files, named by their paths."""
    return decode_images(lambda i: Image.open(files[i]), [str(f) for f in files], resolution)


@dataclass
class Scan:
    """A folder's files, each list sorted: `files` to use (every file Pillow decodes, whatever its extension),
    `junk` skipped by design (hidden entries, Thumbs.db, ...; a junk folder is one entry), and every other file or
    folder `unused` with its reason."""

    files: list[Path] = field(default_factory=list)
    junk: list[Path] = field(default_factory=list)
    unused: list[tuple[Path, str]] = field(default_factory=list)


def is_junk(name: str) -> bool:
    """Hidden (.DS_Store, ._* AppleDouble files, .ipynb_checkpoints) or system litter (Thumbs.db, __MACOSX, ...)."""
    return name.startswith(".") or name.lower() in _JUNK_NAMES


def unusable(path: Path) -> str | None:
    """Why Pillow cannot give an image for `path`, or None when it can.

    Opens the file, decodes its first frame (a JPEG at 1/8 scale) and converts it with `to_rgb`, so that truncated
    and corrupt files are found here and not halfway through decoding. Cost on this machine, one core: 1-2 ms per
    500x375 JPEG, about 0.5 ms per 125x94 PNG; for 2,000 such files 3.5 s, against 15 s to decode them at 224 px.
    """
    try:
        status = path.stat()
    except OSError as error:
        return "broken link" if path.is_symlink() else f"cannot be read: {error.strerror}"
    if not stat.S_ISREG(status.st_mode):
        return "not a regular file"  # a pipe or device: opening it could block
    if status.st_size == 0:
        return "empty file"
    try:
        image = Image.open(path)
    except UnidentifiedImageError:
        return "not an image Pillow can open"
    except PermissionError as error:
        return f"cannot be read: {error.strerror}"
    except Exception as error:  # noqa: BLE001 -- a header cut short or invalid, a decompression bomb
        return f"cannot be opened as an image ({error})"
    with image:
        try:
            image.draft(None, (1, 1))
            to_rgb(image)[0].load()
        except Exception as error:  # noqa: BLE001 -- truncated or corrupt data, NaN floats, ...
            return f"{image.format} image that cannot be decoded ({error})"
    return None


def scan_class_folder(folder: Path) -> Scan:
    """Every file under a class folder, sub-folders included, sorted into used, junk and unused (with reasons).

    Sub-folders belong to the class, as in torchvision's ImageFolder (`os.walk` following links); junk folders are
    not entered, and a link back to a folder already scanned is listed rather than followed (no loops, no
    duplicates). A file is used when Pillow decodes it (`unusable`), whatever its extension: .jfif, .JPG or none.
    """
    scan, seen = Scan(), set()

    def unlistable(error: OSError) -> None:
        scan.unused.append((Path(error.filename), f"folder cannot be listed: {error.strerror}"))

    for top, folders, names in os.walk(folder, onerror=unlistable, followlinks=True):
        real = os.path.realpath(top)
        if real in seen:
            scan.unused.append((Path(top), f"link to a folder already scanned ({real})"))
            folders.clear()
            continue
        seen.add(real)
        scan.junk += [Path(top, name) for name in folders + names if is_junk(name)]
        folders[:] = [name for name in folders if not is_junk(name)]
        for name in names:
            if is_junk(name):
                continue
            path = Path(top, name)
            reason = unusable(path)
            if reason:
                scan.unused.append((path, reason))
            else:
                scan.files.append(path)
    scan.files.sort()
    scan.junk.sort()
    scan.unused.sort()
    return scan


@dataclass
class DatasetScan:
    """An image-folder dataset: one `Scan` per class sub-folder, and what lies at the root outside them."""

    classes: dict[str, Scan]  # class folder name -> its scan, sorted by name
    root: Scan  # junk at the root (.ipynb_checkpoints, .DS_Store) and files outside every class folder

    def all_unused(self) -> list[tuple[Path, str]]:
        """Every file or folder not used, with its reason, for one message naming them all."""
        return self.root.unused + [entry for scan in self.classes.values() for entry in scan.unused]

    def junk_count(self) -> int:
        """How many junk entries were skipped (a junk folder counts once)."""
        return len(self.root.junk) + sum(len(scan.junk) for scan in self.classes.values())


def scan_dataset(root: Path) -> DatasetScan:
    """Each non-junk sub-folder of `root` is a class (`scan_class_folder`); files directly in `root` are unused.

    Raises OSError (FileNotFoundError, NotADirectoryError) when `root` cannot be listed.
    """
    entries = sorted(root.iterdir())
    outside = Scan(
        junk=[p for p in entries if is_junk(p.name)],
        unused=[(p, "outside every class folder") for p in entries if not is_junk(p.name) and not p.is_dir()],
    )
    folders = [p for p in entries if p.is_dir() and not is_junk(p.name)]
    return DatasetScan({folder.name: scan_class_folder(folder) for folder in folders}, outside)
