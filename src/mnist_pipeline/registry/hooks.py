"""Kedro hooks that run before kedro-mlflow's: embedded stores prepared, passwords redacted."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from kedro.framework.hooks import hook_impl

from mnist_pipeline.redaction import redact, redact_values
from mnist_pipeline.registry.config import (
    Workspace,
    absolute_store_uri,
    ensure_local_store,
    scheme_of,
)
from mnist_pipeline.registry.store import RegistryUnreachableError, check_reachable, git_commit

_MLFLOW_PATTERNS = ["mlflow*", "mlflow*/**", "**/mlflow*"]


class RunStoreUnreachableError(RegistryUnreachableError):
    """The run's tracking server did not answer: the run stopped before any node."""


def _is_server(uri: Any) -> bool:
    """An MLflow tracking server (REST over HTTP), the kind that can stop answering."""
    return isinstance(uri, str) and scheme_of(uri) in ("http", "https")


class MlflowLocalStoreHook:
    """Anchor embedded ``sqlite:///`` stores at the project and create their folder; fail fast
    on a tracking server that does not answer.

    kedro-mlflow opens the tracking store in its own ``after_context_created``; this hook runs
    first (``tryfirst``) and hands it ``mlflow.yml`` with relative SQLite URIs made absolute
    (relative to the project, as kedro-mlflow already does for artifact locations; MLflow
    would otherwise resolve them from the current folder and cache them) and their folder
    created (SQLite creates the file, not the folder).

    An MLflow server (``http(s)://``) is asked one cheap question first, with bounded retries
    and timeouts (:func:`~mnist_pipeline.registry.store.check_reachable`, as ``kedro serve``
    does): kedro-mlflow would otherwise retry for minutes with MLflow's defaults (a deploy
    against a stopped production server took 250 s) and end in raw tracebacks. A server that
    does not answer ends the run here with :class:`RegistryUnreachableError` (one line naming
    the URI). Databricks URIs are left to MLflow (their authentication is the platform's).
    """

    @hook_impl(tryfirst=True)
    def after_context_created(self, context: Any) -> None:
        loader = context.config_loader
        # kedro-mlflow adds the same pattern in its own hook, which runs after this one.
        loader.config_patterns.setdefault("mlflow", _MLFLOW_PATTERNS)
        try:
            conf = dict(loader["mlflow"] or {})
        except Exception:  # no mlflow.yml: kedro-mlflow reports it itself
            return
        server = dict(conf.get("server") or {})
        for key in ("mlflow_tracking_uri", "mlflow_registry_uri"):
            uri = server.get(key)
            if isinstance(uri, str):
                server[key] = absolute_store_uri(uri, context.project_path)
                ensure_local_store(server[key])
        conf["server"] = server
        loader["mlflow"] = conf
        tracking = server.get("mlflow_tracking_uri")
        registry = server.get("mlflow_registry_uri") or tracking
        if any(_is_server(uri) for uri in (tracking, registry)):
            label = str((loader["globals"] or {}).get("workspace") or "the run's")
            try:
                check_reachable(Workspace(label, str(tracking), str(registry), "", ""))
            except RegistryUnreachableError as exc:
                raise RunStoreUnreachableError(str(exc)) from None


class RedactedParamsHook:
    """What kedro-mlflow logs of parameters and run parameters: URIs without passwords.

    kedro-mlflow logs every ``params:`` input of a node as a run parameter (in its own
    ``before_node_run``) and the run's parameters as tags (in ``before_pipeline_run``): a
    tracking URI with a password in it (``promotion.production.tracking_uri``) would be
    stored in the sandbox. This hook runs first (``tryfirst``) and replaces those values, in
    the copies that hooks see, by redacted copies. The node itself still gets the real value:
    Kedro hands hooks a shallow copy of the inputs and the node the original.
    """

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict[str, Any], catalog: Any) -> None:
        for key in ("runtime_params", "extra_params"):
            if run_params.get(key):
                run_params[key] = redact_values(run_params[key])
        # MLflow prints "View run ... at: <tracking URI>/#/..." to stdout when a run on a
        # server ends, password included: not when a URI of this run holds one.
        import mlflow

        try:
            texts = [mlflow.get_tracking_uri(), repr(catalog.load("parameters"))]
        except Exception:  # no parameters: nothing to look at
            texts = [mlflow.get_tracking_uri()]
        if any(redact(text) != text for text in texts):
            os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"

    @hook_impl(tryfirst=True)
    def before_node_run(self, inputs: dict[str, Any]) -> None:
        for name in list(inputs):
            if name.startswith("params:") or name == "parameters":
                inputs[name] = redact_values(inputs[name])


class MlflowRunHook:
    """A readable run name, and the experiment's tags on an existing experiment too.

    * Run name: ``mlflow.yml``'s ``tracking.run.name`` when set, else
      ``<env> · <pipeline> · <short commit>`` (``azure · lifecycle · 1a2b3c4``), not
      ``__default__``. Set on kedro-mlflow's configuration before it starts the run
      (``tryfirst``).
    * Experiment tags: kedro-mlflow applies ``create_experiment_kwargs.tags`` only when it
      creates the experiment; the tags (``mlflow.experimentKind``, which makes MLflow 3's UI
      open the experiment on its runs table) are also set on an experiment that already
      exists, once the run has started (``trylast``).
    """

    def __init__(self) -> None:
        self._mlflow_config: Any = None

    @hook_impl(trylast=True)
    def after_context_created(self, context: Any) -> None:
        self._mlflow_config = getattr(context, "mlflow", None)  # set by kedro-mlflow

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict[str, Any]) -> None:
        run = getattr(getattr(self._mlflow_config, "tracking", None), "run", None)
        if run is not None and not run.name:
            run.name = run_label(run_params)

    @hook_impl(trylast=True)
    def before_node_run(self) -> None:
        self._tag_experiment()

    def _tag_experiment(self) -> None:
        import mlflow

        tracking = getattr(self._mlflow_config, "tracking", None)
        active = mlflow.active_run()
        if tracking is None or active is None:
            return
        self._mlflow_config = None  # once per run
        wanted = dict(tracking.experiment.create_experiment_kwargs.tags or {})
        experiment_id = active.info.experiment_id
        have = mlflow.get_experiment(experiment_id).tags
        client = mlflow.MlflowClient()
        for key, value in wanted.items():
            if have.get(key) != str(value):
                client.set_experiment_tag(experiment_id, key, str(value))


def tracking_location() -> str | None:
    """``run <name> (<id>) in <store>`` of the active MLflow run, or ``None`` without one."""
    import mlflow

    active = mlflow.active_run()
    if active is None:
        return None
    return (
        f"run '{active.info.run_name}' ({active.info.run_id}) in "
        f"{redact(mlflow.get_tracking_uri())}"
    )


LIFECYCLE = "lifecycle"  # what __default__ is called in run names and the summary


def short_commit(project_path: Any = None) -> str:
    """The checked-out commit, abbreviated (``+dirty`` kept), or ``unknown``."""
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
