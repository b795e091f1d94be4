"""Storage failures are named by what the user can act on (the emulator cases are in
tests/integration/cloud/test_cloud_storage.py)."""

from __future__ import annotations

import pytest

from mnist_pipeline.redaction import redact
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


def _timeouts() -> list[BaseException]:
    """Timeouts as the storage stack raises them (asyncio/socket, aiohttp for gcsfs and adlfs,
    the Azure SDK, requests, fsspec), most with no message at all."""
    import aiohttp
    import requests
    from azure.core.exceptions import ServiceRequestTimeoutError, ServiceResponseTimeoutError
    from fsspec.exceptions import FSTimeoutError

    return [
        TimeoutError(),
        OSError(110, "Connection timed out"),  # errno ETIMEDOUT: Python makes it a TimeoutError
        aiohttp.ServerTimeoutError("Timeout on reading data from socket"),
        ServiceResponseTimeoutError(TimeoutError(), error=TimeoutError()),
        ServiceRequestTimeoutError("Connection timeout to host http://127.0.0.1:10000"),
        requests.ReadTimeout("HTTPConnectionPool(host='127.0.0.1', port=4443): Read timed out."),
        FSTimeoutError(),
    ]


def test_a_timeout_of_any_layer_is_an_endpoint_that_cannot_be_reached():
    for error in _timeouts():
        with pytest.raises(StorageError) as caught, storage_errors(URL, "MNIST_STORAGE_ROOT"):
            raise error
        assert "cannot be reached" in str(caught.value), repr(error)


SIGNATURE = "AbCd3fGh1jKlMn0pQrStUvWxYz%2B0123456789%3D"
SAS_URL = (
    "https://acct.blob.core.windows.net/sandbox/x?sv=2022-11-02&ss=b&srt=co&sp=rl"
    f"&se=2026-12-01T00%3A00%3A00Z&spr=https&sig={SIGNATURE}&comp=list"
)


def test_a_sas_signature_is_never_shown_and_a_refused_one_says_credentials():
    """In a URL, in a connection string, or given as a storage option: the signature is
    redacted, what the message needs to say stays (the container, the permissions)."""
    token = SAS_URL.split("?", 1)[1].removesuffix("&comp=list")
    connection = f"BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature={token}"
    failures = [
        (RuntimeError(f"AuthenticationFailed: Signature did not match. URL: {SAS_URL}"), {}),
        (ValueError(f"bad connection string {connection}"), {}),
        (RuntimeError(f"Signature not valid in the specified time frame: {token}"),
         {"sas_token": token}),
    ]  # fmt: skip
    for error, options in failures:
        assert SIGNATURE not in redact(str(error), options), error
    # only the signature goes: the account, container and permissions still say what failed
    assert redact(SAS_URL) == SAS_URL.replace(SIGNATURE, "***")
    with pytest.raises(StorageError) as caught, storage_errors(URL, "FSSPEC_ABFS_SAS_TOKEN", {}):
        raise failures[0][0]
    assert SIGNATURE not in str(caught.value)
    assert "credentials were refused" in str(caught.value)


def test_a_refused_signature_says_the_credentials_were_refused():
    """The Azure SDK's first line for a bad SAS or key names no error code, only the signature."""
    from azure.core.exceptions import ClientAuthenticationError

    refused = ClientAuthenticationError(
        "Server failed to authenticate the request. Make sure the value of Authorization "
        "header is formed correctly including the signature."
    )
    # adlfs sometimes hands the same refusal on inside a FileNotFoundError (seen in a
    # random-order run: a wrong key was reported as "not found").
    wrapped = FileNotFoundError(f"(HttpResponseError: {refused})")
    for error in (refused, wrapped):
        with pytest.raises(StorageError) as caught, storage_errors(URL, "FSSPEC_ABFS_SAS_TOKEN"):
            raise error
        assert "access denied: the credentials were refused" in str(caught.value), repr(error)
