"""The deploy pipeline's wiring (that it stays out of ``__default__``: test_pipeline_registry)."""

from __future__ import annotations

from mnist_pipeline.pipelines.deploy import create_pipeline


def test_deploy_reads_the_raw_test_split_and_writes_both_reports() -> None:
    pipeline = create_pipeline()
    assert "mnist_t10k_raw" in pipeline.inputs()
    assert {"params:deploy_model", "params:deploy_validation", "params:serving"} <= set(
        pipeline.inputs()
    )
    assert {"deployment_report", "deployment_summary"} <= pipeline.all_outputs()
    assert all("gcp" in node.tags for node in pipeline.nodes)
    # the approval runs last, after both reports exist
    assert pipeline.nodes[-1].name.endswith("approve_deployment")
