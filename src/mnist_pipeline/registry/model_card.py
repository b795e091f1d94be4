"""The model card: one markdown page per production version, readable in the MLflow UI.

It is set as the production registered version's description (what the UI shows on the
version's page) and logged as ``model_card.md`` into the run that holds the production copy.
:func:`render` builds it from the promotion's own records — test metrics, per-class figures,
data fingerprint, gate verdict, lineage — and the deploy pipeline later replaces its
"Deploy validation" section (:func:`with_deploy_section`) with what the deploy check found.
The functions here are pure (text in, text out) except :func:`publish` and :func:`read`, which
go through :mod:`mnist_pipeline.registry.store`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mnist_pipeline.image_contract import DATAFRAME_COLUMN, IMAGE_PIXELS, MAX_PIXEL, NUM_CLASSES
from mnist_pipeline.redaction import redact
from mnist_pipeline.registry import store
from mnist_pipeline.registry.config import Workspace

ARTIFACT_FILE = "model_card.md"
DEPLOY_MARKER = "<!-- deploy-validation -->"
_NOT_YET = "Not run yet: `kedro run --env gcp --pipelines deploy` fills this section in."


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def _number(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def intended_use() -> list[str]:
    """The input contract and the known limits (the same for every version)."""
    return [
        "## Intended input",
        "",
        f"- One handwritten digit per image, as MNIST stores them: 28 × 28 grayscale, pixel "
        f"values 0–{MAX_PIXEL:g} (0 background, {MAX_PIXEL:g} ink). No caller rescales: the "
        "model does (its first layer is `Rescaling(1/255)`).",
        "- Signature: input `TensorSpec(float32, (-1, 28, 28))`, output "
        f"`TensorSpec(float32, (-1, {NUM_CLASSES}))` — the probability of each digit 0–9.",
        "- Request bodies (MLflow scoring server, Databricks Model Serving, `kedro serve`): "
        "`instances` or `inputs` with (N, 28, 28) images; `dataframe_split` / "
        f"`dataframe_records` with one column `{DATAFRAME_COLUMN}` of {IMAGE_PIXELS} pixels "
        "flattened row-major. See docs/serving.md.",
        "",
        "## Known limits",
        "",
        "- Trained and tested on MNIST only: centred, size-normalised digits, light ink on a "
        "dark background. Photos or dark-on-light scans must be converted first (the "
        "project's client does: `python -m mnist_pipeline.client`).",
        "- No 'not a digit' answer: any input gets one of the ten digits; a low top "
        "probability is the only hint of an input unlike MNIST.",
        "- The channel-axis form (N, 28, 28, 1) and uint8 arrays are accepted by `kedro serve` "
        "and `mnist_pipeline.registry.model.predict_images`, not by MLflow's signature check.",
    ]


def render(
    *,
    production: Mapping[str, Any],
    candidate: Mapping[str, Any],
    verdict: Mapping[str, Any],
    promotion: Mapping[str, Any],
    metrics: Mapping[str, Any],
    per_class: Sequence[Mapping[str, Any]],
    data_fingerprint: str,
) -> str:
    """The card of one production version, in markdown.

    Args:
        production: ``model_name``, ``version``, ``registry_uri`` of the production version.
        candidate: the sandbox registration (``model_name``, ``version``, ``run_id``,
            ``registry_uri``, ``model_sha256``, ``tags`` with ``git_commit``).
        verdict: the quality gate's verdict (``mode``, ``passed``, ``promote``, ``checks``).
        promotion: the promotion report (``action``, ``message``).
        metrics: the evaluation's test metrics.
        per_class: one mapping per digit: ``digit``, ``precision``, ``recall``, ``f1``,
            ``support``.
        data_fingerprint: the fingerprint of the training data (model input).
    """
    name, version = production["model_name"], production["version"]
    tags = candidate.get("tags") or {}
    accuracy = metrics.get("test_accuracy")
    lines = [
        f"# {name} v{version} — MNIST handwritten-digit classifier",
        "",
        "A convolutional network (Keras) that returns the probability of each digit 0–9 for "
        "28 × 28 grayscale images. Self-contained MLflow pyfunc: it loads with its own pinned "
        "requirements only.",
        "",
        f"Test accuracy **{_number(accuracy)}** on {_number(metrics.get('test_images'))} MNIST "
        f"test images; quality gate: **{'passed' if verdict.get('passed') else 'not passed'}** "
        f"({verdict.get('mode')}).",
        "",
        *intended_use(),
        "",
        "## Test metrics",
        "",
        *_table(["metric", "value"], [(k, _number(v)) for k, v in sorted(metrics.items())]),
        "",
        "## Per-class figures",
        "",
        *_table(
            ["digit", "precision", "recall", "F1", "support"],
            [
                (
                    row["digit"],
                    _number(float(row["precision"])),
                    _number(float(row["recall"])),
                    _number(float(row["f1"])),
                    _number(int(row["support"])),
                )
                for row in per_class
            ],
        ),
        "",
        "## Data",
        "",
        f"- training data fingerprint (model input): `{data_fingerprint}`",
        "",
        "## Quality gate",
        "",
        f"- mode `{verdict.get('mode')}`, passed **{verdict.get('passed')}**, promote "
        f"**{verdict.get('promote')}**",
        *[
            f"- {'✔' if check.get('passed') else '✘'} {check.get('check')}: {check.get('detail')}"
            for check in verdict.get("checks", [])
        ],
        "",
        "## Lineage",
        "",
        *_table(
            ["what", "value"],
            [
                (
                    "sandbox version",
                    f"`{candidate.get('model_name')}` v{candidate.get('version')} in "
                    f"`{redact(str(candidate.get('registry_uri', '')))}`",
                ),
                ("source run", f"`{candidate.get('run_id')}`"),
                ("git commit", f"`{tags.get('git_commit', 'unknown')}`"),
                ("model fingerprint (sha256)", f"`{candidate.get('model_sha256')}`"),
                (
                    "production version",
                    f"`{name}` v{version} in `{redact(str(production.get('registry_uri', '')))}`",
                ),
                ("promotion", str(promotion.get("message") or promotion.get("action"))),
            ],
        ),
        "",
        DEPLOY_MARKER,
        "## Deploy validation",
        "",
        _NOT_YET,
        "",
    ]
    return "\n".join(lines)


def deploy_section(report: Mapping[str, Any]) -> list[str]:
    """The deploy pipeline's findings: verdict, fresh environment, served checks."""
    verdict = "DEPLOYABLE" if report.get("deployable") else "NOT DEPLOYABLE"
    lines = ["## Deploy validation", "", f"**{verdict}** (checked {report.get('checked_at')})", ""]
    rows: list[tuple[str, str]] = []
    if fresh := report.get("fresh_env"):
        rows.append(
            (
                "fresh environment",
                f"{fresh.get('env_manager')} env {'reused' if fresh.get('reused') else 'built'}"
                f", predictions match offline: {fresh.get('predictions_match')} (max |Δp| "
                f"{_number(fresh.get('max_abs_probability_difference'))})",
            )
        )
    if checks := report.get("validation"):
        rows += [
            (
                f"served accuracy on {checks['num_images']} test images",
                _number(checks["served_accuracy"]),
            ),
            ("served = offline predictions", str(checks["predictions_match"])),
        ]
    if latency := (report.get("latency_ms") or {}).get("single_image"):
        rows.append(("single-image latency p50 (ms)", _number(latency.get("p50"))))
    if rows:
        lines += [*_table(["check", "result"], rows), ""]
    lines += [f"- ✘ {failure}" for failure in report.get("failures", [])]
    return lines


