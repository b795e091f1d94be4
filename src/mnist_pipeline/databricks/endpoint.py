"""The one owner of the production serving endpoint: create it, size it, point it at the version
``models:/<name>@production`` resolves to (through :mod:`mnist_pipeline.registry.store`), wait
until it is READY on that version, and set who may query and manage it, with databricks-sdk and
its own authentication chain. The steps, and why the endpoint is no bundle resource:
docs/databricks.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from mnist_pipeline.registry import store

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.service.serving import ServedEntityInput, ServingEndpointDetailed

# The served entity's name on the endpoint (its traffic route names it).
SERVED_ENTITY = "mnist_cnn"
_APPLICATION_ID = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I
)


class EndpointUpdateError(RuntimeError):
    """The endpoint could not be made to serve the version (the message says which and why)."""


@dataclass(frozen=True)
class Sizing:
    """What the endpoint's compute is: a workload size, or provisioned-concurrency bounds.

    The Serving API takes one or the other (``workload_size`` *or*
    ``min/max_provisioned_concurrency``), never both.
    """

    workload_type: str = "CPU"
    workload_size: str | None = "Small"
    scale_to_zero: bool = True
    min_concurrency: int | None = None
    max_concurrency: int | None = None

    def __post_init__(self) -> None:
        from databricks.sdk.service.serving import ServingModelWorkloadType

        known = [t.value for t in ServingModelWorkloadType]
        if self.workload_type not in known:
            raise EndpointUpdateError(
                f"workload type {self.workload_type!r} is not one of {', '.join(known)}"
            )
        bounds = (self.min_concurrency, self.max_concurrency)
        if (bounds[0] is None) != (bounds[1] is None):
            raise EndpointUpdateError(
                "give both concurrency bounds (min and max) or neither, got "
                f"min={bounds[0]}, max={bounds[1]}"
            )
        if bounds[0] is not None and bounds[1] is not None:
            if self.workload_size:
                raise EndpointUpdateError(
                    f"workload size {self.workload_size!r} and concurrency bounds {bounds} both "
                    "given: the Serving API takes one or the other (set the size to 'none')"
                )
            if not 0 <= bounds[0] <= bounds[1] or bounds[1] == 0:
                raise EndpointUpdateError(
                    f"concurrency bounds must satisfy 0 <= min <= max, max > 0; got {bounds}"
                )
            if bounds[0] > 0 and self.scale_to_zero:
                raise EndpointUpdateError(
                    f"min concurrency {bounds[0]} with scale to zero: an endpoint that scales to "
                    "zero has no minimum; set min to 0 or turn scale to zero off"
                )
        elif not self.workload_size:
            raise EndpointUpdateError("give a workload size or both concurrency bounds")

    def entity(self, model_name: str, version: str) -> ServedEntityInput:
        from databricks.sdk.service.serving import ServedEntityInput, ServingModelWorkloadType

        return ServedEntityInput(
            name=SERVED_ENTITY,
            entity_name=model_name,
            entity_version=str(version),
            workload_type=ServingModelWorkloadType(self.workload_type),
            workload_size=self.workload_size or None,
            scale_to_zero_enabled=self.scale_to_zero,
            min_provisioned_concurrency=self.min_concurrency,
            max_provisioned_concurrency=self.max_concurrency,
        )

    def matches(self, served: Any) -> bool:
        """Whether a served entity of the endpoint's current config has this sizing."""
        workload_type = getattr(served.workload_type, "value", served.workload_type)
        if self.workload_size:
            same_size = served.workload_size == self.workload_size
        else:
            same_size = (
                served.min_provisioned_concurrency,
                served.max_provisioned_concurrency,
            ) == (
                self.min_concurrency,
                self.max_concurrency,
            )
        return (
            same_size
            and (workload_type or "CPU") == self.workload_type
            and bool(served.scale_to_zero_enabled) == self.scale_to_zero
        )


