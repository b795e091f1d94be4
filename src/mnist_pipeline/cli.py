"""Project commands that ``kedro`` adds to its own: ``kedro serve``.

``kedro serve --env gcp`` serves the production model (``models:/<name>@<alias>`` of
``deploy_model`` in the environment's parameters) over TensorFlow Serving's REST API
on 127.0.0.1, port ``serving.port`` (8501), until Ctrl-C.

Kedro takes ``run`` from this module (``kedro run`` and the packaged entry point,
``python -m mnist_pipeline``): kedro's own command, except that an expected failure
(offline source, gate refusal, bad setting: :mod:`mnist_pipeline.errors`) ends with its
message and the fix instead of a traceback.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click
from kedro.framework.cli.project import run as kedro_run
from kedro.framework.project import settings
from kedro.framework.startup import bootstrap_project
from kedro.io import DataCatalog

from mnist_pipeline.errors import EXIT_EXPECTED, expected_failure, report


def _run(**kwargs: Any) -> Any:
    """Kedro's ``run``; an expected failure ends with its message and fix, no traceback."""
    try:
        return kedro_run.callback(**kwargs)
    except Exception as exc:
        failure = expected_failure(exc)
        if failure is None:
            raise  # unexpected: the full traceback
        report(failure)
        requested = set(kwargs.get("pipelines") or []) | {kwargs.get("pipeline")}
        if "deploy" in requested and _stopped_before_any_node(failure.exception):
            _save_deploy_refusal(kwargs, failure.message)
        raise SystemExit(EXIT_EXPECTED) from None


def _stopped_before_any_node(exc: BaseException) -> bool:
    # lazy: MLflow loads only when a run failed
    from mnist_pipeline.registry.hooks import RunStoreUnreachableError

    return isinstance(exc, RunStoreUnreachableError)


def _save_deploy_refusal(kwargs: dict[str, Any], message: str) -> None:
    """A deploy that stopped before its first node still writes its (refusing) report, so no
    earlier report is read as this run's verdict."""
    # lazy: MLflow and uvicorn, which only a refused deploy needs here
    from mnist_pipeline.pipelines.deploy.nodes import refusal_report, summarise_deployment

    try:
        loader = _config_loader(kwargs.get("env"), kwargs.get("conf_source"), kwargs.get("params"))
        entries = loader["catalog"]
        names = ("deployment_report", "deployment_summary")
        catalog = DataCatalog.from_config({name: entries[name] for name in names})
        refusal = refusal_report(loader["parameters"]["deploy_model"], message)
        catalog.save("deployment_report", refusal)
        catalog.save("deployment_summary", summarise_deployment(refusal))
    except Exception as exc:  # the failure above is what matters; say why no report
        logging.getLogger(__name__).warning(
            "the deployment report was not written: %s: %s", type(exc).__name__, exc
        )


# Kedro takes `run` from this module (``kedro run`` and ``python -m mnist_pipeline``): its
# own options and help, the same session, only the ending of an expected failure differs.
run = click.Command(
    name=kedro_run.name,
    params=kedro_run.params,
    callback=_run,
    help=kedro_run.help,
    short_help=kedro_run.short_help,
)


@click.group(name="mnist-pipeline")
def cli() -> None:
    """Project commands of mnist-pipeline."""


cli.add_command(run)


def _config_loader(
    env: str | None, conf_source: str | None = None, params: dict[str, Any] | None = None
) -> Any:
    project_path = Path.cwd()
    bootstrap_project(project_path)
    return settings.CONFIG_LOADER_CLASS(
        conf_source=conf_source or str(project_path / settings.CONF_SOURCE),
        env=env,
        runtime_params=params or None,
        **settings.CONFIG_LOADER_ARGS,
    )


def _parameters(env: str | None) -> dict[str, Any]:
    return _config_loader(env)["parameters"]


@cli.command()
@click.option("--env", "-e", default=None, help="Kedro environment, e.g. gcp (production).")
@click.option("--host", default=None, help="Interface to bind (default: serving.host, 127.0.0.1).")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="TCP port (default: serving.port, 8501; 0: any free port).",
)
@click.option(
    "--model-uri",
    default=None,
    help="Serve this MLflow model URI instead of models:/<deploy_model.name>@<deploy_model.alias>.",
)
@click.option(
    "--allow-unauthenticated",
    is_flag=True,
    default=False,
    help="Serve beyond loopback without $MNIST_SERVER_TOKEN (a gateway authenticates). Warned.",
)
def serve(
    env: str | None,
    host: str | None,
    port: int | None,
    model_uri: str | None,
    allow_unauthenticated: bool,
) -> None:
    """Serve the production model over REST until Ctrl-C.

    Beyond loopback it needs a bearer token in $MNIST_SERVER_TOKEN (or --allow-unauthenticated).
    A setting that cannot work (serving.*, inference_log.*, the registry) ends with one line
    naming it, and the fix, instead of a traceback.
    """
    try:
        # lazy: TensorFlow and MLflow load only when serving, not for kedro's other commands
        from mnist_pipeline.parameters import check, operations
        from mnist_pipeline.serving import ServerSettings, run_server  # lazy: as above

        parameters = _parameters(env)
        model = check(operations.DeployModel, parameters.get("deploy_model"), "deploy_model")
        options = {
            "host": host,
            "port": port,
            "allow_unauthenticated": allow_unauthenticated or None,
        }
        server = {**(parameters.get("serving") or {})}
        server |= {key: value for key, value in options.items() if value is not None}
        serving = check(operations.Serving, server, "serving")
        # The inference log (parameters_inference_log.yml) is for this server only: deploy's
        # validation server never gets it, so validation traffic stays out of the log.
        log = check(operations.InferenceLog, parameters.get("inference_log"), "inference_log")
        uri = model_uri or f"models:/{model.name}@{model.alias}"
        run_server(uri, model.registry_uri, ServerSettings(**dict(serving), inference_log=log))
    except Exception as exc:
        failure = expected_failure(exc)
        if failure is None:
            raise  # unexpected: the full traceback
        report(failure)
        raise SystemExit(EXIT_EXPECTED) from None
