"""Images of any size and colour → MNIST's convention, checked on real MNIST digits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnist_pipeline.client.__main__ import main as client_main
from mnist_pipeline.client.image import (
    WORK_SIZE,
    ImageReadError,
    load_mnist_image,
    read_image,
    to_mnist,
)
from tests.client.bombs import bilevel_png
from tests.client.render import render, save
from tests.conftest import read_mnist_split


@pytest.fixture(scope="module")
def digits(real_mnist_dir: Path) -> dict[str, np.ndarray]:
    test = read_mnist_split(real_mnist_dir, "t10k")
    return {"images": test["images"][:40], "labels": test["labels"][:40]}


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel().astype(float), b.ravel().astype(float))[0, 1])


def _mass_centre(image: np.ndarray) -> tuple[float, float]:
    weights = image.astype(float)
    rows, cols = np.indices(image.shape)
    return (rows * weights).sum() / weights.sum(), (cols * weights).sum() / weights.sum()


@pytest.mark.parametrize(
    ("name", "kwargs", "save_args"),
    [
        ("dark ink on cream paper, JPEG", {}, {"format": "JPEG", "quality": 85}),
        ("white chalk on a blackboard, PNG", {"paper": (30, 40, 35), "ink": (235, 235, 230)}, {}),
        ("small and off-centre, PNG", {"scale": 2, "canvas": (90, 70), "offset": (5, 12)}, {}),
        ("huge, JPEG", {"scale": 20, "canvas": (700, 900), "offset": (40, 300)}, {"quality": 90}),
    ],
)
def test_rendered_mnist_digits_come_back_as_mnist(
    digits, tmp_path: Path, name: str, kwargs: dict, save_args: dict
) -> None:
    scores = []
    for index, digit in enumerate(digits["images"]):
        suffix = ".jpg" if save_args.get("format") == "JPEG" or "quality" in save_args else ".png"
        path = save(render(digit, **kwargs), tmp_path / f"{index}{suffix}", **save_args)
        recovered = load_mnist_image(path)
        assert recovered.shape == (28, 28)
        assert recovered.dtype == np.uint8
        assert recovered.max() == 255  # white digit on black, full range
        assert np.count_nonzero(recovered[:2]) == 0  # a black margin, as in MNIST
        row, col = _mass_centre(recovered)
        assert abs(row - 14) <= 1 and abs(col - 14) <= 1
        scores.append(_correlation(recovered, digit))
    assert np.median(scores) > 0.9, f"{name}: {np.round(scores, 2)}"


def test_digit_fits_a_20_pixel_box_keeping_its_aspect_ratio() -> None:
    bar = np.zeros((400, 400), np.uint8)
    bar[50:350, 180:220] = 255  # a tall stroke, 300 × 40
    image = to_mnist(Image.fromarray(bar))
    rows, cols = np.flatnonzero(image.any(1)), np.flatnonzero(image.any(0))
    assert rows[-1] - rows[0] + 1 == 20
    assert cols[-1] - cols[0] + 1 in (3, 4)  # 40 × 20/300 ≈ 2.7 plus anti-aliasing


def test_transparent_background_uses_the_strokes(digits) -> None:
    digit = digits["images"][0]
    rgba = np.zeros((*digit.shape, 4), np.uint8)
    rgba[..., 3] = digit  # black strokes whose opacity is the digit, on transparency
    recovered = to_mnist(Image.fromarray(rgba, "RGBA").resize((112, 112)))
    assert _correlation(recovered, digit) > 0.9


def test_sixteen_bit_grayscale_png(digits, tmp_path: Path) -> None:
    digit = digits["images"][1]
    deep = (255 - digit.astype(np.uint16)) * 257  # 16-bit, dark digit on white
    path = tmp_path / "deep.png"
    Image.fromarray(deep).resize((84, 84)).save(path)
    assert Image.open(path).mode.startswith("I")
    eight_bit = save(Image.fromarray(255 - digit).resize((84, 84)), tmp_path / "8bit.png")
    # read like the same picture in 8 bits (not clipped to white, as a plain convert("L") does)
    assert _correlation(load_mnist_image(path), load_mnist_image(eight_bit)) > 0.98


def test_blank_image_is_refused(tmp_path: Path) -> None:
    path = save(Image.new("RGB", (64, 64), (250, 250, 250)), tmp_path / "blank.png")
    with pytest.raises(ImageReadError, match=r"blank\.png: no digit found"):
        load_mnist_image(path)


def test_unreadable_and_missing_files_are_named(tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    with pytest.raises(ImageReadError, match=r"cannot read .*broken\.png as an image"):
        load_mnist_image(broken)
    with pytest.raises(ImageReadError, match=r"image file not found: .*nope\.jpg"):
        load_mnist_image(tmp_path / "nope.jpg")


def test_a_decompression_bomb_exits_2_with_a_message(tmp_path: Path, capsys) -> None:
    bomb = bilevel_png(tmp_path / "bomb.png", 20_000, 20_000)  # 400 MP in a few hundred kB
    assert bomb.stat().st_size < 1_000_000
    code = client_main([str(bomb), "--url", "http://127.0.0.1:1/invocations"])
    assert code == 2
    err = capsys.readouterr().err
    assert f"{bomb}: the image is too large to decode" in err


def test_a_png_over_the_pixel_limit_is_refused_before_it_is_decoded(tmp_path: Path) -> None:
    path = bilevel_png(tmp_path / "huge.png", 10_000, 10_000)
    with pytest.raises(ImageReadError, match=r"10,000 × 10,000 pixels is more than this client"):
        read_image(path)


def test_a_large_png_is_shrunk_while_it_is_read(tmp_path: Path) -> None:
    # 49 MP: decoded once (1 byte a pixel), then reduced to about WORK_SIZE, never float32 whole
    path = bilevel_png(tmp_path / "one.png", 7_000, 7_000, bar=(1_000, 6_000, 3_200, 3_800))
    image = read_image(path)
    assert WORK_SIZE <= max(image.size) < 2 * WORK_SIZE
    digit = load_mnist_image(path)
    rows, cols = np.flatnonzero(digit.any(1)), np.flatnonzero(digit.any(0))
    assert rows[-1] - rows[0] + 1 == 20  # the bar, 5,000 × 600, fits the 20-pixel box
    assert cols[-1] - cols[0] + 1 in (2, 3)  # 600 × 20/5,000 = 2.4


def test_a_huge_jpeg_is_decoded_at_a_smaller_scale(tmp_path: Path) -> None:
    photo = Image.new("L", (9_000, 8_000), 240)  # 72 MP, over the limit if decoded whole
    photo.paste(10, (4_200, 1_000, 4_800, 7_000))
    path = tmp_path / "photo.jpg"
    photo.save(path, quality=80)
    del photo
    image = read_image(path)
    assert WORK_SIZE <= max(image.size) < 2 * WORK_SIZE
    rows = np.flatnonzero(load_mnist_image(path).any(1))
    assert rows[-1] - rows[0] + 1 == 20


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    photo = Image.new("L", (300, 200), 255)
    exif = photo.getexif()
    exif[0x0112] = 6  # stored on its side: rotate 90° clockwise to view
    path = tmp_path / "side.jpg"
    photo.save(path, exif=exif)
    assert read_image(path).size == (200, 300)
