"""Registry operations that need no model: reachability errors and lineage keys."""

from __future__ import annotations

import time

import pytest

from mnist_pipeline.registry import RegistryUnreachableError, store
from mnist_pipeline.registry.config import Workspace
from tests.integration.mlflow_servers import free_port


def test_an_unreachable_server_fails_fast_with_the_workspace_and_uri():
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    workspace = Workspace("production", url, url, "mnist_cnn", "production")
    started = time.monotonic()
    with pytest.raises(RegistryUnreachableError) as error:
        store.check_reachable(workspace)
    message = str(error.value)
    assert message.startswith(f"production tracking store {url} is unreachable")
    assert message.endswith("nothing was changed")
    # One retry, no backoff: seconds, not MLflow's default minutes of retries.
    assert time.monotonic() - started < 60


def test_passwords_are_redacted_from_unreachable_errors_and_lineage_keys():
    url = f"http://bot:s3cret@127.0.0.1:{free_port()}"
    workspace = Workspace("sandbox", url, url, "mnist_cnn", "champion")
    with pytest.raises(RegistryUnreachableError) as error:
        store.check_reachable(workspace)
    assert "s3cret" not in str(error.value)
    assert store.source_key(workspace, "3") == (url.replace(":s3cret@", ":***@") + "#mnist_cnn/3")


def test_promoting_into_the_registry_it_came_from_is_refused_before_any_call():
    from mnist_pipeline.registry import RegistryConfigError
    from mnist_pipeline.registry.promotion import promote

    uri = f"http://127.0.0.1:{free_port()}"
    sandbox = Workspace("sandbox", uri, uri, "mnist_cnn", "champion")
    production = Workspace("production", uri, uri, "mnist_cnn", "production")
    with pytest.raises(RegistryConfigError, match="registries are the same"):
        promote(sandbox, production, {"version": "1"}, sample_images=None)


class _InsertRaceClient:
    """A client whose first alias or tag write loses the insert race with ``error``."""

    def __init__(self, error: str):
        self.error, self.calls = error, []

    def _write(self, *args: str) -> None:
        from mlflow.exceptions import MlflowException

        self.calls.append(args)
        if len(self.calls) == 1:
            raise MlflowException(self.error, error_code="BAD_REQUEST")

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        self._write(name, alias, version)

    def set_model_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        self._write(name, version, key, value)


def test_an_alias_created_concurrently_is_set_again_not_failed():
    client = _InsertRaceClient(
        "(sqlite3.IntegrityError) UNIQUE constraint failed: registered_model_aliases.workspace, "
        "registered_model_aliases.name, registered_model_aliases.alias"
    )
    store.set_alias(client, "mnist_cnn", "champion", 1)
    assert client.calls == [("mnist_cnn", "champion", "1")] * 2


def test_a_version_tag_created_concurrently_is_set_again_not_failed():
    client = _InsertRaceClient(
        "psycopg2.errors.UniqueViolation: duplicate key value violates unique constraint "
        '"model_version_tag_pk"'
    )
    store.set_version_tag(client, "mnist_cnn", 2, "lineage.verified", "true")
    assert client.calls == [("mnist_cnn", "2", "lineage.verified", "true")] * 2


def test_other_alias_errors_are_not_retried():
    from mlflow.exceptions import MlflowException

    client = _InsertRaceClient("Model Version (name=mnist_cnn, version=9) not found")
    with pytest.raises(MlflowException, match="not found"):
        store.set_alias(client, "mnist_cnn", "champion", 9)
    assert len(client.calls) == 1
