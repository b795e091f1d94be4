"""The run's log: each stage's own outcome line once it finished, and the run summary.

The lines themselves are each stage's ``outcome`` (tests/pipelines/<stage>/test_nodes.py);
here: when the hook logs them, what the summary holds, where it finds the reports.
"""

from __future__ import annotations

import logging

from kedro.pipeline import Pipeline, node

from mnist_pipeline.pipeline_registry import SANDBOX_STAGES
from mnist_pipeline.run_summary import (
    RunSummaryHook,
    reports_folder,
    stage_outcome,
    summary_lines,
)

METRICS = {"test_accuracy": 0.99, "test_loss": 0.03, "test_macro_f1": 0.99, "test_images": 5}
EVALUATION_LINE = "evaluation: test accuracy 99.00 % on 5 images (loss 0.0300, macro F1 0.9900)"
REFUSED = {
    "mode": "enabled",
    "passed": False,
    "promote": False,
    "reasons": ["too low"],
    "candidate_version": "3",
}


def _identity(x):
    return x


def _records(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "mnist_pipeline.run"]


def test_every_stage_of_the_lifecycle_and_deploy_says_its_outcome():
    for stage in (*SANDBOX_STAGES, "deploy"):
        assert callable(stage_outcome(stage)), stage
    assert stage_outcome("no_such_stage") is None


def test_summary_lists_the_stages_lines_the_reports_and_the_run():
    lines = summary_lines(
        [EVALUATION_LINE, "promotion: sandbox v3 gate passed → copied: mnist_cnn@production → v2"],
        "azure · lifecycle · 1a2b3c4",
        "data/08_reporting",
        "run 'azure · lifecycle · 1a2b3c4' (abc) in sqlite:///mlruns/sandbox.db",
    )
    text = "\n".join(lines)
    assert lines[0] == "Run summary (azure · lifecycle · 1a2b3c4):"
    for expected in ("99.00 %", "passed", "copied", "mnist_cnn@production → v2"):
        assert expected in text
    assert "data/08_reporting" in text and "sqlite:///mlruns/sandbox.db" in text


def test_the_reports_folder_is_where_the_catalogs_reporting_layer_goes():
    catalog = {
        "mnist_{split}_raw": {"type": "x", "filepath": "data/01_raw/{split}"},
        "trained_model": {"type": "x", "filepath": "data/06_models/m.keras"},
        "evaluation_metrics": {
            "type": "kedro_mlflow.io.artifacts.MlflowArtifactDataset",
            "dataset": {"type": "json.JSONDataset", "filepath": "/d/08_reporting/metrics.json"},
            "metadata": {"kedro-viz": {"layer": "reporting"}},
        },
    }
    assert reports_folder(catalog) == "/d/08_reporting"
    assert reports_folder({"trained_model": catalog["trained_model"]}) is None


def test_the_hook_logs_a_stage_once_all_its_nodes_ran(caplog):
    pipeline = Pipeline(
        [
            node(_identity, "a", "evaluation_metrics", name="compute", namespace="evaluation"),
            node(_identity, "evaluation_metrics", "b", name="plot", namespace="evaluation"),
        ]
    )
    hook = RunSummaryHook()
    hook.before_pipeline_run({"env": "azure", "pipeline_names": ["evaluation"]}, pipeline)
    first, second = sorted(pipeline.nodes, key=lambda n: n.name)
    with caplog.at_level(logging.INFO, logger="mnist_pipeline.run"):
        hook.after_node_run(first, {"evaluation_metrics": METRICS})
        assert not _records(caplog)  # the stage has a node left
        hook.after_node_run(second, {"b": METRICS})
        hook.after_pipeline_run()  # one stage: its line is enough, no summary
    assert _records(caplog) == [EVALUATION_LINE]


def test_a_stage_stopped_by_its_verdict_still_says_it_and_the_summary_lists_each(caplog):
    pipeline = Pipeline(
        [
            node(_identity, "a", "evaluation_metrics", name="compute", namespace="evaluation"),
            node(
                _identity, "evaluation_metrics", "gate_verdict", name="judge", namespace="promotion"
            ),
            node(
                _identity, "gate_verdict", "promotion_report", name="promote", namespace="promotion"
            ),
        ]
    )
    hook = RunSummaryHook()
    hook.before_pipeline_run({"env": "azure", "pipeline_names": ["__default__"]}, pipeline)
    by_name = {n.name: n for n in pipeline.nodes}
    with caplog.at_level(logging.INFO, logger="mnist_pipeline.run"):
        hook.after_node_run(by_name["evaluation.compute"], {"evaluation_metrics": METRICS})
        hook.after_node_run(by_name["promotion.judge"], {"gate_verdict": REFUSED})
        assert _records(caplog) == [EVALUATION_LINE]  # promotion has a node left
        hook.on_pipeline_error()  # promote_candidate raised GateRefusedError
    promotion = (
        "promotion: sandbox v3 gate REFUSED (too low) → nothing promoted, production untouched"
    )
    records = _records(caplog)
    assert records[:2] == [EVALUATION_LINE, promotion]
    summary = records[2].splitlines()
    assert summary[0].startswith("Run summary (azure · lifecycle · ")
    assert summary[1:3] == [f"  {EVALUATION_LINE}", f"  {promotion}"]
