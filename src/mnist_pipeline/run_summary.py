"""Say the outcome: one INFO line per finished stage, and a short summary at the end of a run.

:class:`RunSummaryHook` watches the outputs the stages already produce (nothing is recomputed
and no node changes): when every node of a stage has run it logs that stage's result with its
numbers; when a run of several stages ends it logs the summary (accuracy, verdict, action,
version, where the reports are). A stage that fails after producing its verdict (a gate
refusal, a model that is NOT DEPLOYABLE) still gets its line before the error.

The ``*_line`` functions are pure: outputs in, one line out.
"""

from __future__ import annotations

import logging
import posixpath
import time
from collections.abc import Callable, Mapping
from typing import Any

from kedro.framework.hooks import hook_impl

logger = logging.getLogger("mnist_pipeline.run")

LIFECYCLE = "lifecycle"  # what __default__ is called in run names and the summary


def _pct(value: Any) -> str:
    return f"{100 * float(value):.2f} %"


def ingestion_line(out: Mapping[str, Any]) -> str:
    """Images per split and the class balance."""
    train, test = out.get("mnist_train") or {}, out.get("mnist_test") or {}
    line = (
        f"ingestion: {int(train.get('count', 0)):,} train + {int(test.get('count', 0)):,} "
        f"test images verified (SHA-256, IDX headers), {train.get('shape', '?')} pixels"
    )
    summary = out.get("mnist_class_summary")
    if summary is not None and "train_share" in getattr(summary, "columns", ()):
        shares = summary["train_share"]
        line += f"; classes {100 * shares.min():.1f}–{100 * shares.max():.1f} % of train"
    return line


def preprocessing_line(out: Mapping[str, Any]) -> str:
    """Examples per split and the data fingerprint."""
    fingerprint = out.get("model_input_fingerprint") or {}
    splits = fingerprint.get("splits", {})
    counts = " / ".join(
        f"{int(splits[name]['num_examples']):,} {name}"
        for name in ("train", "validation", "test")
        if name in splits
    )
    return (
        f"preprocessing: {counts or '?'} images scaled to [0, 1] and sharded; "
        f"fingerprint {str(fingerprint.get('model_input', '?'))[:12]}"
    )


def training_line(out: Mapping[str, Any]) -> str:
    """Mode, workers, epochs, time, throughput, final validation accuracy."""
    s = out.get("training_summary") or {}
    line = (
        f"training: {s.get('mode', '?')} mode, {s.get('num_workers', '?')} worker(s), "
        f"{s.get('epochs', '?')} epochs in {float(s.get('wall_time_s', 0)):.0f} s "
        f"({float(s.get('images_per_s', 0)):,.0f} images/s)"
    )
    if "final_val_accuracy" in s:
        line += f"; validation accuracy {_pct(s['final_val_accuracy'])}"
    if s.get("resumed_from_epoch"):
        line += f" (resumed from epoch {s['resumed_from_epoch']})"
    return line


def evaluation_line(out: Mapping[str, Any]) -> str:
    """Test accuracy, loss and macro F1."""
    m = out.get("evaluation_metrics") or {}
    return (
        f"evaluation: test accuracy {_pct(m.get('test_accuracy', 0))} on "
        f"{int(m.get('test_images', 0)):,} images (loss {float(m.get('test_loss', 0)):.4f}, "
        f"macro F1 {float(m.get('test_macro_f1', 0)):.4f})"
    )


def verdict_words(verdict: Mapping[str, Any]) -> str:
    """``passed``, ``REFUSED`` or ``failed (dry run)`` with the mode when it is not enabled."""
    word = "passed" if verdict.get("passed") else "REFUSED"
    if verdict.get("mode") not in (None, "enabled"):
        word += f" ({verdict['mode']})"
    return word


