"""The four training modes (``single_node``, ``local``, ``distributed``, ``custom``) around
spark-tensorflow-distributor's ``MirroredStrategyRunner`` (what runs where: docs/training.md).
Before anything launches, :func:`check_launch` refuses what would otherwise hang or fail late
(too few task slots for a barrier job, which Spark would retry forever; ``use_gpu`` without a GPU
resource; CPU local mode with ``num_slots`` ≠ 1); a barrier job past ``timeout_s`` is cancelled.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, fields
from typing import Any

from mnist_pipeline import storage

from .checkpoint import load_model, remove_checkpoints
from .progress import ProgressListener
from .threads import WorkerThreads
from .worker import train

logger = logging.getLogger(__name__)

MODES = ("single_node", "local", "distributed", "custom")
SPARK_MODES = ("local", "distributed", "custom")
BARRIER_MODES = ("distributed", "custom")


class TrainingLaunchError(RuntimeError):
    """A training run that cannot start as configured (said before launching)."""


class TrainingTimeoutError(TimeoutError):
    """A barrier training job that ran past ``training.distribution.timeout_s``."""


@dataclass(frozen=True)
class TrainingResult:
    """What the chief returned, plus what the driver measured."""

    model_path: str
    history: dict[str, list[float]]
    num_workers: int
    initial_epoch: int
    epochs: int
    fit_time_s: float
    wall_time_s: float
    examples_trained: int
    global_batch_size: int
    run_key: str
    checkpoint_dir: str


def resolve_preset(config: Mapping[str, Any]) -> dict[str, Any]:
    """``training`` with ``presets[<preset>]`` merged over it (``default``: unchanged).

    Raises:
        TrainingLaunchError: an unknown ``training.preset``, with the known ones.
    """
    name = config.get("preset") or "default"
    presets = config.get("presets") or {}
    if name == "default":
        return dict(config)
    if name not in presets:
        raise TrainingLaunchError(
            f"training.preset must be 'default' or one of {sorted(presets)}, got {name!r}"
        )
    return _merge(config, presets[name])


def _merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def run_key(config: Mapping[str, Any], fingerprint: str) -> str:
    """A short id of what is trained on what: the checkpoint folder's name.

    The same model, optimizer, loss, epochs, batch size and seed on the same model input
    resume each other's checkpoints; anything else starts afresh.
    """
    keys = ("model", "optimizer", "loss", "epochs", "batch_size", "seed")
    payload = json.dumps(
        {"config": {key: config.get(key) for key in keys}, "input": fingerprint},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _active_spark():
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    spark = SparkSession.getActiveSession()  # thread-local: None in a runner's thread
    if spark is None and SparkContext._active_spark_context is not None:
        spark = SparkSession.builder.getOrCreate()  # the running context's session
    if spark is None:
        raise TrainingLaunchError(
            "training modes local, distributed and custom need a Spark session and none is "
            "active: run through `kedro run` (the project's Spark hook starts one from "
            "conf/<env>/spark.yml) or create one before calling the runner"
        )
    return spark


def _task_cpus(spark) -> int | None:
    """``spark.task.cpus`` if the Spark configuration sets it (each worker's core share)."""
    conf = spark.sparkContext.getConf()
    return int(conf.get("spark.task.cpus")) if conf.contains("spark.task.cpus") else None


def available_slots(spark) -> int:
    """How many tasks the cluster can run at once now (what Spark's barrier check uses)."""
    jsc = spark.sparkContext._jsc.sc()
    profile = jsc.resourceProfileManager().defaultResourceProfile()
    return int(jsc.maxNumConcurrentTasks(profile))


def check_launch(
    mode: str,
    distribution: Mapping[str, Any],
    *,
    spark_conf: Mapping[str, str],
    driver_resources: Collection[str] = (),
    slots: int,
) -> None:
    """Refuse, with a clear message, a launch that would hang or fail late.

    Plain values in, so that a cluster can be checked from its specification alone (the
    Asset Bundle's job clusters are, in tests/databricks) as well as from a running session
    (:func:`check_session_launch`).

    Args:
        mode: ``training.mode``.
        distribution: ``training.distribution`` (num_slots, use_gpu, gpu_resource_name,
            slot_wait_s).
        spark_conf: the Spark configuration (``spark.task.resource.gpu.amount``, master).
        driver_resources: the driver's resource names (``gpu`` when it has GPUs).
        slots: how many tasks the cluster can run at once.

    Raises:
        TrainingLaunchError: unknown mode; ``num_slots`` < 1; CPU local mode with
            ``num_slots`` ≠ 1; ``use_gpu`` without the GPU resource configured;
            fewer task slots than ``num_slots`` in a barrier mode.
    """
    if mode not in MODES:
        raise TrainingLaunchError(f"training.mode must be one of {MODES}, got {mode!r}")
    num_slots = int(distribution["num_slots"])
    use_gpu = bool(distribution.get("use_gpu", False))
    gpu = str(distribution.get("gpu_resource_name", "gpu"))
    if num_slots < 1:
        raise TrainingLaunchError(f"training.distribution.num_slots must be ≥ 1, got {num_slots}")
    if mode == "local" and not use_gpu and num_slots != 1:
        raise TrainingLaunchError(
            f"training.distribution.num_slots is {num_slots} in local mode on CPU: local mode "
            "trains in the driver process, so it takes exactly 1 slot (set num_slots: 1, or use "
            "mode: distributed to train on several executors)"
        )
    if use_gpu:
        key = f"spark.task.resource.{gpu}.amount"
        if mode == "local" and gpu not in driver_resources:
            raise TrainingLaunchError(
                f"training.distribution.use_gpu is true but the driver has no '{gpu}' resource: "
                f"set spark.driver.resource.{gpu}.amount and its discoveryScript in spark.yml "
                "(or use_gpu: false)"
            )
        if mode in BARRIER_MODES and key not in spark_conf:
            raise TrainingLaunchError(
                f"training.distribution.use_gpu is true but `{key}` is not in the Spark "
                f"configuration: configure GPU scheduling (spark.executor.resource.{gpu}.amount, "
                f"{key}, discovery script) in spark.yml, or set use_gpu: false"
            )
    if mode in BARRIER_MODES and slots < num_slots:
        master = spark_conf.get("spark.master", "?")
        wait_s = float(distribution.get("slot_wait_s", 30))
        raise TrainingLaunchError(
            f"training.distribution.num_slots is {num_slots} but the Spark cluster "
            f"({master}) can run only {slots} task(s) at once after waiting {wait_s:g} s: "
            "a barrier job would wait forever. Lower num_slots or add executor cores"
        )


def check_session_launch(spark, mode: str, distribution: Mapping[str, Any]) -> None:
    """:func:`check_launch` against a running session: its configuration, its driver's
    resources and its free task slots (a barrier mode waits up to ``slot_wait_s`` for the
    executors of a fresh application to register; the settings are checked first).

    Raises:
        TrainingLaunchError: as :func:`check_launch`.
    """
    sc = spark.sparkContext
    facts = {"spark_conf": dict(sc.getConf().getAll()), "driver_resources": set(sc.resources)}
    wanted = int(distribution["num_slots"]) if mode in BARRIER_MODES else 0
    check_launch(mode, distribution, **facts, slots=wanted)  # the settings, before any wait
    if not wanted:
        return
    deadline = time.monotonic() + float(distribution.get("slot_wait_s", 30))
    slots = available_slots(spark)
    while slots < wanted and time.monotonic() < deadline:
        time.sleep(0.5)  # executors of a fresh standalone application are registering
        slots = available_slots(spark)
    check_launch(mode, distribution, **facts, slots=slots)


def _run_barrier(spark, runner, timeout_s: float, **kwargs: Any) -> dict[str, Any]:
    """``runner.run`` in a thread, in its own job group, cancelled after ``timeout_s``."""
    sc = spark.sparkContext
    group = f"mnist-training-{uuid.uuid4().hex[:8]}"
    outcome: dict[str, Any] = {}

    def _target() -> None:
        sc.setJobGroup(group, "mnist-pipeline distributed training", interruptOnCancel=True)
        try:
            outcome["result"] = runner.run(train, **kwargs)
        except BaseException as exc:  # re-raised in the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=_target, name=group, daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        sc.cancelJobGroup(group)
        thread.join(60)
        raise TrainingTimeoutError(
            f"the barrier training job ran longer than training.distribution.timeout_s = "
            f"{timeout_s:g} s and was cancelled; its checkpoint is kept, so a re-run resumes"
        )
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _run_with_restarts(
    spark, runner, distribution: Mapping[str, Any], checkpoint_dir: str, kwargs: dict[str, Any]
) -> dict[str, Any]:
    """The barrier job, re-launched up to ``max_restarts`` times if it fails.

    Spark does not retry a failed barrier *result* stage ("Could not recover from a
    failed barrier ResultStage"): one killed worker fails the job. A re-launch resumes
    from the chief's last checkpoint. Timeouts are not retried.
    """
    from py4j.protocol import Py4JJavaError

    timeout_s = float(distribution.get("timeout_s", 3600))
    attempts = 1 + max(int(distribution.get("max_restarts", 1)), 0)
    for attempt in range(1, attempts + 1):
        try:
            return _run_barrier(spark, runner, timeout_s, **kwargs)
        except Py4JJavaError as exc:
            if attempt == attempts:
                raise
            reason = str(exc.java_exception).splitlines()[0][:300]
            logger.warning(
                "the barrier training job failed (%s); re-launching it (attempt %d of %d), "
                "resuming from %s",
                reason,
                attempt + 1,
                attempts,
                checkpoint_dir,
            )
    raise AssertionError("unreachable")


def run_training(
    *,
    train_path: str,
    validation_path: str,
    fingerprint: str,
    config: Mapping[str, Any],
    storage_options: Mapping[str, Any] | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> TrainingResult:
    """Train in ``config['mode']`` and return the chief's result.

    ``config`` is the ``training`` parameters: ``mode``, ``distribution``
    (num_slots, use_gpu, gpu_resource_name, communication, timeout_s, slot_wait_s,
    max_restarts),
    ``output_dir``, ``checkpoint`` (dir, keep_after_success), ``preset`` (with
    ``presets``, see :func:`resolve_preset`) and what :func:`.worker.train` reads.
    ``on_event`` is called in the driver with each progress event from the chief
    (one per epoch, as it arrives; e.g. live MLflow metrics).

    The shard folders, ``checkpoint.dir`` and ``output_dir`` may be local paths or
    object-storage URLs (``abfs://``, ``gs://``); ``storage_options`` (with fsspec's
    configuration for their protocol, see :func:`mnist_pipeline.storage.resolve_options`)
    is passed to every training process as an argument.
    """
    config = resolve_preset(config)
    mode = config["mode"]
    distribution = dict(config.get("distribution", {}))
    if mode not in MODES:
        raise TrainingLaunchError(f"training.mode must be one of {MODES}, got {mode!r}")
    key = run_key(config, fingerprint)
    checkpoint_dir = storage.join(storage.absolute(config["checkpoint"]["dir"]), key)
    output_dir = storage.join(storage.absolute(config["output_dir"]), key)
    options = storage.resolve_options(train_path, storage_options)
    spark = None
    host = "127.0.0.1"
    task_cpus = None
    if mode in SPARK_MODES:
        spark = _active_spark()
        check_session_launch(spark, mode, distribution)
        host = spark.sparkContext.getConf().get("spark.driver.host", host)
        task_cpus = _task_cpus(spark)

    started = time.perf_counter()
    logger.info("training: mode %s, run %s, checkpoints in %s", mode, key, checkpoint_dir)
    with ProgressListener(host, on_event=on_event) as progress:
        kwargs = {
            "train_path": train_path,
            "validation_path": validation_path,
            "config": dict(config),
            "output_dir": output_dir,
            "checkpoint_dir": checkpoint_dir,
            "progress_address": progress.address,
            "threads": WorkerThreads.from_config(config.get("worker_threads"), task_cpus),
            "storage_options": options,
        }
        if mode == "single_node":
            result = train(**kwargs, strategy="default")
        else:
            from spark_tensorflow_distributor import MirroredStrategyRunner

            custom = mode == "custom"
            runner = MirroredStrategyRunner(
                num_slots=int(distribution["num_slots"]),
                local_mode=mode == "local",
                use_gpu=bool(distribution.get("use_gpu", False)),
                gpu_resource_name=str(distribution.get("gpu_resource_name", "gpu")),
                use_custom_strategy=custom,
            )
            kwargs["strategy"] = "custom" if custom else "runner"
            kwargs["communication"] = str(distribution.get("communication", "auto"))
            if mode == "local":
                result = runner.run(train, **kwargs)
            else:
                result = _run_with_restarts(spark, runner, distribution, checkpoint_dir, kwargs)
    wall_time = time.perf_counter() - started
    if not config["checkpoint"].get("keep_after_success", False):
        remove_checkpoints(checkpoint_dir, options)
    measured = {"wall_time_s": wall_time, "run_key": key, "checkpoint_dir": checkpoint_dir}
    chief = {f.name: result[f.name] for f in fields(TrainingResult) if f.name not in measured}
    return TrainingResult(**chief, **measured)


def load_trained_model(path: str, storage_options: Mapping[str, Any] | None = None):
    """Load the model the chief saved (driver side; downloaded first from object storage)."""
    return load_model(path, storage.resolve_options(path, storage_options))
