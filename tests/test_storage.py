"""Storage failures are named by what the user can act on (the emulator cases are in
tests/integration/cloud/test_cloud_storage.py)."""

from __future__ import annotations

import pytest

from mnist_pipeline.storage import StorageError, storage_errors

URL = "abfs://sandbox/x/05_model_input/train"
# What adlfs raised once for an Azure endpoint with nothing listening (CI, flaky before):
# a FileNotFoundError around the connection error.
ENDPOINT_DOWN_AS_NOT_FOUND = FileNotFoundError(
    "ServiceRequestError: Cannot connect to host 127.0.0.1:40453 ssl:default "
    "[Connect call failed ('127.0.0.1', 40453)]"
)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (ENDPOINT_DOWN_AS_NOT_FOUND, "cannot be reached"),
        (ConnectionRefusedError("[Errno 111] Connection refused"), "cannot be reached"),
        (FileNotFoundError("sandbox/x/05_model_input/train"), "not found"),
        (RuntimeError("ErrorCode:ContainerNotFound"), "not found"),
        (RuntimeError("ErrorCode:AuthenticationFailed (403)"), "credentials were refused"),
        (RuntimeError("something else"), "storage error"),
    ],
    ids=[
        "endpoint-down-as-not-found",
        "refused",
        "missing-file",
        "missing-container",
        "wrong-key",
        "other",
    ],
)
def test_the_message_says_what_kind_of_failure_and_names_the_url(error, reason):
    with pytest.raises(StorageError) as caught, storage_errors(URL, "MNIST_STORAGE_ROOT"):
        raise error
    message = str(caught.value)
    assert reason in message
    assert URL in message and "MNIST_STORAGE_ROOT" in message
