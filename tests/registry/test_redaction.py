"""What hooks after ours (kedro-mlflow) see of parameters: URIs without passwords.

The end-to-end check (a Kedro run against real servers, its stores, artifacts and logs
searched for the password) is in tests/integration/test_promotion_servers.py.
"""

from __future__ import annotations

import os

from kedro.io import DataCatalog, MemoryDataset

from mnist_pipeline.registry.hooks import RedactedParamsHook

URI = "http://bot:s3cr3t@127.0.0.1:5000"
SHOWN = "http://bot:***@127.0.0.1:5000"


def test_later_hooks_see_redacted_params_and_the_node_the_real_ones():
    node_inputs = {"params:promotion": {"production": {"tracking_uri": URI}}, "model": object()}
    hook_inputs = node_inputs.copy()  # what Kedro hands every before_node_run hook
    RedactedParamsHook().before_node_run(hook_inputs)
    assert hook_inputs["params:promotion"] == {"production": {"tracking_uri": SHOWN}}
    assert hook_inputs["model"] is node_inputs["model"]
    assert node_inputs["params:promotion"]["production"]["tracking_uri"] == URI


def test_run_params_are_redacted_and_mlflow_prints_no_url_with_a_password(monkeypatch):
    monkeypatch.delenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", raising=False)
    run_params = {"runtime_params": {"promotion": {"production": {"tracking_uri": URI}}}}
    clean = DataCatalog({"parameters": MemoryDataset({"a": "sqlite:///x.db"})})
    RedactedParamsHook().before_pipeline_run({}, clean)
    assert "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT" not in os.environ
    secret = DataCatalog({"parameters": MemoryDataset({"p": {"tracking_uri": URI}})})
    RedactedParamsHook().before_pipeline_run(run_params, secret)
    assert run_params["runtime_params"]["promotion"]["production"]["tracking_uri"] == SHOWN
    assert os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] == "true"