@dataclass(frozen=True)
class Access:
    """Who may query the endpoint (``CAN_QUERY``) and who may manage it (``CAN_MANAGE``)."""

    query_groups: tuple[str, ...] = ()
    manage_groups: tuple[str, ...] = ()


def resolve_alias(registry_uri: str, model_name: str, alias: str) -> str:
    """The version ``models:/<model_name>@<alias>`` points at in ``registry_uri``.

    Raises:
        EndpointUpdateError: no such model or alias, or an unreachable registry (naming the
            model, the alias and the registry).
    """
    try:
        return store.resolve_alias(model_name, alias, registry_uri).version
    except store.ModelResolutionError as exc:
        raise EndpointUpdateError(
            f"{exc} Promote a model first (the sandbox job's promotion task sets the alias; "
            "docs/databricks.md)"
        ) from None


def _current_entities(endpoint: ServingEndpointDetailed) -> list[Any]:
    return list((endpoint.config.served_entities if endpoint.config else None) or [])


def _ready(endpoint: ServingEndpointDetailed) -> str:
    ready = endpoint.state.ready if endpoint.state else None
    return str(getattr(ready, "value", ready))


def _config_update(endpoint: ServingEndpointDetailed) -> str:
    update = endpoint.state.config_update if endpoint.state else None
    return str(getattr(update, "value", update))


def _sdk_errors() -> tuple[type[BaseException], ...]:
    from databricks.sdk.errors import DatabricksError, OperationFailed

    return (DatabricksError, OperationFailed, TimeoutError)


def _call(what: str, endpoint: str, call: Callable[[], Any]) -> Any:
    """Run one SDK call; its failure becomes an :class:`EndpointUpdateError` that says what."""
    try:
        return call()
    except _sdk_errors() as exc:
        raise EndpointUpdateError(
            f"serving endpoint {endpoint}: {what} failed: {type(exc).__name__}: {exc}"
        ) from exc


def _caller_entry(client: WorkspaceClient) -> dict[str, str]:
    """The ACL entry that keeps the caller (a service principal on a job) a manager."""
    me = _call("who am I (current-user/me)", "-", client.current_user.me)
    name = str(me.user_name or "")
    if _APPLICATION_ID.match(name):  # a service principal's user name is its application ID
        return {"service_principal_name": name}
    return {"user_name": name}


def set_access(client: WorkspaceClient, endpoint: ServingEndpointDetailed, access: Access) -> None:
    """Replace the endpoint's direct permissions: the caller and managers manage, readers query."""
    from databricks.sdk.service.serving import (
        ServingEndpointAccessControlRequest,
        ServingEndpointPermissionLevel,
    )

    manage = ServingEndpointPermissionLevel.CAN_MANAGE
    query = ServingEndpointPermissionLevel.CAN_QUERY
    entries = [
        ServingEndpointAccessControlRequest(permission_level=manage, **_caller_entry(client))
    ]
    entries += [
        ServingEndpointAccessControlRequest(group_name=group, permission_level=manage)
        for group in access.manage_groups
    ]
    entries += [
        ServingEndpointAccessControlRequest(group_name=group, permission_level=query)
        for group in access.query_groups
        if group not in access.manage_groups
    ]
    endpoint_id = str(endpoint.id or "")
    if not endpoint_id:
        raise EndpointUpdateError(f"serving endpoint {endpoint.name} reports no id to set ACLs on")
    _call(
        "setting permissions",
        str(endpoint.name),
        lambda: client.serving_endpoints.set_permissions(
            serving_endpoint_id=endpoint_id, access_control_list=entries
        ),
    )


