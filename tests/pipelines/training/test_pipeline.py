from __future__ import annotations

import pytest

from mnist_pipeline.pipelines.training import create_pipeline
from mnist_pipeline.pipelines.training.nodes import summarise
from mnist_pipeline.training import TrainingResult


def test_training_pipeline_wiring():
    pipeline = create_pipeline()
    assert pipeline.inputs() == {
        "train_model_input",
        "validation_model_input",
        "model_input_fingerprint",
        "params:training",
    }
    assert pipeline.outputs() == {"trained_model", "training_history", "training_summary"}
    # The Spark hook starts a session only for pipelines with nodes tagged "spark".
    assert all("spark" in node.tags for node in pipeline.nodes)


def test_summary_reports_throughput_and_final_figures():
    result = TrainingResult(
        model_path="/m.keras",
        history={"loss": [0.5, 0.2], "val_accuracy": [0.97, 0.99]},
        num_workers=2,
        initial_epoch=1,
        epochs=2,
        fit_time_s=4.0,
        wall_time_s=9.0,
        examples_trained=1000,
        global_batch_size=128,
        run_key="k",
        checkpoint_dir="/c",
    )
    summary = summarise(result, {"mode": "distributed"})
    assert summary["mode"] == "distributed"
    assert summary["num_workers"] == 2
    assert summary["images_per_s"] == pytest.approx(250.0)
    assert summary["final_val_accuracy"] == 0.99
    assert summary["resumed_from_epoch"] == 1
