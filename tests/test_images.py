"""Images as a viewer shows them, and folder scans that use or name every file: small generated inputs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from pretraining_gap.data.images import (
    BACKGROUND,
    KINDS,
    decode_files,
    scan_class_folder,
    scan_dataset,
    square,
    to_rgb,
)

RED, BLUE = (220, 20, 20), (20, 20, 220)


def saved(image: Image.Image, path: Path, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **options)
    return path


def reopened_rgb(path: Path) -> tuple[np.ndarray, str]:
    with Image.open(path) as image:
        rgb, kind = to_rgb(image)
        return np.asarray(rgb), kind


def old_square(image: Image.Image, resolution: int) -> np.ndarray:
    """datasets.square as of commit 57c712e: convert("RGB"), centre crop, torch bilinear with antialiasing."""
    image.draft("RGB", (resolution, resolution))
    image = image.convert("RGB")
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    x = (
        torch.from_numpy(np.array(image.crop((left, top, left + side, top + side))))
        .float()
        .permute(2, 0, 1)[None]
    )
    x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0).numpy()


# --- Decoding is faithful -------------------------------------------------------------------------------------------


def logo(mode: str) -> Image.Image:
    """A 16x16 image whose border is fully transparent with hidden colour black, around an opaque red centre;
    one pixel is half transparent."""
    rgba = np.zeros((16, 16, 4), dtype=np.uint8)  # transparent black
    rgba[4:12, 4:12] = (*RED, 255)
    rgba[0, 0] = (*RED, 128)
    image = Image.fromarray(rgba)
    if mode == "LA":
        return image.convert("LA")
    if mode == "P":  # index 0 transparent black, as a GIF or an indexed PNG keeps it
        palette = Image.fromarray(rgba[..., :3]).quantize(colors=4)
        palette.info["transparency"] = palette.getpixel((0, 1))
        return palette
    if mode == "RGB":  # a colour marked transparent (PNG tRNS)
        image = image.convert("RGB")
        image.info["transparency"] = (0, 0, 0)
        return image
    return image


@pytest.mark.parametrize(
    "mode, suffix, colour",
    [
        ("RGBA", "png", "rgb"),
        ("LA", "png", "grey"),
        ("P", "png", "palette"),
        ("P", "gif", "palette"),
        ("RGB", "png", "rgb"),
    ],
)
def test_transparent_pixels_come_out_as_the_background_not_their_hidden_colour(
    tmp_path, mode, suffix, colour
):
    image = logo(mode)
    path = saved(image, tmp_path / f"logo.{suffix}", transparency=image.info.get("transparency"))
    rgb, kind = reopened_rgb(path)
    assert kind == f"{colour}+alpha composited"
    assert rgb.shape == (16, 16, 3) and rgb.dtype == np.uint8
    assert (rgb[1:4, 1:4] == BACKGROUND).all() and (rgb[12:, 12:] == BACKGROUND).all()  # not the hidden black
    centre = rgb[6:10, 6:10].reshape(-1, 3)
    expected = np.array(RED) if colour != "grey" else np.array(RED).dot([0.299, 0.587, 0.114])
    assert np.abs(centre - expected).max() <= 2
    if mode in ("RGBA", "LA"):  # half transparent: halfway between the colour and the background
        assert np.abs(rgb[0, 0].astype(int) - (np.array(BACKGROUND) + centre[0]) / 2).max() <= 2
    assert (square(Image.open(path), 8)[0, -1] == BACKGROUND).all()  # the study's square goes through to_rgb


def test_an_opaque_alpha_channel_changes_nothing(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    path = saved(Image.fromarray(pixels).convert("RGBA"), tmp_path / "opaque.png")
    rgb, kind = reopened_rgb(path)
    assert kind == "rgb" and np.array_equal(rgb, pixels)


def test_a_16_bit_ramp_spans_0_to_255_evenly_in_every_format(tmp_path):
    ramp = np.arange(65536, dtype=np.uint16).reshape(256, 256)  # every 16-bit value once
    expected = np.round(ramp / 257).astype(np.uint8)
    for suffix, mode in (("png", "I;16"), ("tif", "I;16"), ("pgm", "I")):  # Pillow opens 16-bit PGM as I
        path = saved(Image.fromarray(ramp), tmp_path / f"ramp.{suffix}")
        assert Image.open(path).mode == mode
        rgb, kind = reopened_rgb(path)
        assert kind == "16-bit rescaled"
        assert np.array_equal(rgb[..., 0], expected) and np.array_equal(rgb[..., 0], rgb[..., 2])
        counts = np.bincount(rgb[..., 0].ravel(), minlength=256)
        assert (
            counts.min() >= 128 and counts.max() <= 257
        )  # each level from ~257 values; the ends half as many


def test_32_bit_integers_outside_16_bits_are_stretched_from_their_minimum_to_their_maximum(tmp_path):
    values = np.linspace(-1000, 1_000_000, 64).astype(np.int32).reshape(8, 8)
    path = saved(Image.fromarray(values), tmp_path / "counts.tif")
    assert Image.open(path).mode == "I"
    rgb, kind = reopened_rgb(path)
    assert kind == "32-bit stretched"
    grey = rgb[..., 0].ravel().astype(int)
    assert grey[0] == 0 and grey[-1] == 255 and (np.diff(grey) >= 0).all()
    assert np.abs(grey - (values.ravel() + 1000) / 1_001_000 * 255).max() <= 0.5 + 1e-6


def test_float_images_in_0_1_are_scaled_and_other_ranges_stretched(tmp_path):
    unit = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    rgb, kind = reopened_rgb(saved(Image.fromarray(unit), tmp_path / "unit.tif"))
    assert kind == "float rescaled" and np.array_equal(rgb[..., 1], np.round(unit * 255).astype(np.uint8))
    dim = (unit * 0.5).astype(np.float32)  # a dark image stays dark: [0, 1] is not stretched
    rgb, _ = reopened_rgb(saved(Image.fromarray(dim), tmp_path / "dim.tif"))
    assert rgb.max() == 128
    wide = (unit * 8 - 2).astype(np.float32)  # -2 .. 6
    rgb, kind = reopened_rgb(saved(Image.fromarray(wide), tmp_path / "wide.tif"))
    assert kind == "float stretched" and rgb[0, 0, 0] == 0 and rgb[-1, -1, 0] == 255
    assert np.abs(rgb[..., 0] - (wide + 2) / 8 * 255).max() <= 0.5 + 1e-4


def test_a_float_image_with_nan_is_refused_with_a_reason(tmp_path):
    values = np.zeros((4, 4), dtype=np.float32)
    values[1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        to_rgb(Image.fromarray(values))


def test_cmyk_jpeg_and_palette_come_out_in_their_colours(tmp_path):
    path = saved(Image.new("RGB", (16, 16), RED).convert("CMYK"), tmp_path / "print.jpg", quality=95)
    assert Image.open(path).mode == "CMYK"
    rgb, kind = reopened_rgb(path)
    assert kind == "cmyk" and np.abs(rgb.astype(int) - RED).max() <= 4
    two = np.zeros((4, 4, 3), dtype=np.uint8) + np.array(BLUE, dtype=np.uint8)
    two[:2] = RED
    rgb, kind = reopened_rgb(saved(Image.fromarray(two).quantize(colors=2), tmp_path / "two.png"))
    assert kind == "palette" and np.array_equal(rgb, two)


def halves() -> Image.Image:
    """40 wide, 20 high: red left half, blue right half."""
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, :20], pixels[:, 20:] = RED, BLUE
    return Image.fromarray(pixels)


@pytest.mark.parametrize("orientation, top, bottom", [(6, RED, BLUE), (8, BLUE, RED), (1, None, None)])
def test_camera_orientation_is_applied_as_a_viewer_shows_it(tmp_path, orientation, top, bottom):
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = saved(halves(), tmp_path / "photo.jpg", exif=exif, quality=95)
    rgb, kind = reopened_rgb(path)
    if orientation == 1:
        assert kind == "rgb" and rgb.shape == (20, 40, 3)
        return
    # 6: the camera was turned clockwise, a viewer turns the picture back so the left edge is on top; 8: the reverse
    assert kind == "orientation+rgb" and rgb.shape == (40, 20, 3)
    assert np.abs(rgb[2].astype(int) - top).max() <= 12 and np.abs(rgb[-3].astype(int) - bottom).max() <= 12
    squared = square(Image.open(path), 8)  # the centre square of the upright picture: top half `top`
    assert (
        np.abs(squared[0].astype(int) - top).max() <= 12
        and np.abs(squared[-1].astype(int) - bottom).max() <= 12
    )


def test_an_animated_gif_gives_its_first_frame_and_says_so(tmp_path):
    frames = [Image.new("RGB", (8, 8), colour) for colour in (RED, BLUE)]
    path = saved(frames[0], tmp_path / "blink.gif", save_all=True, append_images=frames[1:], duration=100)
    rgb, kind = reopened_rgb(path)
    assert kind == "first frame+palette" and np.abs(rgb.astype(int) - RED).max() <= 8


def test_every_mode_pillow_has_becomes_8_bit_rgb_with_a_known_kind():
    for mode in Image.MODES:
        rgb, kind = to_rgb(Image.new(mode, (3, 2)))
        assert rgb.mode == "RGB" and rgb.size == (3, 2), mode
        assert set(kind.split("+")) <= set(KINDS), (mode, kind)


def test_grey_and_rgb_images_are_squared_exactly_as_before(tmp_path):
    """Plain images, and 8x8 grey ones like the default digits dataset, give the same arrays as before."""
    rng = np.random.default_rng(0)
    pictures = [
        Image.fromarray(rng.integers(0, 256, (30, 44, 3), dtype=np.uint8)),
        Image.fromarray(rng.integers(0, 256, (50, 21), dtype=np.uint8)),
    ]
    files = [
        saved(p, tmp_path / f"{i}.{suffix}") for i, p in enumerate(pictures) for suffix in ("png", "jpg")
    ]
    for file in files:
        assert np.array_equal(square(Image.open(file), 16), old_square(Image.open(file), 16)), file
    digits = np.round(rng.integers(0, 17, (200, 8, 8)) * (255 / 16)).astype(np.uint8)  # 17 ink levels
    for digit in digits:
        assert np.array_equal(square(Image.fromarray(digit), 32), old_square(Image.fromarray(digit), 32))


# --- Nothing is skipped silently ------------------------------------------------------------------------------------


def jpeg_bytes(colour=RED, size=(24, 16), noise: bool = False) -> bytes:
    from io import BytesIO

    pixels = np.zeros((size[1], size[0], 3), dtype=np.uint8) + np.array(colour, dtype=np.uint8)
    if noise:  # most of the file is then image data, after the header
        pixels = np.random.default_rng(0).integers(0, 256, pixels.shape, dtype=np.uint8)
    buffer = BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def test_every_file_pillow_decodes_is_used_whatever_its_extension(tmp_path):
    cat = tmp_path / "cat"
    used = [write(cat / name, jpeg_bytes()) for name in ("a.jfif", "b.JPG", "c", "d.jpeg.bak", "e.png")]
    used.append(saved(Image.new("L", (5, 5)), cat / "f.webp"))
    scan = scan_class_folder(cat)
    assert scan.files == sorted(used) and scan.unused == [] and scan.junk == []


def test_junk_is_skipped_and_counted(tmp_path):
    cat = tmp_path / "cat"
    write(cat / "real.jpg", jpeg_bytes())
    junk = [
        write(cat / name, jpeg_bytes()) for name in (".DS_Store", "Thumbs.db", "desktop.ini", "._real.jpg")
    ]
    junk += [
        write(cat / ".ipynb_checkpoints" / "real-checkpoint.jpg", jpeg_bytes()).parent,
        write(cat / "__MACOSX" / "._real.jpg", b"\0\5\26\7").parent,
        write(cat / "sub" / "@eaDir" / "SYNOPHOTO_THUMB_S.jpg", jpeg_bytes()).parent,
    ]
    scan = scan_class_folder(cat)
    assert scan.files == [cat / "real.jpg"] and scan.unused == []
    assert scan.junk == sorted(junk)  # a junk folder counts once; its images are not used


def test_every_unusable_file_is_named_with_its_reason_in_one_scan(tmp_path):
    cat = tmp_path / "cat"
    good = write(cat / "good.jpg", jpeg_bytes())
    whole = jpeg_bytes(size=(64, 48), noise=True)
    bad = {
        write(cat / "notes.jpg", "not an image, whatever the name says\n"): "not an image Pillow can open",
        write(cat / "empty.png", b""): "empty file",
        write(
            cat / "cut.jpg", whole[: len(whole) // 2]
        ): "JPEG image that cannot be decoded (image file is trunc",
        write(cat / "stub.jpg", whole[:300]): "cannot be opened as an image (",
        write(cat / "sub" / "labels.csv", "a,b\n"): "not an image Pillow can open",
        saved(Image.fromarray(np.full((2, 2), np.nan, dtype=np.float32)), cat / "nan.tif"): "NaN",
    }
    os.symlink(cat / "gone.jpg", cat / "dangling.jpg")
    bad[cat / "dangling.jpg"] = "broken link"
    scan = scan_class_folder(cat)
    assert scan.files == [good]
    assert [path for path, _ in scan.unused] == sorted(bad)
    for path, reason in scan.unused:
        assert bad[path] in reason, (path, reason)


def test_images_in_sub_folders_belong_to_the_class_and_links_back_are_not_followed(tmp_path):
    cat = tmp_path / "cat"
    files = [write(cat / name, jpeg_bytes()) for name in ("z.jpg", "indoor/a.jpg", "indoor/night/b.jpg")]
    os.symlink(cat, cat / "indoor" / "loop")  # a link back up: followed, it would never end
    elsewhere = write(tmp_path / "shared" / "s.jpg", jpeg_bytes())
    os.symlink(elsewhere.parent, cat / "shared")  # a linked folder is walked, as ImageFolder does
    scan = scan_class_folder(cat)
    assert scan.files == sorted(files + [cat / "shared" / "s.jpg"])
    assert [(path, reason.split(" (")[0]) for path, reason in scan.unused] == [
        (cat / "indoor" / "loop", "link to a folder already scanned")
    ]


def test_a_dataset_scan_names_files_outside_class_folders_and_skips_junk_folders(tmp_path):
    root = tmp_path / "pets"
    write(root / "cat" / "1.jpg", jpeg_bytes())
    write(root / "dog" / "deep" / "2.jpg", jpeg_bytes())
    write(root / "dog" / "broken.jpg", b"\xff\xd8\xff")
    write(root / ".ipynb_checkpoints" / "x.jpg", jpeg_bytes())
    write(root / ".DS_Store", b"\0")
    write(root / "README.md", "# pets\n")
    scan = scan_dataset(root)
    assert list(scan.classes) == ["cat", "dog"]
    assert scan.classes["dog"].files == [root / "dog" / "deep" / "2.jpg"]
    assert [path for path, _ in scan.all_unused()] == [root / "README.md", root / "dog" / "broken.jpg"]
    assert scan.junk_count() == 2


def test_decoding_a_list_of_files_counts_kinds_and_collects_every_failure(tmp_path):
    files = [
        write(tmp_path / "a.jpg", jpeg_bytes()),
        saved(logo("RGBA"), tmp_path / "b.png"),
        write(tmp_path / "c.jpg", b"oops"),
        saved(Image.new("L", (9, 7), 90), tmp_path / "d.png"),
        write(tmp_path / "e.jpg", jpeg_bytes()[:200]),
        write(tmp_path / "f.jpg", jpeg_bytes(BLUE)),
    ]
    decoded = decode_files(files, 8)
    assert decoded.images.shape == (4, 8, 8, 3) and decoded.used.tolist() == [0, 1, 3, 5]
    assert decoded.kinds == {"rgb": 2, "rgb+alpha composited": 1, "grey": 1}
    assert [name for name, _ in decoded.failures] == [str(files[2]), str(files[4])]
    assert all(reason.startswith("cannot be decoded: ") for _, reason in decoded.failures)
    assert np.abs(decoded.images[3].astype(int) - BLUE).max() <= 8  # rows stay with their files
