"""``mnist-pipeline-databricks``: the production deploy job's steps after validation
(``update-endpoint``, ``smoke-test``; usage: docs/databricks.md). A ``python_wheel_task`` ignores
a return value, so every failure raises: ``SystemExit(1)`` when the step failed (stderr says why),
``SystemExit(2)`` for wrong arguments; success prints the step's result as one JSON line. Both
steps use ``databricks-sdk``'s ``WorkspaceClient()`` and its authentication chain.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from datetime import timedelta
from typing import Any


def _workspace_client() -> Any:
    from databricks.sdk import WorkspaceClient

    return WorkspaceClient()


def _optional_text(value: str) -> str | None:
    """The value, or None for ``none`` (any case) or an empty string: "not set"."""
    return None if value.strip().lower() in ("", "none") else value.strip()


def _optional_int(value: str) -> int | None:
    text = _optional_text(value)
    return None if text is None else int(text)


def _boolean(value: str) -> bool:
    text = value.strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def _groups(value: str) -> tuple[str, ...]:
    return tuple(g.strip() for g in value.split(",") if g.strip())


def _update_endpoint(args: argparse.Namespace) -> dict:
    from .endpoint import Access, Sizing, serve_alias

    sizing = Sizing(**{field.name: getattr(args, field.name) for field in fields(Sizing)})
    access = Access(query_groups=args.query_group, manage_groups=args.manage_group)
    return serve_alias(
        _workspace_client(),
        args.endpoint,
        args.registry_uri,
        args.model_name,
        args.alias,
        sizing=sizing,
        access=access,
        wait=timedelta(seconds=args.wait_s),
    )


def _smoke_test(args: argparse.Namespace) -> dict:
    from .smoke import load_test_digits, smoke_test

    images, labels = load_test_digits(args.data_dir, args.count)
    result = smoke_test(_workspace_client(), args.endpoint, images, labels)
    return {"endpoint": result.endpoint, "labels": result.labels, "digits": result.digits}


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="mnist-pipeline-databricks",
        description="Steps of the Databricks deploy job (see docs/databricks.md).",
    )
    commands = top.add_subparsers(dest="command", required=True)

    update = commands.add_parser(
        "update-endpoint",
        help="create or update a serving endpoint to serve the version models:/<name>@<alias> is",
    )
    update.add_argument("--endpoint", required=True, help="serving endpoint name")
    update.add_argument("--model-name", required=True, help="registered model (entity_name)")
    update.add_argument("--alias", default="production")
    update.add_argument(
        "--registry-uri", required=True, help="production registry: databricks-uc or databricks"
    )
    update.add_argument("--workload-type", default="CPU", help="CPU, GPU_SMALL, ...")
    update.add_argument(
        "--workload-size",
        type=_optional_text,
        default="Small",
        help="Small | Medium | Large, or 'none' when the concurrency bounds size it",
    )
    update.add_argument("--scale-to-zero", type=_boolean, default=True)
    update.add_argument(
        "--min-concurrency", type=_optional_int, default=None, help="provisioned, or 'none'"
    )
    update.add_argument(
        "--max-concurrency", type=_optional_int, default=None, help="provisioned, or 'none'"
    )
    update.add_argument(
        "--query-group", type=_groups, default=(), help="groups that may query (comma-separated)"
    )
    update.add_argument(
        "--manage-group", type=_groups, default=(), help="groups that may manage (comma-separated)"
    )
    update.add_argument(
        "--wait-s", type=float, default=1800.0, help="wait this long for create/update to finish"
    )
    update.set_defaults(run=_update_endpoint)

    smoke = commands.add_parser(
        "smoke-test", help="send MNIST test digits as raw 28x28 `instances`; check the answers"
    )
    smoke.add_argument("--endpoint", required=True, help="serving endpoint name")
    smoke.add_argument("--data-dir", required=True, help="folder with MNIST's t10k IDX files")
    smoke.add_argument("--count", type=int, default=5, help="test images to send, one each")
    smoke.set_defaults(run=_smoke_test)
    return top


def main(argv: list[str] | None = None) -> None:
    """Run one step. ``argv`` defaults to ``sys.argv[1:]`` (how a wheel task passes them).

    Raises:
        SystemExit: 1 when the step failed, 2 for wrong arguments (argparse).
    """
    args = parser().parse_args(argv)
    from mnist_pipeline.registry.store import RegistryError  # lazy: MLflow, after argument errors

    from .endpoint import EndpointUpdateError
    from .smoke import SmokeTestError

    try:
        result = args.run(args)
    except (EndpointUpdateError, SmokeTestError, RegistryError, OSError, ValueError) as exc:
        print(f"error: {args.command}: {exc}", file=sys.stderr)
        raise SystemExit(1) from exc
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
