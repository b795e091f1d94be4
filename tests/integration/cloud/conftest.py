"""Fixtures of the cloud tests: Azurite + fake-gcs-server for the session, a small MNIST slice."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.cloud.emulators import AZURITE, Emulators

# gcsfs reads this when imported: skip its 60 s gRPC bucket-type probe (docs/cloud.md).
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")


@pytest.fixture(scope="session")
def emulators(tmp_path_factory) -> Iterator[Emulators]:
    """Both emulators on free loopback ports, containers/buckets created; stopped by group."""
    if not AZURITE.exists():
        message = f"{AZURITE} missing: run `make install` (npm ci in tools/cloud)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    started = Emulators(tmp_path_factory.mktemp("emulators")).start(timeout_s=120)
    yield started
    started.stop()


@pytest.fixture(scope="session")
def abfs_options(emulators: Emulators) -> dict[str, str]:
    """fsspec options of the sandbox storage (Azurite's development account)."""
    return {"connection_string": emulators.azure_connection_string}


@pytest.fixture(scope="session")
def gs_options(emulators: Emulators) -> dict[str, str]:
    """fsspec options of the production storage (fake-gcs-server, anonymous)."""
    return {"endpoint_url": emulators.gcs_endpoint, "token": "anon"}


@pytest.fixture
def unique(request) -> str:
    """A prefix unique to the test (the emulators are shared by the session)."""
    import uuid

    return f"{request.node.name[:40].replace('[', '-').replace(']', '')}-{uuid.uuid4().hex[:6]}"


def upload_folder(folder: Path, url: str, options: dict) -> None:
    """Upload every file of ``folder`` to ``url`` as a user would (fsspec put)."""
    from fsspec.core import url_to_fs

    fs, root = url_to_fs(url, **options)
    for path in sorted(folder.iterdir()):
        if path.is_file():
            fs.put_file(str(path), f"{root}/{path.name}")


@pytest.fixture(autouse=True)
def quick_azure_retries(monkeypatch):
    """The Azure SDK retries a failed request for about a minute (15 s, then ×3 backoff);
    the fault tests need the error, not the wait: same retries, short backoff."""
    from azure.storage.blob._shared import policies_async

    original = policies_async.ExponentialRetry.__init__

    def _quick(self, initial_backoff=0.05, increment_base=1, retry_total=2, **kwargs):
        original(
            self,
            initial_backoff=initial_backoff,
            increment_base=increment_base,
            retry_total=retry_total,
            **kwargs,
        )

    monkeypatch.setattr(policies_async.ExponentialRetry, "__init__", _quick)


@pytest.fixture
def quick_gcs_retries(monkeypatch):
    """gcsfs retries a failed request 6 times with 1, 2, 4, 8, 16 s of backoff (~31 s): the
    same retries, without the waits, for tests of a store that is down."""
    import asyncio
    import types

    import gcsfs.retry

    async def no_wait(_seconds: float) -> None:
        await asyncio.sleep(0)

    monkeypatch.setattr(gcsfs.retry, "asyncio", types.SimpleNamespace(sleep=no_wait))
