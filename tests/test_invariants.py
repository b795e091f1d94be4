"""Boundaries and invariants that realistic planted bugs broke without a failing test.

* a split missing a digit at either end of the label range (0 or 9) is refused;
* the data fingerprint changes when only labels change;
* macro metrics are sklearn's, also when a digit is never predicted;
* lineage tags carry no credential, whatever the URIs hold.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score

from mnist_pipeline.datasets.image_shards import content_sha256
from mnist_pipeline.pipelines.evaluation.nodes import compute_metrics
from mnist_pipeline.pipelines.ingestion.nodes import validate_split
from mnist_pipeline.registry.config import Workspace
from mnist_pipeline.registry.promotion import lineage_tags
from tests.conftest import make_split


@pytest.mark.parametrize("missing", [0, 9])
def test_a_split_missing_a_digit_at_either_end_is_refused(missing):
    split = make_split(100)
    labels = split["labels"].copy()
    labels[labels == missing] = 5
    expected = {"name": "train", "num_images": 100, "min_images_per_class": 1}
    with pytest.raises(ValueError, match=rf"train: digits \[{missing}\] have fewer than 1"):
        validate_split({**split, "labels": labels}, expected)
    assert validate_split(split, expected) is split  # the complete split passes


def test_a_digit_exactly_at_the_minimum_count_passes():
    split = make_split(100)  # ten images of each digit
    validate_split(split, {"name": "t", "num_images": None, "min_images_per_class": 10})
    with pytest.raises(ValueError, match="fewer than 11"):
        validate_split(split, {"name": "t", "num_images": None, "min_images_per_class": 11})


def test_the_fingerprint_changes_when_only_labels_change():
    split = make_split(50)
    relabelled = split["labels"].copy()
    relabelled[0] = (relabelled[0] + 1) % 10
    same = content_sha256(split["images"], split["labels"].copy())
    assert same == content_sha256(split["images"], split["labels"])
    assert content_sha256(split["images"], relabelled) != same


def test_macro_metrics_are_sklearns_even_when_a_digit_is_never_predicted():
    rng = np.random.default_rng(3)
    labels = np.arange(200) % 10
    predicted = labels.copy()
    predicted[rng.choice(200, 60, replace=False)] = rng.integers(0, 10, 60)
    predicted[predicted == 9] = 8  # digit 9 is never predicted; 8 is over-predicted
    probabilities = np.full((200, 10), 0.01)
    probabilities[np.arange(200), predicted] = 0.91
    metrics = compute_metrics(probabilities, {"labels": labels.astype(np.uint8)})
    every = {"labels": list(range(10)), "average": "macro", "zero_division": 0}
    assert metrics["test_macro_precision"] == pytest.approx(
        precision_score(labels, predicted, **every)
    )
    assert metrics["test_macro_recall"] == pytest.approx(recall_score(labels, predicted, **every))
    assert metrics["test_macro_f1"] == pytest.approx(f1_score(labels, predicted, **every))
    assert metrics["test_accuracy"] == pytest.approx((predicted == labels).mean())


def test_lineage_tags_carry_no_credential():
    secret = "lin3age-pa55"
    uri = f"https://bot:{secret}@mlflow.example.com:5000"
    source = Workspace("sandbox", uri, uri, "mnist_cnn", "champion")
    candidate = {
        "version": "4",
        "run_id": "abc",
        "model_sha256": "f" * 64,
        "tags": {"data_fingerprint": "d" * 64, "origin": f"copied from {uri}"},
        "metrics": {"test_accuracy": 0.99},
    }
    tags = lineage_tags(source, candidate)
    assert tags["lineage.source_registry_uri"] == "https://bot:***@mlflow.example.com:5000"
    assert not [key for key, value in tags.items() if secret in key or secret in value]
