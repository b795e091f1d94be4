"""Point a Databricks Model Serving endpoint at the version an alias resolves to.

A served entity names ``entity_name`` + ``entity_version``, never an alias. After the
deploy pipeline has validated ``models:/<name>@production``, the deploy job's
``update_endpoint`` task calls :func:`update_to_alias`: it resolves the alias in the
production registry (through :mod:`mnist_pipeline.registry.store`, the one module that
talks to MLflow), then sets every served entity of the endpoint that serves ``<name>`` to
that version with the Serving Endpoints REST API (``PUT
/api/2.0/serving-endpoints/<endpoint>/config``), keeping workload type/size, scale to zero
and the traffic routes as they are, and waits until the endpoint reports the new config
ready.

The workspace comes from ``DATABRICKS_HOST`` and the token from ``DATABRICKS_TOKEN`` (on
the job cluster: ``{{secrets/<scope>/<key>}}`` references in ``spark_env_vars``). The token
is never printed or put in an error message.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests

HOST_ENV = "DATABRICKS_HOST"
TOKEN_ENV = "DATABRICKS_TOKEN"
# Fields of a served entity that a config update takes (the GET answer adds state etc.).
ENTITY_INPUT_FIELDS = (
    "name",
    "entity_name",
    "entity_version",
    "workload_size",
    "workload_type",
    "scale_to_zero_enabled",
    "min_provisioned_throughput",
    "max_provisioned_throughput",
    "environment_vars",
    "instance_profile_arn",
)


class EndpointUpdateError(RuntimeError):
    """The endpoint could not be pointed at the version (the message says which and why)."""


@dataclass(frozen=True)
class WorkspaceApi:
    """The few REST calls on one workspace that the deploy job needs."""

    host: str
    token: str = field(repr=False)  # never in a repr, log line or message
    timeout_s: float = 30.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WorkspaceApi:
        environ = os.environ if environ is None else environ
        host = environ.get(HOST_ENV, "").strip().rstrip("/")
        token = environ.get(TOKEN_ENV, "").strip()
        missing = [name for name, value in ((HOST_ENV, host), (TOKEN_ENV, token)) if not value]
        if missing:
            raise EndpointUpdateError(
                f"{' and '.join(missing)} not set: the deploy job's cluster sets them from the "
                "bundle (workspace host, and the token as a {{secrets/<scope>/<key>}} reference)"
            )
        if not host.startswith(("https://", "http://")):
            host = f"https://{host}"
        return cls(host=host, token=token)

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> dict:
        url = f"{self.host}{path}"
        try:
            answer = requests.request(
                method,
                url,
                json=body,
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=self.timeout_s,
            )
        except requests.RequestException as exc:
            reason = str(exc).replace(self.token, "***")
            raise EndpointUpdateError(
                f"{method} {url} failed: {type(exc).__name__}: {reason}"
            ) from exc
        if answer.status_code >= 400:
            try:
                message = answer.json().get("message", "")
            except ValueError:
                message = answer.text[:300]
            message = str(message).replace(self.token, "***")
            raise EndpointUpdateError(f"{method} {url} answered {answer.status_code}: {message}")
        return answer.json() if answer.content else {}

    def get_endpoint(self, name: str) -> dict:
        return self._call("GET", f"/api/2.0/serving-endpoints/{quote(name, safe='')}")

    def put_config(self, name: str, config: Mapping[str, Any]) -> dict:
        return self._call(
            "PUT", f"/api/2.0/serving-endpoints/{quote(name, safe='')}/config", config
        )


def resolve_alias(registry_uri: str, model_name: str, alias: str) -> str:
    """The version ``models:/<model_name>@<alias>`` points at in ``registry_uri``.

    Raises:
        EndpointUpdateError: no such model or alias (naming both and the registry).
    """
    from mnist_pipeline.registry.config import Workspace, redact_uri
    from mnist_pipeline.registry.store import alias_version, client_for

    workspace = Workspace(
        label="production",
        tracking_uri=registry_uri,
        registry_uri=registry_uri,
        model_name=model_name,
        alias=alias,
    )
    version = alias_version(client_for(workspace), model_name, alias)
    if version is None:
        raise EndpointUpdateError(
            f"models:/{model_name}@{alias} does not exist in {redact_uri(registry_uri)}: promote "
            "a model first (on Databricks, aliases need Unity Catalog: see docs/databricks.md)"
        )
    return str(version.version)


def _served_entities(endpoint: Mapping[str, Any], name: str) -> list[dict]:
    config = endpoint.get("config") or endpoint.get("pending_config") or {}
    entities = config.get("served_entities") or []
    if not entities:
        raise EndpointUpdateError(f"serving endpoint {name} has no served entities to update")
    return [dict(entity) for entity in entities]


def update_endpoint(
    api: WorkspaceApi,
    endpoint: str,
    model_name: str,
    version: str,
    *,
    wait_s: float = 1200.0,
    poll_s: float = 10.0,
) -> dict[str, Any]:
    """Serve ``model_name`` version ``version`` on ``endpoint``; wait until it is ready.

    Only served entities whose ``entity_name`` is ``model_name`` change; an endpoint that
    already serves the version is left alone. Returns ``{"endpoint", "model", "version",
    "previous_versions", "changed"}``.

    Raises:
        EndpointUpdateError: the endpoint does not serve ``model_name``, the update
            failed or was cancelled, or it was not ready within ``wait_s``.
    """
    current = api.get_endpoint(endpoint)
    entities = _served_entities(current, endpoint)
    ours = [e for e in entities if e.get("entity_name") == model_name]
    if not ours:
        served = sorted({str(e.get("entity_name")) for e in entities})
        raise EndpointUpdateError(
            f"serving endpoint {endpoint} serves {served}, not {model_name}: check the bundle's "
            "model_name variable"
        )
    previous = sorted({str(e.get("entity_version")) for e in ours})
    result = {
        "endpoint": endpoint,
        "model": model_name,
        "version": str(version),
        "previous_versions": previous,
        "changed": previous != [str(version)],
    }
    if not result["changed"]:
        return result
    updated = []
    for entity in entities:
        item = {key: entity[key] for key in ENTITY_INPUT_FIELDS if key in entity}
        if entity.get("entity_name") == model_name:
            item["entity_version"] = str(version)
        updated.append(item)
    config: dict[str, Any] = {"served_entities": updated}
    traffic = (current.get("config") or {}).get("traffic_config")
    if traffic:
        config["traffic_config"] = traffic
    api.put_config(endpoint, config)
    wait_until_ready(api, endpoint, wait_s=wait_s, poll_s=poll_s)
    return result


def wait_until_ready(api: WorkspaceApi, endpoint: str, *, wait_s: float, poll_s: float) -> None:
    """Poll the endpoint's state until its config update is done and it is ready."""
    deadline = time.monotonic() + wait_s
    while True:
        state = api.get_endpoint(endpoint).get("state") or {}
        update, ready = state.get("config_update"), state.get("ready")
        if update in ("UPDATE_FAILED", "UPDATE_CANCELED"):
            raise EndpointUpdateError(
                f"serving endpoint {endpoint}: config update {update}; the previous version "
                "keeps serving (see the endpoint's events in the workspace)"
            )
        if update == "NOT_UPDATING" and ready == "READY":
            return
        if time.monotonic() >= deadline:
            raise EndpointUpdateError(
                f"serving endpoint {endpoint} not ready after {wait_s:g} s "
                f"(config_update={update}, ready={ready})"
            )
        time.sleep(poll_s)  # the workspace reports progress only when asked


def update_to_alias(
    api: WorkspaceApi,
    endpoint: str,
    registry_uri: str,
    model_name: str,
    alias: str,
    **wait: float,
) -> dict[str, Any]:
    """:func:`update_endpoint` to the version ``models:/<model_name>@<alias>`` resolves to."""
    version = resolve_alias(registry_uri, model_name, alias)
    return update_endpoint(api, endpoint, model_name, version, **wait)
