"""Drift statistics, windows of the inference log / batch scores, and the monitoring nodes,
on synthetic features (the real server and real MNIST shifts are in
tests/integration/test_monitoring.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from matplotlib.figure import Figure

from mnist_pipeline.monitoring.drift import build_reference, compare, psi
from mnist_pipeline.monitoring.window import PredictionSource
from mnist_pipeline.pipelines.monitoring.nodes import (
    DriftDetectedError,
    check_drift,
    drift_metrics,
    drift_report,
    plot_drift,
    summarise_drift,
)

THRESHOLDS = {
    "predicted_class": 0.1, "probability": 0.2, "mean_intensity": 0.2,
    "ink_fraction": 0.2, "bbox_height": 0.2, "bbox_width": 0.2,
}  # fmt: skip
PARAMS = {
    "source": "inference_log",
    "window": 1000,
    "thresholds": THRESHOLDS,
    "fail_on_drift": False,
}


def _features(count, seed, intensity_shift=0.0):
    rng = np.random.default_rng(seed)
    return {
        "predicted_class": rng.integers(0, 10, count),
        "probability": 1 - rng.beta(1, 60, count),
        "mean_intensity": rng.normal(0.13, 0.03, count) + intensity_shift,
        "ink_fraction": rng.normal(0.1, 0.02, count) + intensity_shift,
        "bbox_height": rng.choice([18.0, 19.0, 20.0], count, p=[0.1, 0.2, 0.7]),
        "bbox_width": rng.integers(4, 21, count).astype(float),
    }


def _records(features, version="3", source="live"):
    keys = {"predicted_class": "digit"}
    return [
        {"model_version": version, "source": source,
         **{keys.get(name, name): float(values[i]) for name, values in features.items()}}
        for i in range(len(features["probability"]))
    ]  # fmt: skip


def _write_log(folder, records, name="inference-20261130T000000000000-1-0001.jsonl"):
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(record) for record in records]
    (folder / name).write_text("\n".join(lines) + '\n{"partial": ')


@pytest.fixture(scope="module")
def reference():
    ref = build_reference(_features(10000, 0))
    ref["model"] = {"name": "mnist_cnn", "version": "3"}
    return ref


def test_psi_is_zero_for_the_same_distribution_and_grows_with_the_shift():
    base = np.full(10, 0.1)
    assert psi(base, base) == pytest.approx(0.0)
    small, large = np.r_[0.12, 0.08, [0.1] * 8], np.r_[0.5, [0.5 / 9] * 9]
    assert 0 < psi(base, small) < 0.01 < psi(base, large)


def test_same_distribution_no_drift_shifted_drift_names_the_features(reference):
    calm = compare(reference, _features(2000, 1), THRESHOLDS)
    assert calm["verdict"] == "no_drift", calm["features"]
    moved = compare(reference, _features(2000, 2, intensity_shift=0.05), THRESHOLDS)
    assert moved["verdict"] == "drift"
    assert set(moved["drifted_features"]) == {"mean_intensity", "ink_fraction"}
    assert moved["features"]["mean_intensity"]["psi"] > 0.2
    assert moved["features"]["mean_intensity"]["ks_pvalue"] < 1e-6


def test_the_window_is_the_last_live_records_of_the_version(tmp_path, reference):
    log = tmp_path / "log"
    _write_log(log, _records(_features(600, 5)), "inference-a-0001.jsonl")
    newer = _records(_features(1200, 6)) + _records(_features(50, 7), source="validation")
    newer += _records(_features(50, 8), version="2")
    _write_log(log, newer, "inference-b-0002.jsonl")
    frame = PredictionSource("inference_log", str(log)).window(1000, "3")
    assert len(frame) == 1000 and set(frame["source"]) == {"live"}
    assert set(frame["model_version"]) == {"3"}
    report = drift_report(PredictionSource("inference_log", str(log)), None, reference, PARAMS)
    assert report["verdict"] == "no_drift" and report["records"] == 1000


@pytest.mark.parametrize("state", ["missing", "empty", "short"])
def test_missing_empty_or_short_log_is_a_clear_verdict_not_a_crash(tmp_path, reference, state):
    log = tmp_path / "log"
    if state == "empty":
        log.mkdir()
    if state == "short":
        _write_log(log, _records(_features(10, 1)))
    report = drift_report(PredictionSource("inference_log", str(log)), None, reference, PARAMS)
    assert report["verdict"] == "insufficient_data"
    expected = {
        "missing": "no inference log at",
        "empty": "is empty",
        "short": "holds 10 live records",
    }
    assert expected[state] in report["message"] and str(log) in report["message"]
    assert "INSUFFICIENT DATA" in summarise_drift(report)
    assert isinstance(plot_drift(report), Figure)
    check_drift(report, "", {**PARAMS, "fail_on_drift": True})  # no data is not drift


def test_missing_batch_output_names_the_command(tmp_path, reference):
    params = {**PARAMS, "source": "batch_scores"}
    report = drift_report(None, PredictionSource("batch_scores", str(tmp_path)), reference, params)
    assert report["verdict"] == "insufficient_data" and "batch_scoring" in report["message"]


def test_drift_fails_the_run_only_when_asked(tmp_path, reference):
    log = tmp_path / "log"
    _write_log(log, _records(_features(1000, 9, intensity_shift=0.08)))
    report = drift_report(PredictionSource("inference_log", str(log)), None, reference, PARAMS)
    assert report["verdict"] == "drift" and "mean_intensity (PSI" in report["message"]
    check_drift(report, "", PARAMS)
    with pytest.raises(DriftDetectedError, match="mean_intensity"):
        check_drift(report, "", {**PARAMS, "fail_on_drift": True})
    metrics = drift_metrics(report)
    assert metrics["drift"]["value"] == 1.0 and metrics["psi.mean_intensity"]["value"] > 0.2
    figure = plot_drift(report)
    assert len(figure.axes) == 6


def test_window_below_1000_is_refused(reference, tmp_path):
    with pytest.raises(ValueError, match="at least 1000"):
        drift_report(
            PredictionSource("inference_log", str(tmp_path)),
            None,
            reference,
            {**PARAMS, "window": 10},
        )


def test_malformed_log_records_are_skipped_and_counted_not_a_crash(tmp_path, reference, caplog):
    log = tmp_path / "log"
    good = _records(_features(1000, 11))
    bad = [
        "[1, 2, 3]",  # a JSON list, not a record
        json.dumps({**good[0], "digit": "seven"}),
        json.dumps({**good[0], "digit": 12}),
        json.dumps({**good[0], "probability": None}),
        "not json at all",
    ]
    log.mkdir()
    lines = (
        [json.dumps(record) for record in good[:500]]
        + bad
        + [json.dumps(record) for record in good[500:]]
    )
    (log / "inference-20261130T000000000000-1-0001.jsonl").write_text("\n".join(lines) + "\n")
    report = drift_report(PredictionSource("inference_log", str(log)), None, reference, PARAMS)
    assert report["verdict"] == "no_drift" and report["records"] == 1000
    assert report["skipped_records"] == 5
    assert report["message"].endswith("(5 malformed records skipped)")
    assert drift_metrics(report)["skipped_records"]["value"] == 5.0
    [warning] = [r.getMessage() for r in caplog.records if "malformed" in r.getMessage()]
    assert "skipped 5 malformed record(s)" in warning and "[1, 2, 3]" in warning


def test_each_feature_is_judged_against_its_own_threshold(reference):
    """Moving one feature's threshold across its PSI moves that feature alone in or out of
    the drifted features (the others keep their verdicts)."""
    window = _features(2000, 3, intensity_shift=0.02)
    classes = window["predicted_class"]
    window["predicted_class"] = np.where(classes < 3, 1, classes)  # fewer 0s and 2s, more 1s
    base = compare(reference, window, THRESHOLDS)
    assert 2 <= len(base["drifted_features"]) < len(THRESHOLDS)  # some drifted, some not
    for name, entry in base["features"].items():
        assert entry["threshold"] == THRESHOLDS[name]
        psi_value = entry["psi"]
        for threshold, drifted in ((psi_value + 0.001, False), (psi_value / 2, True)):
            if threshold <= 0:
                continue
            report = compare(reference, window, {**THRESHOLDS, name: threshold})
            assert (name in report["drifted_features"]) is drifted, (name, threshold, psi_value)
            others = set(report["drifted_features"]) - {name}
            assert others == set(base["drifted_features"]) - {name}, name
            assert report["verdict"] == ("drift" if report["drifted_features"] else "no_drift")


def test_the_report_judges_the_pinned_versions_live_traffic_only(tmp_path, reference):
    """The newest records are another version's and test traffic, both far from the
    reference: the report of version 3 reads its own 1,000 live records and sees no drift."""
    log = tmp_path / "log"
    _write_log(log, _records(_features(1000, 21)), "inference-20261130T000000000000-1-0001.jsonl")
    shifted = _features(600, 22, intensity_shift=0.2)
    newer = _records(shifted, version="4") + _records(shifted, source="smoke-test")
    _write_log(log, newer, "inference-20261130T010000000000-1-0002.jsonl")
    report = drift_report(PredictionSource("inference_log", str(log)), None, reference, PARAMS)
    assert (report["verdict"], report["records"]) == ("no_drift", 1000)
    assert report["model"]["version"] == "3"
