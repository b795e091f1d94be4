"""``python -m mnist_pipeline.client IMAGE... --url URL [--json]``: which digit is in each image.

Exit status: 0 success, 1 the server could not answer (unreachable, 5xx, 4xx), 2 an
image could not be read or the arguments are wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from . import ClientError, ImageReadError, predict_digits
from .http import DEFAULT_TOKEN_ENV

DEFAULT_URL = "http://127.0.0.1:8501/v1/models/mnist_cnn:predict"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mnist_pipeline.client",
        description="Send images of handwritten digits to the model server and print the digits.",
    )
    parser.add_argument("images", nargs="+", help="PNG or JPEG files, any size or colour")
    parser.add_argument(
        "--url",
        default=os.environ.get("MNIST_SERVING_URL", DEFAULT_URL),
        help="prediction endpoint (default: $MNIST_SERVING_URL or %(default)s); for Databricks: "
        "https://<workspace>/serving-endpoints/<name>/invocations",
    )
    parser.add_argument(
        "--token-env",
        default=DEFAULT_TOKEN_ENV,
        help="environment variable holding a bearer token (default %(default)s; unset: none)",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per attempt")
    parser.add_argument("--retries", type=int, default=3, help="retries on 5xx/connection errors")
    parser.add_argument("--json", action="store_true", help="print JSON for machines")
    args = parser.parse_args(argv)
    try:
        results = predict_digits(
            args.images,
            args.url,
            token_env=args.token_env,
            timeout_s=args.timeout,
            retries=args.retries,
        )
    except ImageReadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([result.to_dict() for result in results], indent=2))
    else:
        for result in results:
            print(f"{result.source}: {result.digit} (probability {result.probability:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
