"""``python -m mnist_pipeline.client IMAGE... --url URL [--url URL2] [--json]``: the digits.

Several ``--url`` (or ``$MNIST_SERVING_URLS``, comma- or space-separated) fail over in that
order; the endpoint that answered is named (stderr, or ``"endpoint"`` in ``--json``).

Exit status: 0 success, 1 the server could not answer (unreachable, 5xx, 4xx), 2 an
image could not be read or the arguments are wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

from . import ClientError, Endpoint, ImageReadError, predict_digits
from .http import DEFAULT_DEADLINE_S, DEFAULT_TOKEN_ENV, REQUEST_FORMATS, check_time_limits

DEFAULT_URL = "http://127.0.0.1:8501/v1/models/mnist_cnn:predict"


def _split(value: str) -> list[str]:
    return [item for item in re.split(r"[,\s]+", value.strip()) if item]


def default_urls() -> list[str]:
    """``$MNIST_SERVING_URLS`` (several), else ``$MNIST_SERVING_URL``, else the local server."""
    if urls := _split(os.environ.get("MNIST_SERVING_URLS", "")):
        return urls
    return [os.environ.get("MNIST_SERVING_URL") or DEFAULT_URL]


def endpoints(urls: list[str], token_envs: list[str] | None) -> list[Endpoint]:
    """Pair URLs with token variables: none given → the default for all, one → for all,
    as many as URLs → one each (``""`` or ``none``: no token for that URL).

    Raises:
        ValueError: another number of token variables than 0, 1 or one per URL.
    """
    names = (
        token_envs or _split(os.environ.get("MNIST_SERVING_TOKEN_ENVS", "")) or [DEFAULT_TOKEN_ENV]
    )
    if len(names) == 1:
        names = names * len(urls)
    if len(names) != len(urls):
        raise ValueError(
            f"{len(names)} token variables for {len(urls)} URLs: give one --token-env for "
            "all URLs or one per --url, in the same order"
        )
    return [
        Endpoint(url, None if name.lower() in ("", "none") else name)
        for url, name in zip(urls, names, strict=True)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mnist_pipeline.client",
        description="Send images of handwritten digits to the model server and print the digits.",
    )
    parser.add_argument("images", nargs="+", help="PNG or JPEG files, any size or colour")
    parser.add_argument(
        "--url",
        action="append",
        default=None,
        help="prediction endpoint; repeat it for failover, tried in order (default: "
        "$MNIST_SERVING_URLS, else $MNIST_SERVING_URL, else " + DEFAULT_URL + "); for "
        "Databricks: https://<workspace>/serving-endpoints/<name>/invocations",
    )
    parser.add_argument(
        "--token-env",
        action="append",
        default=None,
        help="environment variable holding a bearer token: once for all URLs or once per "
        f"--url, in order ('none': no token; default $MNIST_SERVING_TOKEN_ENVS, else "
        f"{DEFAULT_TOKEN_ENV})",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per attempt")
    parser.add_argument(
        "--retries", type=int, default=3, help="further rounds over all URLs after a failed one"
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=DEFAULT_DEADLINE_S,
        help="most seconds per request, all attempts together (default %(default)g)",
    )
    parser.add_argument(
        "--format",
        choices=REQUEST_FORMATS,
        default="instances",
        help="request body: instances (default) or dataframe_split (one column 'image' of "
        "784 pixels), as MLflow and Databricks Model Serving take them",
    )
    parser.add_argument("--json", action="store_true", help="print JSON for machines")
    args = parser.parse_args(argv)
    try:
        check_time_limits(args.timeout, args.deadline, args.retries)
    except ClientError as exc:  # --timeout 0 would end every attempt before it starts
        option = next(name for name in ("timeout", "deadline", "retries") if name in str(exc))
        print(f"error: --{option}: {exc}", file=sys.stderr)
        return 2
    try:
        targets = endpoints(args.url or default_urls(), args.token_env)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failures: list[str] = []
    try:
        results = predict_digits(
            args.images,
            targets,
            timeout_s=args.timeout,
            retries=args.retries,
            deadline_s=args.deadline,
            failures=failures,
            request_format=args.format,
        )
    except ImageReadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for failure in failures:
        print(f"warning: failed over: {failure}", file=sys.stderr)
    if args.json:
        print(json.dumps([result.to_dict() for result in results], indent=2))
    else:
        for result in results:
            print(f"{result.source}: {result.digit} (probability {result.probability:.3f})")
    answered = sorted({result.endpoint for result in results})
    print(f"answered by {', '.join(answered)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
