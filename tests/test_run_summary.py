"""Stage outcome lines and the run summary (run_summary), from real-shaped outputs."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from kedro.pipeline import Pipeline, node

from mnist_pipeline.run_summary import (
    RunSummaryHook,
    deploy_line,
    evaluation_line,
    ingestion_line,
    promotion_line,
    run_label,
    summary_lines,
)

VERDICT_PASSED = {
    "mode": "enabled",
    "passed": True,
    "promote": True,
    "reasons": ["accuracy 0.9921 >= minimum 0.9900", "no champion yet"],
    "candidate_version": "3",
}
PROMOTED = {
    "action": "copied",
    "version": "2",
    "target": {"model_name": "mnist_cnn", "alias": "production"},
    "message": "mnist_cnn@production → v2 (sandbox v3, copied)",
}


def test_ingestion_line_gives_counts_shape_and_balance():
    images = np.zeros((60, 28, 28), np.uint8)
    summary = pd.DataFrame({"train_share": [0.09, 0.112], "test_share": [0.1, 0.1]})
    line = ingestion_line(
        {
            "mnist_train": {"count": len(images), "shape": "28×28"},
            "mnist_test": {"count": 10, "shape": "28×28"},
            "mnist_class_summary": summary,
        }
    )
    assert line.startswith("ingestion: 60 train + 10 test images verified")
    assert "28×28" in line and "classes 9.0–11.2 % of train" in line


def test_evaluation_and_promotion_lines_give_the_numbers():
    metrics = {"test_accuracy": 0.9921, "test_loss": 0.0254, "test_macro_f1": 0.992}
    metrics["test_images"] = 10000
    assert evaluation_line({"evaluation_metrics": metrics}) == (
        "evaluation: test accuracy 99.21 % on 10,000 images (loss 0.0254, macro F1 0.9920)"
    )
    line = promotion_line({"gate_verdict": VERDICT_PASSED, "promotion_report": PROMOTED})
    assert line.startswith("promotion: sandbox v3 gate passed (accuracy 0.9921 >= minimum")
    assert line.endswith("→ copied: mnist_cnn@production → v2 (sandbox v3, copied)")
    refused = {**VERDICT_PASSED, "passed": False, "promote": False, "reasons": ["too low"]}
    assert promotion_line({"gate_verdict": refused}) == (
        "promotion: sandbox v3 gate REFUSED (too low) → nothing promoted, production untouched"
    )


def test_deploy_line_says_deployable_or_not():
    report = {
        "deployable": True,
        "model": {"name": "mnist_cnn", "alias": "production", "version": "2"},
        "validation": {"served_accuracy": 0.989, "num_images": 1000},
        "latency_ms": {"single_image": {"p50": 4.1}},
        "failures": [],
    }
    assert deploy_line({"deployment_report": report}) == (
        "deploy: DEPLOYABLE — models:/mnist_cnn@production v2: served accuracy 0.9890 on "
        "1,000 images, single-image p50 4.1 ms"
    )
    bad = {**report, "deployable": False, "failures": ["accuracy 0.95 < 0.97"]}
    line = deploy_line({"deployment_report": bad})
    assert line.startswith("deploy: NOT DEPLOYABLE")
    assert line.endswith("failed: accuracy 0.95 < 0.97")


def test_summary_names_accuracy_verdict_action_version_and_reports():
    lines = summary_lines(
        {
            "evaluation_metrics": {"test_accuracy": 0.9921},
            "gate_verdict": VERDICT_PASSED,
            "promotion_report": PROMOTED,
        },
        "azure · lifecycle · 1a2b3c4",
        "data/08_reporting",
        "run 'azure · lifecycle · 1a2b3c4' (abc) in sqlite:///mlruns/sandbox.db",
    )
    text = "\n".join(lines)
    assert lines[0] == "Run summary (azure · lifecycle · 1a2b3c4):"
    for expected in ("99.21 %", "passed", "copied", "mnist_cnn v2 (@production)"):
        assert expected in text
    assert "data/08_reporting" in text and "sqlite:///mlruns/sandbox.db" in text


def test_run_label_names_env_pipeline_and_commit():
    label = run_label({"env": "azure", "pipeline_names": ["__default__"], "project_path": "."})
    env, pipeline, commit = label.split(" · ")
    assert (env, pipeline) == ("azure", "lifecycle")
    assert commit == "unknown" or len(commit.split("+")[0]) == 7
    assert run_label({"env": None, "pipeline_names": ["deploy"]}).startswith("local · deploy · ")


def _identity(x):
    return x


def test_the_hook_logs_a_stage_once_all_its_nodes_ran(caplog):
    pipeline = Pipeline(
        [
            node(_identity, "a", "evaluation_metrics", name="compute", namespace="evaluation"),
            node(_identity, "evaluation_metrics", "b", name="plot", namespace="evaluation"),
        ]
    )
    hook = RunSummaryHook()
    hook.before_pipeline_run({"env": "azure", "pipeline_names": ["evaluation"]}, pipeline, {})
    metrics = {"test_accuracy": 0.99, "test_loss": 0.03, "test_macro_f1": 0.99, "test_images": 5}
    first, second = sorted(pipeline.nodes, key=lambda n: n.name)
    with caplog.at_level(logging.INFO, logger="mnist_pipeline.run"):
        hook.after_node_run(first, {"evaluation_metrics": metrics})
        assert not caplog.records  # the stage has a node left
        hook.after_node_run(second, {"b": metrics})
        hook.after_pipeline_run()  # one plain stage: its line is enough, no summary
    assert [r.getMessage() for r in caplog.records] == [
        "evaluation: test accuracy 99.00 % on 5 images (loss 0.0300, macro F1 0.9900)"
    ]
