"""``python -m mnist_pipeline.serving --model-uri models:/mnist_cnn@production ...``.

The model server on its own (``kedro serve`` reads these values from the project's
configuration and calls the same :func:`~mnist_pipeline.serving.server.run_server`).
A bearer token comes from ``$MNIST_SERVER_TOKEN`` (``--token-env`` names another
variable), never from the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shutil
import signal
import sys

from mnist_pipeline.errors import expected_failure
from mnist_pipeline.processes import watch_parent

from .guards import SERVER_TOKEN_ENV
from .server import LOOPBACK, ServerSettings, ServerStartError, run_server

logger = logging.getLogger("mnist_pipeline.serving")


def _orphaned(cleanup_dir: str | None) -> None:
    """The process that started this server died: remove its folder, stop gracefully."""
    logger.warning("the process that started this server is gone: stopping")
    if cleanup_dir:
        shutil.rmtree(cleanup_dir, ignore_errors=True)
    os.kill(os.getpid(), signal.SIGTERM)  # uvicorn shuts down; before it runs, the default ends it


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"expected a TCP port 0-65535 (0: any free one), found {text!r}"
        )
    return port


def main(argv: list[str] | None = None) -> int:
    defaults = ServerSettings()
    parser = argparse.ArgumentParser(
        prog="python -m mnist_pipeline.serving",
        description="Serve a registered MNIST Keras model over TensorFlow Serving's REST API.",
    )
    parser.add_argument("--model-uri", required=True, help="e.g. models:/mnist_cnn@production")
    parser.add_argument("--registry-uri", default=None, help="MLflow registry (and tracking) URI")
    parser.add_argument("--host", default=LOOPBACK, help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=defaults.port, help="0: any free port")
    for setting in dataclasses.fields(ServerSettings):
        if setting.name in ("host", "port"):
            continue
        option, default = f"--{setting.name.replace('_', '-')}", getattr(defaults, setting.name)
        if isinstance(default, bool):
            parser.add_argument(option, action="store_true")
        else:
            parser.add_argument(option, type=type(default), default=default)
    parser.add_argument(
        "--token-env",
        default=SERVER_TOKEN_ENV,
        help="environment variable holding the bearer token clients must send "
        "(default %(default)s; unset: no token, loopback only unless --allow-unauthenticated)",
    )
    parser.add_argument("--ready-file", default=None, help="write {url, pid, model} when serving")
    parser.add_argument("--parent-fd", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--orphan-cleanup", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.parent_fd is not None:  # started by ServerProcess: stop when it dies
        watch_parent(args.parent_fd, lambda: _orphaned(args.orphan_cleanup))
    settings = ServerSettings(
        **{
            setting.name: getattr(args, setting.name)
            for setting in dataclasses.fields(ServerSettings)
        }
    )
    try:
        run_server(
            args.model_uri,
            args.registry_uri,
            settings,
            ready_file=args.ready_file,
            token_env=args.token_env,
        )
    except Exception as exc:
        failure = expected_failure(exc)
        if failure is None and not isinstance(exc, ServerStartError | RuntimeError):
            raise  # unexpected: the full traceback
        print(f"error: {exc}", file=sys.stderr)
        if failure is not None:
            print(f"fix: {failure.fix}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
