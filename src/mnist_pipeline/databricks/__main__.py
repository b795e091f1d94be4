"""``mnist-pipeline-databricks``: the production deploy job's steps after validation.

    mnist-pipeline-databricks update-endpoint --endpoint mnist-cnn --model-name mnist_cnn \
        --alias production --registry-uri databricks
    mnist-pipeline-databricks smoke-test \
        --url https://<host>/serving-endpoints/mnist-cnn/invocations \
        --data-dir /dbfs/mnist-pipeline/data/01_raw/mnist

Exit status: 0 done, 1 the step failed (the message says why), 2 wrong arguments.
"""

from __future__ import annotations

import argparse
import json
import sys

from mnist_pipeline.client import ClientError
from mnist_pipeline.client.http import DEFAULT_TOKEN_ENV


def _update_endpoint(args: argparse.Namespace) -> dict:
    from .endpoint import WorkspaceApi, update_to_alias

    return update_to_alias(
        WorkspaceApi.from_env(),
        args.endpoint,
        args.registry_uri,
        args.model_name,
        args.alias,
        wait_s=args.wait_s,
        poll_s=args.poll_s,
    )


def _smoke_test(args: argparse.Namespace) -> dict:
    from .smoke import load_test_digits, smoke_test

    images, labels = load_test_digits(args.data_dir, args.count)
    result = smoke_test(args.url, images, labels, token_env=args.token_env, timeout_s=args.timeout)
    return {"url": result.url, "labels": result.labels, "digits": result.digits}


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="mnist-pipeline-databricks",
        description="Steps of the Databricks deploy job (see docs/databricks.md).",
    )
    commands = top.add_subparsers(dest="command", required=True)

    update = commands.add_parser(
        "update-endpoint",
        help="serve the version models:/<model-name>@<alias> resolves to on a serving endpoint",
    )
    update.add_argument("--endpoint", required=True, help="serving endpoint name")
    update.add_argument("--model-name", required=True, help="registered model (entity_name)")
    update.add_argument("--alias", default="production")
    update.add_argument(
        "--registry-uri", required=True, help="production registry: databricks-uc or databricks"
    )
    update.add_argument("--wait-s", type=float, default=1200.0, help="wait for READY this long")
    update.add_argument("--poll-s", type=float, default=10.0, help="seconds between state checks")
    update.set_defaults(run=_update_endpoint)

    smoke = commands.add_parser(
        "smoke-test", help="send MNIST test digits as raw 28x28 `instances`; check the answers"
    )
    smoke.add_argument("--url", required=True, help=".../serving-endpoints/<name>/invocations")
    smoke.add_argument("--data-dir", required=True, help="folder with MNIST's t10k IDX files")
    smoke.add_argument("--count", type=int, default=5, help="test images to send, one each")
    smoke.add_argument(
        "--token-env",
        default=DEFAULT_TOKEN_ENV,
        help="environment variable holding the bearer token (default %(default)s)",
    )
    smoke.add_argument("--timeout", type=float, default=30.0, help="seconds per attempt")
    smoke.set_defaults(run=_smoke_test)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from .endpoint import EndpointUpdateError
    from .smoke import SmokeTestError

    try:
        result = args.run(args)
    except (EndpointUpdateError, SmokeTestError, ClientError, OSError, ValueError) as exc:
        print(f"error: {args.command}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
