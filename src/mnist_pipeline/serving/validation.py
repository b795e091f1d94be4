"""Validate a registered model in a real model server before calling it deployable.

Like TFX's InfraValidator: the model is loaded the way production loads it, served by
the real server process on 127.0.0.1, and asked over HTTP. It is deployable only if

* it loads and predicts in **its own fresh environment** — its pinned requirements only,
  without this project, as ``mlflow models serve`` and Databricks Model Serving load it
  (:mod:`mnist_pipeline.registry.model_env`, ``mlflow models predict --env-manager uv``) —
  and predicts there what it predicts offline (a model pickled against project code fails
  here, and the report says why),
* the server starts and answers both request formats,
* every served prediction equals the offline prediction (``model.predict`` in this
  process) — same digit, probabilities within ``atol``,
* the served accuracy on the validation batch clears the gate,
* a malformed request is refused with 400 and the server keeps serving,
* (optionally) single-image p50 latency is under ``max_latency_p50_ms``.

:func:`validate_in_server` never raises for a failed check: it returns a report that
says which checks failed and why (the deploy pipeline saves it, then refuses).
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import requests

from mnist_pipeline.image_contract import to_model_batch
from mnist_pipeline.redaction import redact
from mnist_pipeline.registry import model_env
from mnist_pipeline.registry.store import download_model, resolve_alias

from .model import load_keras_model
from .server import ServerProcess, ServerSettings

REQUEST_TIMEOUT_S = 60.0

logger = logging.getLogger(__name__)


def _progress(stage: str, began: float) -> str:
    """Log the validation's next step (the fresh environment and the server take a while)."""
    logger.info("Deploy validation: %s (%.0f s so far)", stage, time.perf_counter() - began)
    return stage


def _percentiles(samples_ms: list[float]) -> dict[str, float]:
    if not samples_ms:
        return {}
    values = np.asarray(samples_ms)
    return {
        "n": len(values),
        "p50": round(float(np.percentile(values, 50)), 3),
        "p95": round(float(np.percentile(values, 95)), 3),
        "p99": round(float(np.percentile(values, 99)), 3),
        "mean": round(float(values.mean()), 3),
    }


def _predict_over_http(
    session: requests.Session, url: str, images: np.ndarray, batch_size: int
) -> tuple[np.ndarray, list[float]]:
    """Served probabilities for all images, alternating row and columnar requests."""
    rows, latencies = [], []
    for number, start in enumerate(range(0, len(images), batch_size)):
        chunk = images[start : start + batch_size].tolist()
        body = {"instances": chunk} if number % 2 == 0 else {"inputs": chunk}
        began = time.perf_counter()
        answer = session.post(url, json=body, timeout=REQUEST_TIMEOUT_S)
        latencies.append((time.perf_counter() - began) * 1000)
        if answer.status_code != 200:
            raise RuntimeError(
                f"POST {url} answered {answer.status_code} to a valid batch: {answer.text[:300]}"
            )
        predictions = np.asarray(answer.json()["predictions"], dtype=np.float32)
        if predictions.shape != (len(chunk), 10):
            raise RuntimeError(
                f"POST {url} answered predictions of shape {predictions.shape} for "
                f"{len(chunk)} images; expected ({len(chunk)}, 10)"
            )
        rows.append(predictions)
    return np.concatenate(rows), latencies


def _single_image_latency(
    session: requests.Session, url: str, images: np.ndarray, count: int
) -> list[float]:
    samples = []
    for index in range(count):
        body = {"instances": [images[index % len(images)].tolist()]}
        began = time.perf_counter()
        answer = session.post(url, json=body, timeout=REQUEST_TIMEOUT_S)
        samples.append((time.perf_counter() - began) * 1000)
        answer.raise_for_status()
    return samples


def _check_refuses_bad_request(session: requests.Session, server: ServerProcess) -> str | None:
    answer = session.post(
        server.predict_url,
        data=b'{"instances": [[1, 2, 3]]}',
        headers={"Content-Type": "application/json"},
        timeout=REQUEST_TIMEOUT_S,
    )
    if answer.status_code != 400 or "error" not in answer.json():
        return f"a malformed request got {answer.status_code} {answer.text[:200]!r}, expected 400"
    if not server.is_healthy():
        return "the server stopped answering after a malformed request"
    return None


