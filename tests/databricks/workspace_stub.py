"""A local stand-in of the Databricks workspace REST API that the deploy steps call.

A real HTTP server on 127.0.0.1 that answers databricks-sdk's requests in the shapes of the
Serving Endpoints API (``GET/POST /api/2.0/serving-endpoints[/<name>]``, ``PUT
.../<name>/config``, ``PUT /api/2.0/permissions/serving-endpoints/<id>``, ``POST
/serving-endpoints/<name>/invocations``), SCIM ``/Me`` and the workspace OIDC endpoints of
OAuth M2M. A config change is ``IN_PROGRESS`` for ``polls`` reads, then takes effect (or
fails, per ``outcome``), as the workspace reports it. The SDK's own HTTP client, error
mapping, waiters and authentication run unchanged against it
(``WorkspaceClient(host="http://127.0.0.1:<port>", token=...)``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

TOKEN = "test-token-not-a-secret"
CLIENT_ID, CLIENT_SECRET = "test-client-id", "test-client-secret-not-a-secret"
OAUTH_ACCESS_TOKEN = "test-oauth-access-token"
PRINCIPAL = "7f0c1d2e-3b4a-4c5d-8e6f-0a1b2c3d4e5f"  # the caller: a service principal's app ID


class FakeWorkspace:
    """One workspace's serving endpoints, ACLs and the requests it got."""

    def __init__(self) -> None:
        self.endpoints: dict[str, dict[str, Any]] = {}
        self.acls: dict[str, list[dict]] = {}
        self.requests: list[tuple[str, str, dict | None]] = []
        self.authorizations: set[str] = set()
        self.polls = 1  # reads that still say IN_PROGRESS after a change
        self.outcome = "NOT_UPDATING"  # or UPDATE_FAILED, UPDATE_CANCELED
        self.ready_after_update = "READY"  # what state.ready says once a change took effect
        self.refusals: dict[tuple[str, str], tuple[int, dict]] = {}  # (method, path): answer
        self.answer: Callable[[dict], Any] = lambda body: []
        self._pending: dict[str, tuple[dict, int]] = {}
        self.host = ""

    # ── state ──
    def add_endpoint(self, name: str, served_entities: list[dict]) -> None:
        self.endpoints[name] = {
            "name": name,
            "id": f"id-{name}",
            "state": {"ready": "READY", "config_update": "NOT_UPDATING"},
            "config": self._config(served_entities),
            "creator": PRINCIPAL,
        }

    @staticmethod
    def _config(served_entities: list[dict], version: int = 1) -> dict:
        entities = [
            {**entity, "state": {"deployment": "DEPLOYMENT_READY"}} for entity in served_entities
        ]
        routes = [{"served_model_name": e["name"], "traffic_percentage": 100} for e in entities]
        return {
            "served_entities": entities,
            "traffic_config": {"routes": routes},
            "config_version": version,
        }

    def start_update(self, name: str, served_entities: list[dict]) -> None:
        """Another writer's config change to ``name``, in progress (it lands after ``polls``
        reads, or ends per ``outcome``)."""
        self._change(name, {"served_entities": served_entities})

    def refuse(self, method: str, path: str, status: int, error_code: str, message: str) -> None:
        """Answer ``method path`` with this error (e.g. 403 PERMISSION_DENIED) from now on."""
        self.refusals[(method, path)] = (status, {"error_code": error_code, "message": message})

    def served_versions(self, name: str) -> list[str]:
        return [str(e["entity_version"]) for e in self.endpoints[name]["config"]["served_entities"]]

    def calls(self, method: str, prefix: str) -> list[dict | None]:
        return [body for m, path, body in self.requests if m == method and path.startswith(prefix)]

    def _change(self, name: str, config: dict) -> None:
        endpoint = self.endpoints[name]
        endpoint["state"]["config_update"] = "IN_PROGRESS"
        endpoint["pending_config"] = config
        self._pending[name] = (config, self.polls)

    def read(self, name: str) -> dict:
        """The endpoint as GET answers it, advancing an update in progress by one read."""
        endpoint = self.endpoints[name]
        if name in self._pending:
            config, left = self._pending[name]
            if left > 0:
                self._pending[name] = (config, left - 1)
            else:
                del self._pending[name]
                endpoint.pop("pending_config", None)
                if self.outcome == "NOT_UPDATING":
                    version = endpoint["config"].get("config_version", 0) + 1
                    endpoint["config"] = self._config(config["served_entities"], version)
                    endpoint["state"] = {
                        "ready": self.ready_after_update,
                        "config_update": "NOT_UPDATING",
                    }
                else:
                    endpoint["state"]["config_update"] = self.outcome
        return json.loads(json.dumps(endpoint))

    # ── the API ──
    def handle(self, method: str, path: str, body: dict | None) -> tuple[int, Any]:
        self.requests.append((method, path, body))
        if (method, path) in self.refusals:
            return self.refusals[(method, path)]
        prefix = "/api/2.0/serving-endpoints"
        if method == "GET" and path == "/api/2.0/preview/scim/v2/Me":
            return 200, {"id": "1", "userName": PRINCIPAL, "displayName": "mnist-pipeline"}
        if method == "GET" and path.startswith(f"{prefix}/"):
            name = unquote(path[len(prefix) + 1 :])
            if name not in self.endpoints:
                return 404, {
                    "error_code": "RESOURCE_DOES_NOT_EXIST",
                    "message": f"Endpoint with name '{name}' does not exist.",
                }
            return 200, self.read(name)
        if method == "POST" and path == prefix:
            name = body["name"]
            if name in self.endpoints:
                return 400, {"error_code": "RESOURCE_ALREADY_EXISTS", "message": "exists"}
            self.endpoints[name] = {
                "name": name,
                "id": f"id-{name}",
                "state": {"ready": "NOT_READY", "config_update": "IN_PROGRESS"},
                "config": {"config_version": 0, "served_entities": []},
                "creator": PRINCIPAL,
            }
            self._change(name, body["config"])
            return 200, json.loads(json.dumps(self.endpoints[name]))
        if method == "PUT" and path.startswith(f"{prefix}/") and path.endswith("/config"):
            name = unquote(path[len(prefix) + 1 : -len("/config")])
            if name not in self.endpoints:
                return 404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no endpoint"}
            if self.endpoints[name]["state"]["config_update"] == "IN_PROGRESS":
                return 409, {"error_code": "RESOURCE_CONFLICT", "message": "update in progress"}
            self._change(name, body)
            return 200, json.loads(json.dumps(self.endpoints[name]))
        if method == "PUT" and path.startswith("/api/2.0/permissions/serving-endpoints/"):
            endpoint_id = path.rsplit("/", 1)[1]
            self.acls[endpoint_id] = body["access_control_list"]
            return 200, {
                "object_id": f"/serving-endpoints/{endpoint_id}",
                "object_type": "serving-endpoint",
                "access_control_list": [
                    {**entry, "all_permissions": [{"permission_level": entry["permission_level"]}]}
                    for entry in body["access_control_list"]
                ],
            }
        if method == "POST" and path.startswith("/serving-endpoints/"):
            name = unquote(path[len("/serving-endpoints/") : -len("/invocations")])
            if name not in self.endpoints:
                return 404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no endpoint"}
            return 200, {"predictions": self.answer(body)}
        return 404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"No API found for {path}"}


