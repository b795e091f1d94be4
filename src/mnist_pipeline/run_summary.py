"""Say the outcome: one INFO line per finished stage, and a short summary at the end of a run.

Each stage says its own outcome: ``outcome(outputs)`` of its package
(``mnist_pipeline.pipelines.<stage>``, a pure function in its ``nodes.py``) turns the outputs
of the stage's nodes into one line, or ``None`` while what it needs is missing. The hook
collects a stage's outputs while it runs and logs its line when the stage's last node has
run; a stage that fails after producing what its line needs (a gate refusal, a model that is
NOT DEPLOYABLE) still gets its line before the error. A run of several stages ends with a
summary: the stages' lines, where the reports are (the catalog's ``reporting`` layer) and the
MLflow run. Nothing is recomputed and no node changes.
"""

from __future__ import annotations

import importlib
import logging
import posixpath
import time
from collections.abc import Callable, Mapping
from typing import Any

from kedro.framework.hooks import hook_impl

from mnist_pipeline.registry.hooks import run_label, tracking_location

logger = logging.getLogger("mnist_pipeline.run")

Outcome = Callable[[Mapping[str, Any]], "str | None"]


def stage_outcome(stage: str) -> Outcome | None:
    """The ``outcome`` function of ``mnist_pipeline.pipelines.<stage>``, if it has one."""
    try:
        package = importlib.import_module(f"mnist_pipeline.pipelines.{stage}")
    except ImportError:
        return None
    return getattr(package, "outcome", None)


def reports_folder(catalog_config: Mapping[str, Any]) -> str | None:
    """Where the catalog's reports go: the folder of its first ``reporting``-layer dataset
    (``metadata: kedro-viz: layer: reporting``) with a plain file path."""
    for entry in catalog_config.values():
        if not isinstance(entry, Mapping):
            continue
        layer = ((entry.get("metadata") or {}).get("kedro-viz") or {}).get("layer")
        inner = entry.get("dataset") if isinstance(entry.get("dataset"), Mapping) else {}
        path = entry.get("filepath") or inner.get("filepath")
        if layer == "reporting" and isinstance(path, str) and "{" not in path:
            return posixpath.dirname(path)
    return None


def summary_lines(
    stage_lines: list[str], run: str, reports_dir: str | None, tracking: str | None
) -> list[str]:
    """The end-of-run summary: each stage's line, where the reports are, the MLflow run."""
    lines = [f"Run summary ({run}):", *(f"  {line}" for line in stage_lines)]
    if reports_dir:
        lines.append(f"  reports         {reports_dir}")
    if tracking:
        lines.append(f"  MLflow          {tracking}")
    return lines


def _stage_of(node: Any) -> str:
    return (node.namespace or node.name).split(".")[0]


class RunSummaryHook:
    """Log each stage's outcome and the run's summary from the outputs the stages produce."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._reports_dir: str | None = None
        self._reset()

    def _reset(self) -> None:
        self._pending: dict[str, set[str]] = {}  # stage -> its nodes not run yet
        self._outputs: dict[str, dict[str, Any]] = {}  # stage -> its outputs, until its line
        self._lines: list[str] = []
        self._label = ""
        self._started = self._clock()

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        try:
            self._reports_dir = reports_folder(context.config_loader["catalog"] or {})
        except Exception:  # no catalog configuration: the summary names no folder
            self._reports_dir = None

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any) -> None:
        self._reset()
        self._label = run_label(run_params)
        for node in pipeline.nodes:
            self._pending.setdefault(_stage_of(node), set()).add(node.name)

    @hook_impl
    def after_node_run(self, node: Any, outputs: dict[str, Any]) -> None:
        stage = _stage_of(node)
        self._outputs.setdefault(stage, {}).update(outputs or {})
        pending = self._pending.get(stage, set())
        pending.discard(node.name)
        if not pending:
            self._report(stage)

    def _report(self, stage: str) -> None:
        outputs = self._outputs.pop(stage, {})
        outcome = stage_outcome(stage)
        line = outcome(outputs) if outcome else None
        if line:
            self._lines.append(line)
            logger.info(line)

    # tryfirst: before kedro-mlflow ends the run, so the summary can name it.
    @hook_impl(tryfirst=True)
    def after_pipeline_run(self) -> None:
        self._log_summary()

    @hook_impl(tryfirst=True)
    def on_pipeline_error(self) -> None:
        for stage in list(self._outputs):
            self._report(stage)
        self._log_summary()

    def _log_summary(self) -> None:
        if len(self._pending) < 2:
            return  # one stage: its own line said it all
        minutes = (self._clock() - self._started) / 60
        lines = summary_lines(
            self._lines, f"{self._label}, {minutes:.1f} min", self._reports_dir, tracking_location()
        )
        logger.info("\n".join(lines))
