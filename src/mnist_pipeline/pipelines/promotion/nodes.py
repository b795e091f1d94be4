"""Promotion nodes: register the candidate, judge it, promote it into production.

Registries are the outside system these nodes exist for; they reach them only through
:mod:`mnist_pipeline.registry`. The sandbox is the workspace this run is tracked in (configured
in ``mlflow.yml``); production is ``promotion.production`` in the parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from mnist_pipeline.pipelines import seeded_indices
from mnist_pipeline.registry import gate, model_card, promotion, store
from mnist_pipeline.registry.config import Workspace

INPUT_EXAMPLE_IMAGES = 3


def register_candidate(
    model: Any,
    metrics: dict[str, float],
    fingerprint: dict[str, Any],
    test: dict[str, np.ndarray],
    params: dict[str, Any],
) -> dict[str, Any]:
    """Log the trained model (the contract's pyfunc) into this run and register it in the sandbox.

    The version is tagged with its test metrics, the data fingerprint and the git commit.
    The same trained model registered twice reuses its version (matched by weights hash).
    """
    lineage = {
        "data_fingerprint": str(fingerprint.get("model_input", "")),
        "git_commit": store.git_commit(),
    }
    numeric = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
    store.tag_active_run(lineage)
    return store.register_candidate(
        model,
        input_example=test["images"][:INPUT_EXAMPLE_IMAGES],
        model_name=params["model_name"],
        metrics=numeric,
        tags=lineage,
        champion_alias=params["champion_alias"],
    )


def judge_candidate(
    candidate: dict[str, Any], params: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Apply the quality gate: minimum accuracy and the sandbox champion's metrics.

    Returns the verdict twice: for the promotion node (this run's own state, in memory) and
    for the ``gate_verdict`` report (also set as ``gate.*`` tags on the run).
    """
    sandbox = store.current_workspace(params["model_name"], params["champion_alias"])
    champion = store.alias_metrics(sandbox)
    verdict = gate.decide(
        candidate["metrics"], None if champion is None else champion["metrics"], params["gate"]
    )
    verdict["candidate_version"] = candidate["version"]
    verdict["candidate"] = {
        key: candidate.get(key) for key in ("model_uri", "run_id", "model_sha256", "reused")
    }
    verdict["champion_version"] = None if champion is None else champion["version"]
    store.tag_active_run(
        {
            "gate.mode": verdict["mode"],
            "gate.passed": verdict["passed"],
            "gate.promote": verdict["promote"],
            "gate.reasons": "; ".join(verdict["reasons"]),
        }
    )
    return verdict, verdict


def sample_images(test: dict[str, np.ndarray], params: dict[str, Any]) -> np.ndarray:
    """A seeded sample of raw test images for verifying the production copy."""
    images = test["images"]
    return images[seeded_indices(len(images), int(params["num_images"]), int(params["seed"]))]


def promote_candidate(
    candidate: dict[str, Any],
    verdict: dict[str, Any],
    test: dict[str, np.ndarray],
    params: dict[str, Any],
) -> dict[str, Any]:
    """On a passing verdict: sandbox ``champion``, copy to production, verify, move its alias.

    Raises:
        GateRefusedError: refused in ``enabled`` mode and ``gate.fail_run_on_refusal``.
        RegistryUnreachableError, CopyMismatchError: production alias left where it was.
    """
    if str(verdict.get("candidate_version")) != str(candidate["version"]):
        raise ValueError(
            f"the gate judged sandbox v{verdict.get('candidate_version')} but this run "
            f"registered v{candidate['version']}: refusing to promote a version not judged"
        )
    if not verdict["promote"]:
        reasons = "; ".join(verdict["reasons"])
        if verdict["mode"] == "enabled" and params["gate"]["fail_run_on_refusal"]:
            raise gate.GateRefusedError(
                f"sandbox {candidate['model_name']} v{candidate['version']} refused by the "
                f"quality gate ({reasons}); production left untouched"
            )
        return {"action": "skipped", "candidate_version": candidate["version"], "reasons": reasons}
    target = Workspace.from_config("production", params["production"])
    sandbox = store.current_workspace(candidate["model_name"], params["champion_alias"])
    report = promotion.promote(
        sandbox,
        target,
        candidate,
        sample_images(test, params["verify"]),
        atol=float(params["verify"]["atol"]),
    )
    store.tag_active_run(
        {"promotion.action": report["action"], "promotion.version": report["version"]}
    )
    return report


def publish_model_card(
    *,
    report: dict[str, Any],
    candidate: dict[str, Any],
    verdict: dict[str, Any],
    metrics: dict[str, Any],
    per_class: pd.DataFrame,
    fingerprint: dict[str, Any],
    params: dict[str, Any],
) -> str:
    """The production version's model card: its registry description, logged beside it."""
    return model_card.publish_promoted(
        report=report,
        candidate=candidate,
        verdict=verdict,
        metrics=metrics,
        per_class=per_class.to_dict("records"),
        data_fingerprint=str(fingerprint.get("model_input", "")),
        production=params["production"],
    )


def outcome(outputs: Mapping[str, Any]) -> str | None:
    """The stage's line in the run's log: the gate's verdict with its reasons, then what
    happened in production (also when the stage then fails on a refusal)."""
    verdict = outputs.get("gate_verdict")
    if verdict is None:
        return None
    word = "passed" if verdict.get("passed") else "REFUSED"
    if verdict.get("mode") not in (None, "enabled"):
        word += f" ({verdict['mode']})"
    line = f"promotion: sandbox v{verdict.get('candidate_version', '?')} gate {word}"
    if reasons := verdict.get("reasons"):
        line += f" ({'; '.join(map(str, reasons))})"
    if report := outputs.get("promotion_report"):
        line += f" → {report.get('action', '?')}: {report.get('message', '')}".rstrip(": ")
    elif not verdict.get("promote", True):
        line += " → nothing promoted, production untouched"
    return line
