"""The comparison at the heart of the validation: served vs offline predictions and the gate."""

from __future__ import annotations

import numpy as np

from mnist_pipeline.serving.validation import _compare, _percentiles

LABELS = np.array([0, 1, 2, 3])
OFFLINE = np.eye(10, dtype=np.float32)[LABELS] * 0.9 + 0.01


def _check(served: np.ndarray, min_accuracy: float = 0.5) -> dict:
    report: dict = {"failures": []}
    _compare(
        report, served=served, offline=OFFLINE, labels=LABELS, min_accuracy=min_accuracy, atol=1e-5
    )
    return report


def test_identical_predictions_pass() -> None:
    report = _check(OFFLINE.copy())
    assert report["failures"] == []
    assert report["validation"]["predictions_match"] is True
    assert report["validation"]["served_accuracy"] == 1.0


def test_a_changed_probability_fails_even_when_digits_agree() -> None:
    served = OFFLINE.copy()
    served[2, 5] += 1e-3
    report = _check(served)
    assert report["validation"]["digits_differing_from_offline"] == 0
    assert "max |Δp| = 1.00e-03 (allowed 1e-05)" in report["failures"][0]


def test_a_different_digit_and_a_low_accuracy_both_fail() -> None:
    served = OFFLINE.copy()
    served[[0, 1, 2]] = served[[1, 2, 0]]  # three answers swapped
    report = _check(served, min_accuracy=0.9)
    assert report["validation"]["served_accuracy"] == 0.25
    assert any("3 of 4 digits differ" in f for f in report["failures"])
    assert any("0.2500 on 4 test images is below the gate 0.9000" in f for f in report["failures"])


def test_percentiles() -> None:
    figures = _percentiles(list(range(1, 101)))
    assert figures["n"] == 100
    assert 50 <= figures["p50"] <= 51
    assert figures["p99"] > figures["p95"] > figures["p50"]
    assert _percentiles([]) == {}