def serve_version(
    client: WorkspaceClient,
    endpoint: str,
    model_name: str,
    version: str,
    *,
    sizing: Sizing,
    access: Access,
    wait: timedelta = timedelta(minutes=20),
) -> dict[str, Any]:
    """Make ``endpoint`` serve ``model_name`` version ``version`` with ``sizing``; wait for READY.

    Returns ``{"endpoint", "model", "version", "previous_versions", "action"}`` with action
    ``created``, ``updated`` or ``unchanged``.

    Raises:
        EndpointUpdateError: the endpoint serves another model, the create or update failed or
            timed out, or the endpoint is not READY on the version afterwards.
    """
    from databricks.sdk.errors import NotFound
    from databricks.sdk.service.serving import EndpointCoreConfigInput, Route, TrafficConfig

    entity = sizing.entity(model_name, version)
    traffic = TrafficConfig(routes=[Route(served_model_name=SERVED_ENTITY, traffic_percentage=100)])
    try:
        current = client.serving_endpoints.get(name=endpoint)
    except NotFound:
        current = None
    except _sdk_errors() as exc:
        raise EndpointUpdateError(
            f"serving endpoint {endpoint}: reading it failed: {type(exc).__name__}: {exc}"
        ) from exc

    previous: list[str] = []
    if current is None:
        action = "created"
        config = EndpointCoreConfigInput(
            name=endpoint, served_entities=[entity], traffic_config=traffic
        )
        _call(
            "create",
            endpoint,
            lambda: client.serving_endpoints.create_and_wait(
                name=endpoint, config=config, timeout=wait
            ),
        )
    else:
        if _config_update(current) == "IN_PROGRESS":  # another update first: wait it out
            current = _call(
                "waiting for the update in progress",
                endpoint,
                lambda: client.serving_endpoints.wait_get_serving_endpoint_not_updating(
                    name=endpoint, timeout=wait
                ),
            )
        served = _current_entities(current)
        ours = [e for e in served if e.entity_name == model_name]
        others = sorted({str(e.entity_name) for e in served if e.entity_name != model_name})
        if others and not ours:
            raise EndpointUpdateError(
                f"serving endpoint {endpoint} serves {others}, not {model_name}: another model's "
                "endpoint of that name exists (choose another endpoint_name)"
            )
        if others:  # the update replaces the whole config: their entities would go with it
            raise EndpointUpdateError(
                f"serving endpoint {endpoint} also serves {others} beside {model_name}: this "
                "step replaces the endpoint's whole config and would remove them; remove them "
                "from the endpoint first, or serve this model on an endpoint of its own"
            )
        previous = sorted({str(e.entity_version) for e in ours})
        unchanged = (
            len(served) == 1
            and previous == [str(version)]
            and sizing.matches(ours[0])
            and _ready(current) == "READY"
        )
        action = "unchanged" if unchanged else "updated"
        if not unchanged:
            _call(
                "config update",
                endpoint,
                lambda: client.serving_endpoints.update_config_and_wait(
                    name=endpoint, served_entities=[entity], traffic_config=traffic, timeout=wait
                ),
            )
    final = _call("reading it back", endpoint, lambda: client.serving_endpoints.get(name=endpoint))
    serving = sorted(
        {str(e.entity_version) for e in _current_entities(final) if e.entity_name == model_name}
    )
    if serving != [str(version)] or _ready(final) != "READY":
        raise EndpointUpdateError(
            f"serving endpoint {endpoint} serves versions {serving} of {model_name} "
            f"(ready={_ready(final)}, config_update={_config_update(final)}), not version "
            f"{version}: the update did not take effect (see the endpoint's events)"
        )
    set_access(client, final, access)
    return {
        "endpoint": endpoint,
        "model": model_name,
        "version": str(version),
        "previous_versions": previous,
        "action": action,
    }


def serve_alias(
    client: WorkspaceClient,
    endpoint: str,
    registry_uri: str,
    model_name: str,
    alias: str,
    *,
    sizing: Sizing,
    access: Access,
    **options: Any,
) -> dict[str, Any]:
    """:func:`serve_version` with the version ``models:/<model_name>@<alias>`` resolves to."""
    version = resolve_alias(registry_uri, model_name, alias)
    return serve_version(
        client, endpoint, model_name, version, sizing=sizing, access=access, **options
    )
