"""The project's pipelines, one package per stage (found by ``find_pipelines``)."""

import numpy as np


def seeded_indices(size: int, count: int, seed: int) -> np.ndarray:
    """``count`` indices of ``range(size)`` (at most all), drawn with ``seed``, in order: the same
    records for the same seed, on any machine."""
    return np.sort(np.random.default_rng(seed).choice(size, size=min(count, size), replace=False))
