"""Render real MNIST digits the way people photograph or draw them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def render(
    digit: np.ndarray,
    *,
    scale: int = 5,
    canvas: tuple[int, int] = (300, 220),
    offset: tuple[int, int] = (60, 30),
    paper: tuple[int, int, int] = (245, 240, 225),
    ink: tuple[int, int, int] = (20, 30, 90),
) -> Image.Image:
    """An MNIST digit, enlarged ``scale`` times, in ``ink`` on ``paper``, off-centre, RGB."""
    size = (digit.shape[1] * scale, digit.shape[0] * scale)
    big = np.asarray(Image.fromarray(digit).resize(size, Image.Resampling.BICUBIC), np.float32)
    alpha = (big / 255.0)[..., None]
    colours = alpha * np.asarray(ink, np.float32) + (1 - alpha) * np.asarray(paper, np.float32)
    image = Image.new("RGB", canvas, paper)
    image.paste(Image.fromarray(colours.astype(np.uint8)), offset)
    return image


def save(image: Image.Image, path: Path, **kwargs) -> Path:
    image.save(path, **kwargs)
    return path
