"""Any PNG/JPEG of a handwritten digit → a 28 × 28 image in the MNIST convention, made the way
MNIST was (:func:`to_mnist`: grayscale, light-on-dark, size-normalised to 20 px, centred by
mass); large images are shrunk while read and oversized ones refused (docs/serving.md, "The
client").
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

SIZE = 28
BOX = 20
CENTRE = 14.0  # MNIST's digits have their centre of mass at row 14, column 14
NOISE_LEVEL = 0.15  # of the stretched range
MIN_CONTRAST = 24  # grey levels between background and the strongest ink
MAX_DECODED_PIXELS = 64_000_000  # refused above (8,000 × 8,000): a PNG must be decoded whole
WORK_SIZE = 2048  # larger images are shrunk to about this on their longer side while read
ORIENTATION = 0x0112  # EXIF tag
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class ImageReadError(ValueError):
    """An image file that cannot be read or holds no digit."""


def read_image(path: str | Path) -> Image.Image:
    """Open a PNG/JPEG (any format Pillow reads), with a clear error naming the file.

    Large images are shrunk while they are read, never decoded whole in floating
    point: a JPEG is decoded at 1/2, 1/4 or 1/8 scale (``draft``), anything else is
    reduced by an integer factor right after decoding, to about ``WORK_SIZE`` pixels
    on its longer side. Images with more than ``MAX_DECODED_PIXELS`` pixels to decode
    (after ``draft``) are refused, as are decompression bombs.

    Raises:
        ImageReadError: missing, unreadable, or too large to decode.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"image file not found: {path}")
    try:
        with warnings.catch_warnings():
            # Pillow warns above 89 MP; the pixel limit below is this client's own.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.draft(None, (WORK_SIZE, WORK_SIZE))  # JPEG: decode at a smaller scale
                width, height = image.size
                if width * height > MAX_DECODED_PIXELS:
                    raise ImageReadError(
                        f"{path}: {width:,} × {height:,} pixels is more than this client "
                        f"decodes ({MAX_DECODED_PIXELS:,} pixels): scale the image down first"
                    )
                image.load()
                orientation = image.getexif().get(ORIENTATION, 1)  # a PNG's may follow its pixels
                return _orient(_shrink(image), orientation)
    except Image.DecompressionBombError as exc:
        raise ImageReadError(
            f"{path}: the image is too large to decode (a decompression bomb?): {exc}"
        ) from exc
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ImageReadError(
            f"cannot read {path} as an image (expected PNG or JPEG): {exc}"
        ) from exc


def _shrink(image: Image.Image) -> Image.Image:
    """``image`` reduced by an integer factor to about ``WORK_SIZE`` on its longer side."""
    factor = max(image.size) // WORK_SIZE
    if factor < 2:
        return image
    if image.mode == "1":
        image = image.convert("L")
    elif image.mode in ("P", "PA"):
        transparent = image.mode == "PA" or "transparency" in image.info
        image = image.convert("RGBA" if transparent else "L")
    elif image.mode.startswith("I;16"):
        image = image.convert("I")
    try:
        return image.reduce(factor)
    except ValueError:  # a mode reduce() does not take (CMYK, LAB, ...)
        return image.convert("RGBA" if "A" in image.mode else "RGB").reduce(factor)


def _orient(image: Image.Image, orientation: int) -> Image.Image:
    """Apply the EXIF orientation read before shrinking (a phone photo stands upright)."""
    method = _TRANSPOSE.get(orientation)
    return image.transpose(method) if method is not None else image


def _grayscale(image: Image.Image) -> np.ndarray:
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        alpha = np.asarray(image.convert("RGBA"))[..., 3].astype(np.float32)
        if alpha.min() < 250:  # a transparent background: the opaque strokes are the digit
            return alpha
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit or float grayscale
        pixels = np.asarray(image, dtype=np.float32)
        low, high = float(pixels.min()), float(pixels.max())
        return (pixels - low) * (255.0 / max(high - low, 1e-6))
    return np.asarray(image.convert("L"), dtype=np.float32)


def _border(pixels: np.ndarray) -> np.ndarray:
    ring = max(1, min(pixels.shape) // 20)
    return np.concatenate(
        [
            pixels[:ring].ravel(),
            pixels[-ring:].ravel(),
            pixels[:, :ring].ravel(),
            pixels[:, -ring:].ravel(),
        ]
    )


def to_mnist(image: Image.Image | np.ndarray, name: str = "image") -> np.ndarray:
    """The digit in ``image`` as uint8 (28, 28): white on black, 20 × 20 box, centred by mass.

    Args:
        image: a Pillow image (any mode, any size) or a 2-D array of grey levels.
        name: how to call the image in error messages (e.g. its path).

    Raises:
        ImageReadError: the image is empty or holds nothing that stands out from
            its background.
    """
    pixels = (
        np.asarray(image, dtype=np.float32) if isinstance(image, np.ndarray) else _grayscale(image)
    )
    if pixels.ndim != 2 or min(pixels.shape) == 0:
        raise ImageReadError(f"{name}: expected a 2-D image, found shape {pixels.shape}")
    background = float(np.median(_border(pixels)))
    if background > 127.5:  # dark ink on light paper: invert
        pixels, background = 255.0 - pixels, 255.0 - background
    ink = np.clip(pixels - background, 0, None)
    peak = float(ink.max())
    if peak < MIN_CONTRAST:
        raise ImageReadError(
            f"{name}: no digit found (nothing stands out from the background by more than "
            f"{MIN_CONTRAST} grey levels)"
        )
    ink = ink * (255.0 / peak)
    ink[ink < NOISE_LEVEL * 255] = 0
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    height, width = crop.shape
    scale = BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    digit = Image.fromarray(crop.astype(np.uint8)).resize(size, Image.Resampling.LANCZOS)
    digit = np.asarray(digit, dtype=np.float32)
    digit *= 255.0 / max(float(digit.max()), 1.0)  # full range again, as MNIST digits have
    return _centre_by_mass(digit)


def _centre_by_mass(digit: np.ndarray) -> np.ndarray:
    height, width = digit.shape
    total = float(digit.sum()) or 1.0
    row_mass = (digit.sum(axis=1) * np.arange(height)).sum() / total
    col_mass = (digit.sum(axis=0) * np.arange(width)).sum() / total
    top = int(np.clip(round(CENTRE - row_mass), 0, SIZE - height))
    left = int(np.clip(round(CENTRE - col_mass), 0, SIZE - width))
    canvas = np.zeros((SIZE, SIZE), dtype=np.float32)
    canvas[top : top + height, left : left + width] = digit
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


def load_mnist_image(source: str | Path | Image.Image | np.ndarray | Any) -> np.ndarray:
    """A path, Pillow image or array → uint8 (28, 28) in the MNIST convention."""
    if isinstance(source, str | Path):
        return to_mnist(read_image(source), name=str(source))
    return to_mnist(source)