def promotion_line(out: Mapping[str, Any]) -> str:
    """The gate's verdict with its reasons, then what happened in production."""
    verdict = out.get("gate_verdict") or {}
    line = f"promotion: sandbox v{verdict.get('candidate_version', '?')} gate " + verdict_words(
        verdict
    )
    if reasons := verdict.get("reasons"):
        line += f" ({'; '.join(map(str, reasons))})"
    report = out.get("promotion_report")
    if report:
        line += f" → {report.get('action', '?')}: {report.get('message', '')}".rstrip(": ")
    elif not verdict.get("promote", True):
        line += " → nothing promoted, production untouched"
    return line


def deploy_line(out: Mapping[str, Any]) -> str:
    """DEPLOYABLE or NOT DEPLOYABLE, with the served accuracy, latency and failures."""
    report = out.get("deployment_report") or {}
    model = report.get("model", {})
    word = "DEPLOYABLE" if report.get("deployable") else "NOT DEPLOYABLE"
    uri = f"models:/{model.get('name')}@{model.get('alias')}"
    line = f"deploy: {word} — {uri} v{model.get('version', '?')}"
    if checks := report.get("validation"):
        line += (
            f": served accuracy {float(checks['served_accuracy']):.4f} on "
            f"{int(checks['num_images']):,} images"
        )
    single = (report.get("latency_ms") or {}).get("single_image") or {}
    if single.get("p50") is not None:
        line += f", single-image p50 {single['p50']} ms"
    if failures := report.get("failures"):
        line += f"; failed: {'; '.join(map(str, failures))}"
    return line


# stage -> (outputs it needs, its line). The line is logged once all the stage's nodes ran
# (or, for a stage stopped by its own verdict, when the run fails).
STAGES: dict[str, tuple[tuple[str, ...], Callable[[Mapping[str, Any]], str]]] = {
    "ingestion": (("mnist_train", "mnist_test", "mnist_class_summary"), ingestion_line),
    "preprocessing": (("model_input_fingerprint",), preprocessing_line),
    "training": (("training_summary",), training_line),
    "evaluation": (("evaluation_metrics",), evaluation_line),
    "promotion": (("gate_verdict", "promotion_report"), promotion_line),
    "deploy": (("deployment_report",), deploy_line),
}
# A failing stage still reports when it got this far.
_VERDICTS = {"promotion": "gate_verdict", "deploy": "deployment_report"}
_REPORTS = ("evaluation_metrics", "gate_verdict", "promotion_report", "deployment_report")


def _light(name: str, data: Any) -> Any:
    """What the hook keeps of an output: MNIST splits shrink to their counts and shape."""
    if name in ("mnist_train", "mnist_test") and isinstance(data, Mapping):
        images = data.get("images")
        shape = getattr(images, "shape", ())
        return {
            "count": len(images) if images is not None else 0,
            "shape": "×".join(str(d) for d in shape[1:]),
        }
    return data


def summary_lines(
    outputs: Mapping[str, Any], run_label: str, reports_dir: str | None, tracking: str | None
) -> list[str]:
    """The end-of-run summary: accuracy, verdict, action, version, where the reports are."""
    lines = [f"Run summary ({run_label}):"]
    if metrics := outputs.get("evaluation_metrics"):
        lines.append(f"  test accuracy   {_pct(metrics.get('test_accuracy', 0))}")
    if verdict := outputs.get("gate_verdict"):
        lines.append(f"  gate            {verdict_words(verdict)}")
    if report := outputs.get("promotion_report"):
        target = report.get("target") or {}
        lines.append(f"  action          {report.get('action')}")
        lines.append(
            f"  production      {target.get('model_name', '?')} v{report.get('version')} "
            f"(@{target.get('alias', '?')})"
        )
    elif verdict and not verdict.get("promote", True):
        lines.append("  action          nothing promoted")
    if deployment := outputs.get("deployment_report"):
        word = "DEPLOYABLE" if deployment.get("deployable") else "NOT DEPLOYABLE"
        lines.append(f"  deploy          {word}")
    if reports_dir:
        lines.append(f"  reports         {reports_dir}")
    if tracking:
        lines.append(f"  MLflow          {tracking}")
    return lines


