"""Drift statistics: a window of predictions against the pinned model version's reference (PSI per
feature decides, KS is reported beside it; why PSI, and why no drift library: docs/operations.md,
"Drift monitoring").
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mnist_pipeline.image_contract import NUM_CLASSES
from mnist_pipeline.image_summaries import SUMMARY_FEATURES, image_summaries

CLASS_FEATURE = "predicted_class"
CONTINUOUS_FEATURES = ("probability", *SUMMARY_FEATURES)
FEATURES = (CLASS_FEATURE, *CONTINUOUS_FEATURES)
EPSILON = 1e-4  # floor for empty bins in PSI
NO_DRIFT, DRIFT, INSUFFICIENT = "no_drift", "drift", "insufficient_data"


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population Stability Index of two proportion vectors over the same bins."""
    expected = np.clip(np.asarray(expected, dtype=np.float64), EPSILON, None)
    actual = np.clip(np.asarray(actual, dtype=np.float64), EPSILON, None)
    expected, actual = expected / expected.sum(), actual / actual.sum()
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def _proportions(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of ``values`` in each bin ``(-inf, e1], (e1, e2], ..., (ek, inf)``."""
    index = np.searchsorted(edges, values, side="left")
    return np.bincount(index, minlength=len(edges) + 1) / max(len(values), 1)


def feature_values(probabilities: np.ndarray, images: np.ndarray) -> dict[str, np.ndarray]:
    """Every monitored feature of a batch, from the model's output and its input images."""
    probabilities = np.asarray(probabilities, dtype=np.float32)
    return {
        CLASS_FEATURE: probabilities.argmax(axis=1),
        "probability": probabilities.max(axis=1),
        **image_summaries(images),
    }


def build_reference(
    features: dict[str, np.ndarray], bins: int = 10, sample_size: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """The reference of one model version from its features on training images."""
    classes = np.asarray(features[CLASS_FEATURE], dtype=np.int64)
    rng = np.random.default_rng(seed)
    reference: dict[str, Any] = {
        "num_images": len(classes),
        "class_distribution": (np.bincount(classes, minlength=NUM_CLASSES) / len(classes)).tolist(),
        "features": {},
    }
    for name in CONTINUOUS_FEATURES:
        values = np.asarray(features[name], dtype=np.float64)
        quantiles = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])
        edges = np.unique(np.round(quantiles, 6))
        sample = rng.choice(values, size=min(sample_size, len(values)), replace=False)
        reference["features"][name] = {
            "edges": edges.tolist(),
            "proportions": _proportions(values, edges).tolist(),
            "mean": float(values.mean()),
            "sample": np.round(sample, 5).tolist(),
        }
    return reference


def compare(
    reference: dict[str, Any], window: dict[str, np.ndarray], thresholds: dict[str, float]
) -> dict[str, Any]:
    """PSI (decision) and KS (information) of each feature; the verdict with its numbers.

    Args:
        reference: from :func:`build_reference`.
        window: the monitored records' features (``predicted_class``, ``probability``...).
        thresholds: PSI above which a feature has drifted, per feature name.
    """
    from scipy.stats import ks_2samp

    classes = np.asarray(window[CLASS_FEATURE], dtype=np.int64)
    observed = np.bincount(classes, minlength=NUM_CLASSES) / max(len(classes), 1)
    features: dict[str, dict[str, Any]] = {
        CLASS_FEATURE: {
            "psi": psi(reference["class_distribution"], observed),
            "threshold": float(thresholds[CLASS_FEATURE]),
            "reference": [round(v, 4) for v in reference["class_distribution"]],
            "window": [round(float(v), 4) for v in observed],
        }
    }
    for name in CONTINUOUS_FEATURES:
        spec = reference["features"][name]
        values = np.asarray(window[name], dtype=np.float64)
        ks = ks_2samp(np.asarray(spec["sample"]), values)
        observed_bins = _proportions(values, np.asarray(spec["edges"]))
        features[name] = {
            "psi": psi(spec["proportions"], observed_bins),
            "edges": spec["edges"],
            "reference": [round(v, 4) for v in spec["proportions"]],
            "window": [round(float(v), 4) for v in observed_bins],
            "threshold": float(thresholds[name]),
            "reference_mean": round(spec["mean"], 5),
            "window_mean": round(float(values.mean()), 5),
            "ks_statistic": round(float(ks.statistic), 5),
            "ks_pvalue": float(ks.pvalue),
        }
    for entry in features.values():
        entry["psi"] = round(entry["psi"], 5)
        entry["drifted"] = bool(entry["psi"] > entry["threshold"])
    drifted = sorted(
        (name for name, entry in features.items() if entry["drifted"]),
        key=lambda name: -features[name]["psi"],
    )
    return {
        "verdict": DRIFT if drifted else NO_DRIFT,
        "drifted_features": drifted,
        "records": len(classes),
        "reference_images": reference["num_images"],
        "features": features,
    }
