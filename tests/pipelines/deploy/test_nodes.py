"""Deploy nodes that are plain functions of data."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_pipeline.pipelines.deploy.nodes import (
    DeploymentRejectedError,
    approve_deployment,
    outcome,
    select_validation_batch,
    summarise_deployment,
)
from tests.conftest import make_split

PASSED = {
    "deployable": True,
    "failures": [],
    "checked_at": "2026-11-29T18:00:00+00:00",
    "duration_s": 12.5,
    "model": {
        "name": "mnist_cnn",
        "alias": "production",
        "version": "4",
        "model_uri": "models:/mnist_cnn/4",
        "registry_uri": "http://127.0.0.1:5001",
    },
    "gate": {"min_accuracy": 0.97, "atol": 1e-5, "max_latency_p50_ms": None},
    "server": {"url": "http://127.0.0.1:40000", "startup_s": 6.1},
    "validation": {
        "num_images": 1000,
        "served_accuracy": 0.9871,
        "offline_accuracy": 0.9871,
        "digits_differing_from_offline": 0,
        "max_abs_probability_difference": 0.0,
        "predictions_match": True,
    },
    "latency_ms": {"single_image": {"n": 200, "p50": 2.1, "p95": 3.4, "p99": 5.0, "mean": 2.3}},
}


def test_validation_batch_is_a_seeded_sample_of_the_test_split() -> None:
    split = make_split(300)
    batch = select_validation_batch(split, {"num_images": 50, "seed": 3})
    again = select_validation_batch(split, {"num_images": 50, "seed": 3})
    other = select_validation_batch(split, {"num_images": 50, "seed": 4})
    assert batch["images"].shape == (50, 28, 28)
    np.testing.assert_array_equal(batch["images"], again["images"])
    assert not np.array_equal(batch["images"], other["images"])
    # every chosen image keeps its own label
    index = [
        int(np.flatnonzero((split["images"] == image).all(axis=(1, 2)))[0])
        for image in batch["images"]
    ]
    np.testing.assert_array_equal(split["labels"][index], batch["labels"])


def test_validation_batch_is_capped_at_the_split_and_must_not_be_empty() -> None:
    split = make_split(20)
    assert len(select_validation_batch(split, {"num_images": 500})["labels"]) == 20
    with pytest.raises(ValueError, match="num_images must be at least 1"):
        select_validation_batch(split, {"num_images": 0})


def test_summary_of_a_deployable_model() -> None:
    summary = summarise_deployment(PASSED)
    assert summary.startswith("# Deployment validation: DEPLOYABLE")
    assert "version 4" in summary and "0.9871 (gate 0.97)" in summary
    assert "p50 2.1" in summary
    assert "All checks passed." in summary


def test_summary_and_refusal_list_every_failure() -> None:
    failed = {
        **PASSED,
        "deployable": False,
        "failures": ["served accuracy 0.5000 on 1000 test images is below the gate 0.9700"],
    }
    summary = summarise_deployment(failed)
    assert summary.startswith("# Deployment validation: NOT DEPLOYABLE")
    assert "- served accuracy 0.5000" in summary
    with pytest.raises(DeploymentRejectedError, match=r"version 4\) is not deployable") as caught:
        approve_deployment(failed, summary)
    assert "below the gate 0.9700" in str(caught.value)


def test_summary_of_a_model_that_never_resolved() -> None:
    report = {
        "deployable": False,
        "failures": ["resolving the model failed: ModelResolutionError: no alias"],
        "model": {"name": "mnist_cnn", "alias": "production", "registry_uri": "sqlite:///x.db"},
    }
    summary = summarise_deployment(report)
    assert "NOT DEPLOYABLE" in summary and "resolving the model failed" in summary


def test_approval_passes_a_deployable_model() -> None:
    assert approve_deployment(PASSED, summarise_deployment(PASSED)) is None


def test_outcome_says_deployable_or_not():
    """The stage's line in the run's log (moved from tests/test_run_summary.py)."""
    report = {
        "deployable": True,
        "model": {"name": "mnist_cnn", "alias": "production", "version": "2"},
        "validation": {"served_accuracy": 0.989, "num_images": 1000},
        "latency_ms": {"single_image": {"p50": 4.1}},
        "failures": [],
    }
    assert outcome({"deployment_report": report}) == (
        "deploy: DEPLOYABLE — models:/mnist_cnn@production v2: served accuracy 0.9890 on "
        "1,000 images, single-image p50 4.1 ms"
    )
    bad = {**report, "deployable": False, "failures": ["accuracy 0.95 < 0.97"]}
    line = outcome({"deployment_report": bad})
    assert line.startswith("deploy: NOT DEPLOYABLE")
    assert line.endswith("failed: accuracy 0.95 < 0.97")
