"""The quality gate in front of any promotion: a floor and a champion/challenger comparison.

Pure logic: metrics in, a verdict out. The verdict says whether the candidate *passed*, whether
it may be *promoted* (only in ``enabled`` mode, or unconditionally in ``disabled`` mode) and
why, in sentences a reviewer can read in the MLflow UI.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class GateConfigError(ValueError):
    """Gate parameters that cannot be applied to the candidate (a metric it does not have)."""


class GateRefusedError(RuntimeError):
    """The candidate did not pass the gate in ``enabled`` mode: nothing was promoted."""


def decide(
    candidate: Mapping[str, float],
    champion: Mapping[str, float] | None,
    params: Mapping[str, Any],
) -> dict[str, Any]:
    """Judge a candidate's metrics against the floor and the current champion's.

    Args:
        candidate: the candidate's metrics (must hold ``params["metric"]``).
        champion: the champion's metrics, or ``None`` when there is no champion yet.
        params: ``promotion.gate`` (checked before the run by its schema,
            :class:`mnist_pipeline.parameters.schemas.Gate`): ``mode`` (enabled | dry_run |
            disabled), ``metric``, ``min_accuracy``, ``tolerance`` (how much worse than the
            champion the candidate may be), ``fail_run_on_refusal``.

    Returns:
        ``{"mode", "passed", "promote", "reasons", "checks", "metric", "candidate",
        "champion"}``; ``checks`` lists each comparison with its numbers.
    """
    mode, metric = params["mode"], params["metric"]
    min_value, tolerance = float(params["min_accuracy"]), float(params["tolerance"])
    if metric not in candidate:
        raise GateConfigError(
            f"the candidate has no metric {metric!r} (has: {sorted(candidate)}); "
            "set promotion.gate.metric to one it has"
        )
    value = float(candidate[metric])
    checks: list[dict[str, Any]] = [
        {
            "check": "minimum",
            "passed": value >= min_value,
            "detail": f"{metric} {value:.4f} {'≥' if value >= min_value else '<'} "
            f"minimum {min_value:.4f}",
        }
    ]
    champion_value = None
    if champion and metric in champion:
        champion_value = float(champion[metric])
        floor = champion_value - tolerance
        ok = value >= floor
        checks.append(
            {
                "check": "champion",
                "passed": ok,
                "detail": f"{metric} {value:.4f} {'≥' if ok else '<'} champion {champion_value:.4f}"
                f" - tolerance {tolerance:.4f} = {floor:.4f}",
            }
        )
    passed = all(c["passed"] for c in checks)
    reasons = [c["detail"] for c in checks]
    if champion_value is None:
        reasons.append("no champion yet: the champion/challenger comparison was skipped")
    if mode == "disabled":
        promote = True
        reasons.insert(0, "gate disabled: promoted whatever the checks say")
    elif mode == "dry_run":
        promote = False
        reasons.insert(0, f"dry run: would {'promote' if passed else 'refuse'}; nothing moved")
    else:
        promote = passed
        reasons.insert(0, "passed" if passed else "refused")
    return {
        "mode": mode,
        "passed": passed,
        "promote": promote,
        "reasons": reasons,
        "checks": checks,
        "metric": metric,
        "candidate": {metric: value},
        "champion": None if champion_value is None else {metric: champion_value},
    }
