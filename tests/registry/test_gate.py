"""The quality gate: a floor and champion/challenger with tolerance, in three modes."""

from __future__ import annotations

import pytest

from mnist_pipeline.registry.gate import GateConfigError, decide

PARAMS = {
    "mode": "enabled",
    "metric": "test_accuracy",
    "min_accuracy": 0.99,
    "tolerance": 0.002,
    "fail_run_on_refusal": True,
}


def _failed(verdict) -> list[str]:
    return [c["check"] for c in verdict["checks"] if not c["passed"]]


def test_passes_above_the_floor_with_no_champion_yet():
    verdict = decide({"test_accuracy": 0.9912}, None, PARAMS)
    assert verdict["passed"] and verdict["promote"]
    assert "no champion yet" in " ".join(verdict["reasons"])


def test_refuses_below_the_floor_and_says_by_how_much():
    verdict = decide({"test_accuracy": 0.985}, None, PARAMS)
    assert not verdict["passed"] and not verdict["promote"]
    assert _failed(verdict) == ["minimum"]
    assert "0.9850 < minimum 0.9900" in " ".join(verdict["reasons"])


@pytest.mark.parametrize(("candidate", "passed"), [(0.9930, True), (0.9920, True), (0.9919, False)])
def test_champion_comparison_allows_the_tolerance_and_no_more(candidate, passed):
    verdict = decide({"test_accuracy": candidate}, {"test_accuracy": 0.994}, PARAMS)
    assert verdict["passed"] is passed
    assert _failed(verdict) == ([] if passed else ["champion"])
    assert verdict["champion"] == {"test_accuracy": 0.994}


def test_dry_run_judges_but_never_promotes():
    verdict = decide({"test_accuracy": 0.995}, None, {**PARAMS, "mode": "dry_run"})
    assert verdict["passed"] and not verdict["promote"]
    assert verdict["reasons"][0].startswith("dry run: would promote")


def test_disabled_promotes_and_still_reports_the_checks():
    verdict = decide(
        {"test_accuracy": 0.5}, {"test_accuracy": 0.99}, {**PARAMS, "mode": "disabled"}
    )
    assert verdict["promote"] and not verdict["passed"]
    assert _failed(verdict) == ["minimum", "champion"]


def test_a_metric_the_candidate_lacks_is_refused_with_the_key():
    """The parameters themselves are checked before the run by their schema (the cases that
    were here: tests/test_parameters.py); what only the candidate shows is checked here."""
    with pytest.raises(GateConfigError, match="has no metric 'f1'"):
        decide({"test_accuracy": 0.99}, None, {**PARAMS, "metric": "f1"})


def test_a_candidate_exactly_at_the_minimum_passes_and_just_below_is_refused():
    exact = {**PARAMS, "min_accuracy": 0.5, "tolerance": 0.25}
    assert decide({"test_accuracy": 0.5}, None, exact)["passed"]
    assert not decide({"test_accuracy": 0.4999}, None, exact)["passed"]
    # The champion comparison's boundary: exactly champion - tolerance passes.
    verdict = decide({"test_accuracy": 0.5}, {"test_accuracy": 0.75}, exact)
    assert verdict["passed"] and _failed(verdict) == []
    verdict = decide({"test_accuracy": 0.5}, {"test_accuracy": 0.7501}, exact)
    assert _failed(verdict) == ["champion"]
