"""Two promotions of the same model at once, in two processes, against two real mlflow servers.

Two jobs on two machines share only the registries, so the test shares nothing else: each
process loads the model from a file, tracks its own run in the sandbox server and promotes
into the production server. A barrier lines both up right before registration and again
right before the copy, so both look for an existing version before either has created one
(the race of issue 11: duplicate sandbox versions, two production copies of one sandbox
version, a run promoting a version it had not judged).
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
import traceback
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RUNS = 2
BARRIER_TIMEOUT_S = 300
ALIAS_RACE_ROUNDS = 30


def _promote_once(  # noqa: PLR0917  (a process target: positional args)
    sandbox_url: str,
    experiment: str,
    params: dict[str, Any],
    model_path: str,
    test_path: str,
    barrier: Any,
    results: Any,
) -> None:
    """One promotion job (runs in a spawned process): register, judge, promote."""
    try:
        import keras

        from mnist_pipeline.pipelines.promotion import nodes

        model = keras.models.load_model(model_path)
        with np.load(test_path) as data:
            test = {"images": data["images"], "labels": data["labels"]}
        mlflow.set_tracking_uri(sandbox_url)
        mlflow.set_registry_uri(sandbox_url)
        mlflow.set_experiment(experiment)
        metrics = {"test_accuracy": 0.9, "test_loss": 0.3}
        with mlflow.start_run():
            barrier.wait(BARRIER_TIMEOUT_S)
            candidate = nodes.register_candidate(
                model, metrics, {"model_input": "c" * 64}, test, params
            )
            decision, _ = nodes.judge_candidate(candidate, params)
            barrier.wait(BARRIER_TIMEOUT_S)
            report = nodes.promote_candidate(candidate, decision, test, params)
        results.put({"candidate": candidate, "verdict": decision, "report": report})
    except BaseException:  # report it to the test, whatever it is
        results.put({"error": traceback.format_exc()})
        barrier.abort()


def _versions(url: str, model: str) -> list[str]:
    client = mlflow.MlflowClient(tracking_uri=url, registry_uri=url)
    return sorted(str(v.version) for v in client.search_model_versions(f"name='{model}'"))


def test_two_promotions_at_once_make_one_version_in_each_registry(
    tmp_path: Path, mlflow_servers, mlflow_names, tiny_model, mnist_slices
):
    sandbox, production = mlflow_servers.sandbox, mlflow_servers.production
    name = mlflow_names.model  # the servers are the module's: this test's own model name
    model, _ = tiny_model
    test_path = tmp_path / "test.npz"
    np.savez(test_path, **mnist_slices["test"])
    params = {
        "model_name": name,
        "champion_alias": "champion",
        "gate": {
            "mode": "enabled",
            "metric": "test_accuracy",
            "min_accuracy": 0.5,
            "tolerance": 0.0,
            "fail_run_on_refusal": True,
        },
        "production": {
            "tracking_uri": production.url,
            "model_name": name,
            "alias": "production",
            "experiment": mlflow_names.production_experiment,
        },
        "verify": {"num_images": 16, "seed": 0, "atol": 1e-6},
    }
    context = multiprocessing.get_context("spawn")  # TensorFlow must not be forked
    barrier, results = context.Barrier(RUNS), context.Queue()
    experiment, model_path = mlflow_names.experiment, str(model.saved_path)
    args = (sandbox.url, experiment, params, model_path, str(test_path), barrier, results)
    jobs = [context.Process(target=_promote_once, args=args) for _ in range(RUNS)]
    for job in jobs:
        job.start()
    outcomes = []
    try:
        for _ in jobs:
            outcomes.append(results.get(timeout=2 * BARRIER_TIMEOUT_S))
    except queue.Empty:
        pytest.fail(f"only {len(outcomes)} of {RUNS} promotions finished")
    finally:
        for job in jobs:
            job.join(timeout=60)
            if job.is_alive():
                job.kill()
    errors = [o["error"] for o in outcomes if "error" in o]
    assert not errors, "\n".join(errors)

    # No duplicate: one sandbox version, one production copy of it.
    assert _versions(sandbox.url, name) == ["1"]
    assert _versions(production.url, name) == ["1"]
    client = mlflow.MlflowClient(tracking_uri=production.url, registry_uri=production.url)
    promoted = client.get_model_version_by_alias(name, "production")
    assert str(promoted.version) == "1" and promoted.tags["lineage.verified"] == "true"
    assert promoted.tags["lineage.source_version"] == "1"
    # Every report names the version it judged, and it is the one that was promoted.
    for outcome in outcomes:
        judged = outcome["verdict"]["candidate_version"]
        assert judged == outcome["candidate"]["version"] == "1"
        assert outcome["report"]["candidate_version"] == judged
        assert outcome["report"]["version"] == "1"

    # The write the two promotions collided on in CI, raced on its own: MLflow's SQL registry
    # inserts a new alias after looking for it, and without store.set_alias's retry two
    # writers at once lost that race in 21 of these 30 rounds (``UNIQUE constraint failed``).
    sandbox_client = mlflow.MlflowClient(tracking_uri=sandbox.url, registry_uri=sandbox.url)
    errors = _race_new_aliases(sandbox_client, name, "1")
    assert not errors, "\n".join(errors)
    aliases = sandbox_client.get_registered_model(name).aliases
    assert {f"race-{r}" for r in range(ALIAS_RACE_ROUNDS)} <= set(aliases)


def _race_new_aliases(client: mlflow.MlflowClient, model: str, version: str) -> list[str]:
    """Set each of ``ALIAS_RACE_ROUNDS`` new aliases from two threads at once; the errors."""
    from mnist_pipeline.registry import store

    errors: list[str] = []

    def set_alias(alias: str, barrier: threading.Barrier) -> None:
        barrier.wait(BARRIER_TIMEOUT_S)
        try:
            store.set_alias(client, model, alias, version)
        except Exception as error:  # the test reports every failure
            errors.append(f"{alias}: {error}")

    for round_ in range(ALIAS_RACE_ROUNDS):
        barrier = threading.Barrier(2)
        alias = f"race-{round_}"
        writers = [threading.Thread(target=set_alias, args=(alias, barrier)) for _ in range(2)]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
    return errors
