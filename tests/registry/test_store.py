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