@contextmanager
def serve(workspace: FakeWorkspace | None = None) -> Iterator[tuple[FakeWorkspace, str]]:
    """Run ``workspace`` on 127.0.0.1; yields it and its base URL."""
    state = workspace or FakeWorkspace()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _oauth(self, method: str, raw: bytes) -> bool:
            if method == "GET" and self.path == "/oidc/.well-known/oauth-authorization-server":
                self._send(
                    200,
                    {
                        "issuer": f"{state.host}/oidc",
                        "authorization_endpoint": f"{state.host}/oidc/v1/authorize",
                        "token_endpoint": f"{state.host}/oidc/v1/token",
                    },
                )
                return True
            if method == "POST" and self.path == "/oidc/v1/token":
                text = raw.decode()
                header = self.headers.get("Authorization", "")
                known = (CLIENT_SECRET in text and CLIENT_ID in text) or header.startswith("Basic ")
                if not known or "grant_type=client_credentials" not in text:
                    self._send(401, {"error": "invalid_client"})
                else:
                    self._send(
                        200,
                        {
                            "access_token": OAUTH_ACCESS_TOKEN,
                            "token_type": "Bearer",
                            "expires_in": 3600,
                        },
                    )
                return True
            return False

        def _dispatch(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if self._oauth(method, raw):
                return
            if self.path == "/.well-known/databricks-config":  # host metadata, unauthenticated
                self._send(
                    200,
                    {
                        "oidc_endpoint": f"{state.host}/oidc",
                        "workspace_id": "1234567890",
                        "cloud": "gcp",
                    },
                )
                return
            authorization = self.headers.get("Authorization", "")
            state.authorizations.add(authorization)
            if authorization not in (f"Bearer {TOKEN}", f"Bearer {OAUTH_ACCESS_TOKEN}"):
                self._send(
                    401, {"error_code": "UNAUTHENTICATED", "message": "Invalid access token."}
                )
                return
            body = json.loads(raw) if raw else None
            self._send(*state.handle(method, self.path.split("?")[0], body))

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def do_PUT(self) -> None:
            self._dispatch("PUT")

        def do_PATCH(self) -> None:
            self._dispatch("PATCH")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.host = f"http://127.0.0.1:{server.server_address[1]}"
    # shutdown() waits for serve_forever's next poll: 0.05 s, not the default 0.5 s per test
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state, state.host
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
