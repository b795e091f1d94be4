"""``python -m mnist_pipeline.serving --model-uri models:/mnist_cnn@production ...``.

The model server on its own (``kedro serve`` reads these values from the project's
configuration and calls the same :func:`~mnist_pipeline.serving.server.run_server`).
A bearer token comes from ``$MNIST_SERVER_TOKEN`` (``--token-env`` names another
variable), never from the command line.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
from typing import Any

from pydantic import BaseModel

from mnist_pipeline.errors import expected_failure
from mnist_pipeline.parameters import check
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


def _options(model: type[BaseModel], prefix: str = "") -> dict[str, tuple[str, Any]]:
    """``--option`` → (field, default) for each field of ``model`` but host and port; a nested
    model's fields are ``--<name>-<field>`` (``--inference-log-path``), as
    :meth:`~.server.ServerSettings.cli_args` writes them."""
    options = {}
    for name, field in model.model_fields.items():
        if isinstance(field.default, BaseModel):
            options |= _options(type(field.default), f"{prefix}{name}.")
        elif name not in ("host", "port", "storage_options"):
            option = f"--{prefix}{name}".replace("_", "-").replace(".", "-")
            options[option] = (f"{prefix}{name}", field.default)
    return options


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mnist_pipeline.serving",
        description="Serve a registered MNIST Keras model over TensorFlow Serving's REST API.",
    )
    parser.add_argument("--model-uri", required=True, help="e.g. models:/mnist_cnn@production")
    parser.add_argument("--registry-uri", default=None, help="MLflow registry (and tracking) URI")
    parser.add_argument("--host", default=LOOPBACK, help="interface to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=_port, default=ServerSettings().port, help="0: any free port"
    )
    options = _options(ServerSettings)
    for option, (name, default) in options.items():
        if isinstance(default, bool):
            parser.add_argument(option, dest=name, action="store_true")
        else:
            parser.add_argument(option, dest=name, type=type(default), default=default)
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
    values: dict[str, Any] = {"host": args.host, "port": args.port}
    for name, _ in options.values():
        group, _, key = name.rpartition(".")
        (values.setdefault(group, {}) if group else values)[key] = getattr(args, name)
    try:
        run_server(
            args.model_uri,
            args.registry_uri,
            check(ServerSettings, values, "serving"),
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