def _stage_of(node: Any) -> str:
    return (node.namespace or node.name).split(".")[0]


def _filepath(catalog: Any, name: str) -> str | None:
    """The file a catalog entry writes (through kedro-mlflow's artifact wrapper too)."""
    try:
        dataset = catalog.get(name) if hasattr(catalog, "get") else None
    except Exception:  # not in this run's catalog
        return None
    for candidate in (dataset, getattr(dataset, "_dataset", None)):
        path = getattr(candidate, "_filepath", None)
        if path is not None:
            return str(path)
    return None


class RunSummaryHook:
    """Log each stage's outcome and the run's summary from the outputs the stages produce."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._reset()

    def _reset(self) -> None:
        self._pending: dict[str, set[str]] = {}
        self._outputs: dict[str, Any] = {}
        self._reported: set[str] = set()
        self._label = ""
        self._reports_dir: str | None = None
        self._started = self._clock()

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        self._reset()
        self._label = run_label(run_params)
        for node in pipeline.nodes:
            self._pending.setdefault(_stage_of(node), set()).add(node.name)
        paths = [p for p in (_filepath(catalog, name) for name in _REPORTS) if p]
        self._reports_dir = posixpath.dirname(paths[0]) if paths else None

    @hook_impl
    def after_node_run(self, node: Any, outputs: dict[str, Any]) -> None:
        for name, data in (outputs or {}).items():
            if any(name in needs for needs, _ in STAGES.values()):
                self._outputs[name] = _light(name, data)
        stage = _stage_of(node)
        pending = self._pending.get(stage)
        if pending is None:
            return
        pending.discard(node.name)
        if not pending:
            self._report_stage(stage)

    def _report_stage(self, stage: str) -> None:
        if stage in STAGES and stage not in self._reported:
            needs, line = STAGES[stage]
            if any(name in self._outputs for name in needs):
                self._reported.add(stage)
                logger.info(line(self._outputs))

    # tryfirst: before kedro-mlflow ends the run, so the summary can name it.
    @hook_impl(tryfirst=True)
    def after_pipeline_run(self) -> None:
        self._log_summary()

    @hook_impl(tryfirst=True)
    def on_pipeline_error(self) -> None:
        for stage, verdict in _VERDICTS.items():
            if verdict in self._outputs:
                self._report_stage(stage)
        self._log_summary()

    def _log_summary(self) -> None:
        if len(self._pending) < 2 and not {"promotion", "deploy"} & set(self._pending):
            return  # one plain stage: its own line said it all
        from mnist_pipeline.registry.hooks import tracking_location

        minutes = (self._clock() - self._started) / 60
        lines = summary_lines(
            self._outputs,
            f"{self._label}, {minutes:.1f} min",
            self._reports_dir,
            tracking_location(),
        )
        logger.info("\n".join(lines))


def short_commit(project_path: Any = None) -> str:
    """The checked-out commit, abbreviated (``+dirty`` kept), or ``unknown``."""
    from mnist_pipeline.registry.store import git_commit

    commit = git_commit(project_path)
    head, _, dirty = commit.partition("+")
    return head[:7] + (f"+{dirty}" if dirty else "") if head != "unknown" else head


def run_label(run_params: Mapping[str, Any]) -> str:
    """``azure · lifecycle · 1a2b3c4``: environment, pipeline(s), commit."""
    names = run_params.get("pipeline_names") or run_params.get("pipeline_name") or []
    if isinstance(names, str):
        names = [names]
    pipeline = "+".join(LIFECYCLE if n == "__default__" else n for n in names) or LIFECYCLE
    env = run_params.get("env") or "local"
    return f"{env} · {pipeline} · {short_commit(run_params.get('project_path'))}"
