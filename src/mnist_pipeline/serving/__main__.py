"""``python -m mnist_pipeline.serving --model-uri models:/mnist_cnn@production ...``.

The model server on its own (``kedro serve`` reads these values from the project's
configuration and calls the same :func:`~mnist_pipeline.serving.server.run_server`).
"""

from __future__ import annotations

import argparse
import logging
import sys

from .server import LOOPBACK, ServerSettings, ServerStartError, run_server


def main(argv: list[str] | None = None) -> int:
    defaults = ServerSettings()
    parser = argparse.ArgumentParser(
        prog="python -m mnist_pipeline.serving",
        description="Serve a registered MNIST Keras model over TensorFlow Serving's REST API.",
    )
    parser.add_argument("--model-uri", required=True, help="e.g. models:/mnist_cnn@production")
    parser.add_argument("--registry-uri", default=None, help="MLflow registry (and tracking) URI")
    parser.add_argument("--host", default=LOOPBACK, help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=defaults.port, help="0: any free port")
    parser.add_argument("--max-request-bytes", type=int, default=defaults.max_request_bytes)
    parser.add_argument("--max-batch-size", type=int, default=defaults.max_batch_size)
    parser.add_argument("--max-batch-images", type=int, default=defaults.max_batch_images)
    parser.add_argument("--intra-op-threads", type=int, default=defaults.intra_op_threads)
    parser.add_argument("--inter-op-threads", type=int, default=defaults.inter_op_threads)
    parser.add_argument("--ready-file", default=None, help="write {url, pid, model} when serving")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = ServerSettings(
        host=args.host,
        port=args.port,
        max_request_bytes=args.max_request_bytes,
        max_batch_size=args.max_batch_size,
        max_batch_images=args.max_batch_images,
        intra_op_threads=args.intra_op_threads,
        inter_op_threads=args.inter_op_threads,
    )
    try:
        run_server(args.model_uri, args.registry_uri, settings, ready_file=args.ready_file)
    except (ServerStartError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