def with_deploy_section(card: str, report: Mapping[str, Any]) -> str:
    """``card`` with its "Deploy validation" section replaced by ``report``'s findings."""
    head = card.split(DEPLOY_MARKER, 1)[0].rstrip("\n")
    return "\n".join([head, "", DEPLOY_MARKER, *deploy_section(report)]).rstrip() + "\n"


def publish_promoted(
    *,
    report: Mapping[str, Any],
    candidate: Mapping[str, Any],
    verdict: Mapping[str, Any],
    metrics: Mapping[str, Any],
    per_class: Sequence[Mapping[str, Any]],
    data_fingerprint: str,
    production: Mapping[str, Any],
) -> str:
    """Render the promoted version's card and publish it in production; the card.

    Nothing is published when the promotion moved nothing to production (gate refusal,
    dry run): the card then says so, for this run's artifact only.
    """
    if not report.get("version"):
        return (
            f"# {candidate.get('model_name')}: sandbox v{candidate.get('version')} not promoted\n\n"
            f"{report.get('reasons') or report.get('action')}\n"
        )
    target = Workspace.from_config("production", production)
    card = render(
        production={
            "model_name": target.model_name,
            "version": str(report["version"]),
            "registry_uri": target.registry_uri,
        },
        candidate=candidate,
        verdict=verdict,
        promotion=report,
        metrics=metrics,
        per_class=per_class,
        data_fingerprint=data_fingerprint,
    )
    publish(target, str(report["version"]), card)
    return card


def record_deployment(report: Mapping[str, Any], model: Mapping[str, Any]) -> str:
    """Replace the checked version's "Deploy validation" section with ``report``; the card.

    Args:
        report: the deploy pipeline's report (``model.version`` names the version checked).
        model: ``registry_uri``, ``name``, ``alias`` of the production model.

    Returns:
        The updated card, or ``""`` when the report names no version (nothing resolved).
    """
    version = (report.get("model") or {}).get("version")
    if not version:
        return ""
    uri = str(model["registry_uri"])
    workspace = Workspace("production", uri, uri, str(model["name"]), str(model["alias"]))
    card = with_deploy_section(read(workspace, str(version)), report)
    publish(workspace, str(version), card)
    return card


def publish(workspace: Workspace, version: str, card: str) -> None:
    """Set ``card`` as the version's description and log it as ``model_card.md``."""
    store.publish_model_card(workspace, version, card, ARTIFACT_FILE)


def read(workspace: Workspace, version: str) -> str:
    """The version's current card (its description; empty if none)."""
    return store.get_version(workspace, version).description or ""