def validate_in_server(
    model: dict[str, Any],
    images: np.ndarray,
    labels: np.ndarray,
    checks: dict[str, Any],
    server: dict[str, Any] | None = None,
    *,
    environment: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Serve ``models:/<name>@<alias>`` in a real server and check it; return the report.

    Args:
        model: ``name``, ``alias``, ``registry_uri``.
        images: uint8 (N, 28, 28) validation images (MNIST convention).
        labels: their digits (N,).
        checks: ``min_accuracy``, ``atol``, ``request_batch_size``,
            ``latency_requests``, optional ``max_latency_p50_ms`` and
            ``startup_timeout_s``.
        server: :class:`~.server.ServerSettings` fields (host/port are ignored:
            validation always uses 127.0.0.1 and a free port).
        environment: the fresh-environment check (``deploy_environment`` parameters):
            ``enabled``, ``env_manager``, ``env_root``, ``build_if_missing``,
            ``num_images``; ``None`` skips it.

    Returns:
        The deployment report: ``deployable``, ``failures`` (why not), the model
        version, the checks' figures and latencies.
    """
    began = time.perf_counter()
    settings = ServerSettings.model_validate({**(server or {}), "host": "127.0.0.1", "port": 0})
    min_accuracy = float(checks["min_accuracy"])
    atol = float(checks.get("atol", 1e-5))
    report: dict[str, Any] = {
        "deployable": False,
        "failures": [],
        "checked_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "model": {
            "name": model["name"],
            "alias": model["alias"],
            "registry_uri": redact(model["registry_uri"]),
        },
        "gate": {
            "min_accuracy": min_accuracy,
            "atol": atol,
            "max_latency_p50_ms": checks.get("max_latency_p50_ms"),
        },
    }
    stage = _progress("resolving the model", began)
    try:
        reference = resolve_alias(model["name"], model["alias"], model["registry_uri"])
        report["model"] = reference.to_dict()
        batch = to_model_batch(images)
        fresh = None
        if environment and environment.get("enabled", True):
            stage = _progress("loading the model in its own fresh environment", began)
            fresh = _predict_in_fresh_env(
                reference.model_uri, model["registry_uri"], batch, environment, report
            )
            if fresh is None:  # it cannot load where the serving platforms load it
                report["deployable"] = False
                report["duration_s"] = round(time.perf_counter() - began, 2)
                return report
        stage = _progress("loading the model offline", began)
        keras_model = load_keras_model(reference.model_uri, model["registry_uri"])
        offline = np.asarray(keras_model.predict(batch, batch_size=256, verbose=0), np.float32)
        if fresh is not None:
            _compare_fresh(report, fresh, offline[: len(fresh)], atol)
        stage = _progress("starting the model server", began)
        # The server makes and removes its own temporary folder (its log); should this
        # run be killed, the server removes it and stops by itself (its lifeline).
        with ServerProcess(
            reference.model_uri,
            model["registry_uri"],
            settings,
            startup_timeout_s=float(checks.get("startup_timeout_s", 180)),
        ) as process:
            report["server"] = {"url": process.url, "startup_s": round(process.startup_s or 0, 2)}
            with requests.Session() as session:
                stage = _progress("predicting over HTTP", began)
                served, batch_ms = _predict_over_http(
                    session,
                    process.predict_url,
                    np.asarray(images),
                    int(checks.get("request_batch_size", 32)),
                )
                stage = _progress("checking that a malformed request is refused", began)
                if problem := _check_refuses_bad_request(session, process):
                    report["failures"].append(problem)
                stage = _progress("measuring latency", began)
                single_ms = _single_image_latency(
                    session,
                    process.predict_url,
                    np.asarray(images),
                    int(checks["latency_requests"]),
                )
        stage = _progress("comparing predictions", began)
        _compare(
            report,
            served=served,
            offline=offline,
            labels=np.asarray(labels),
            min_accuracy=min_accuracy,
            atol=atol,
        )
        report["latency_ms"] = {
            "single_image": _percentiles(single_ms),
            f"batch_of_{int(checks.get('request_batch_size', 32))}": _percentiles(batch_ms),
        }
        limit = checks.get("max_latency_p50_ms")
        p50 = report["latency_ms"]["single_image"].get("p50")
        if limit is not None and p50 is not None and p50 > float(limit):
            report["failures"].append(
                f"single-image p50 latency {p50:.1f} ms is above the limit {float(limit):g} ms"
            )
    except Exception as exc:
        report["failures"].append(f"{stage} failed: {type(exc).__name__}: {exc}")
    report["deployable"] = not report["failures"]
    report["duration_s"] = round(time.perf_counter() - began, 2)
    return report


def _predict_in_fresh_env(
    model_uri: str,
    registry_uri: str,
    batch: np.ndarray,
    environment: dict[str, Any],
    report: dict[str, Any],
) -> np.ndarray | None:
    """Predict the first ``num_images`` in the model's own environment; ``None``: it failed."""
    count = min(int(environment.get("num_images", 100)), len(batch))
    manager = str(environment.get("env_manager", model_env.ENV_MANAGER))
    report["fresh_env"] = {"env_manager": manager, "num_images": count, "loaded": False}
    try:
        with tempfile.TemporaryDirectory(prefix="mnist-fresh-env-") as tmp:
            folder = download_model(model_uri, Path(tmp), registry_uri)
            predictions, info = model_env.predict_in_fresh_env(
                folder,
                batch[:count, ..., 0],
                environment.get("env_root"),
                env_manager=manager,
                build_if_missing=bool(environment.get("build_if_missing", True)),
            )
    except model_env.FreshEnvError as exc:
        report["fresh_env"]["reason"] = str(exc)
        report["failures"].append(
            f"the model does not load in its own environment (its requirements only, as "
            f"MLflow and Databricks Model Serving build it): {exc}"
        )
        return None
    report["fresh_env"].update(info, loaded=True)
    return predictions


def _compare_fresh(
    report: dict[str, Any], fresh: np.ndarray, offline: np.ndarray, atol: float
) -> None:
    differing = int((fresh.argmax(axis=1) != offline.argmax(axis=1)).sum())
    max_diff = float(np.abs(fresh - offline).max()) if fresh.shape == offline.shape else np.inf
    report["fresh_env"].update(
        digits_differing_from_offline=differing,
        max_abs_probability_difference=max_diff,
        predictions_match=differing == 0 and max_diff <= atol,
    )
    if differing or max_diff > atol:
        report["failures"].append(
            f"in its own environment the model predicts differently from offline: {differing} "
            f"of {len(offline)} digits differ, max |Δp| = {max_diff:.2e} (allowed {atol:g})"
        )


def _compare(
    report: dict[str, Any],
    *,
    served: np.ndarray,
    offline: np.ndarray,
    labels: np.ndarray,
    min_accuracy: float,
    atol: float,
) -> None:
    served_digits, offline_digits = served.argmax(axis=1), offline.argmax(axis=1)
    accuracy = float((served_digits == labels).mean())
    differing = int((served_digits != offline_digits).sum())
    max_diff = float(np.abs(served - offline).max())
    report["validation"] = {
        "num_images": len(labels),
        "served_accuracy": round(accuracy, 5),
        "offline_accuracy": round(float((offline_digits == labels).mean()), 5),
        "digits_differing_from_offline": differing,
        "max_abs_probability_difference": max_diff,
        "predictions_match": differing == 0 and max_diff <= atol,
    }
    if differing or max_diff > atol:
        report["failures"].append(
            f"served predictions differ from offline predictions: {differing} of {len(labels)} "
            f"digits differ, max |Δp| = {max_diff:.2e} (allowed {atol:g})"
        )
    if accuracy < min_accuracy:
        report["failures"].append(
            f"served accuracy {accuracy:.4f} on {len(labels)} test images is below the gate "
            f"{min_accuracy:.4f}"
        )
