"""Benchmark: the four training modes on the full MNIST, and time to 99.0 % test accuracy.

Part 1 – every mode with the same model, global batch and epochs (the default
configuration): wall time (launch included), fit time, images/s, test accuracy, and
the overhead against ``single_node``. Each mode runs in a fresh Python process;
``distributed`` and ``custom`` run two TensorFlow workers as Spark barrier tasks on
``--master`` (default ``local[2]``; any master works, e.g. ``spark://127.0.0.1:7077``).

Part 2 – time to 99.0 % test accuracy: the default configuration against the Keras
"Simple MNIST convnet" recipe (Conv32-Pool-Conv64-Pool-Dropout 0.5-Dense 10, Adam,
batch 128, 15 epochs), both trained in single fresh processes by this script on the
same data, test accuracy measured after every epoch (evaluation time not counted).

Usage (after ``kedro run --pipelines ingestion,preprocessing``)::

    MNIST_DATA_ROOT=data python benchmarks/training_modes.py [--modes single_node,local]
        [--master local[2]] [--worker-threads 1,1] [--skip-curves]

Prints the figures; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TARGET = 0.99
RESULT = "RESULT "


def _training_params() -> dict[str, Any]:
    from kedro.config import OmegaConfigLoader

    from mnist_pipeline.settings import CONFIG_LOADER_ARGS

    loader = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), **CONFIG_LOADER_ARGS, env="azure")
    return dict(loader["parameters"]["training"])


def _spark_conf(master: str) -> dict[str, Any]:
    from kedro.config import OmegaConfigLoader

    from mnist_pipeline.settings import CONFIG_LOADER_ARGS

    loader = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), **CONFIG_LOADER_ARGS, env="azure")
    return {**loader["spark"], "spark.master": master}


def _splits(data_root: Path):
    from mnist_pipeline.datasets import ImageShardsDataset

    return {
        name: ImageShardsDataset(path=str(data_root / "05_model_input" / name)).load()
        for name in ("train", "validation", "test")
    }


def _test_accuracy(model, test) -> float:
    images, labels = test.read()
    probabilities = model.predict(images * 255.0, batch_size=1000, verbose=0)  # 0–255 contract
    return float((probabilities.argmax(axis=1) == labels).mean())


def one_mode(mode: str, data_root: Path, master: str, threads: str | None) -> dict[str, Any]:
    """Train once in ``mode`` (this process) and return the figures."""
    import logging

    # The runner's per-epoch lines (from every mode's chief worker) as progress output.
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("mnist_pipeline.training").setLevel(logging.INFO)
    from mnist_pipeline.hooks import create_spark_session, spark_settings
    from mnist_pipeline.training import load_trained_model, run_training

    splits = _splits(data_root)
    config = _training_params()
    scratch = tempfile.mkdtemp(prefix="mnist-bench-")
    config.update(
        mode=mode,
        output_dir=f"{scratch}/runs",
        checkpoint={"dir": f"{scratch}/checkpoints", "keep_after_success": False},
    )
    config["distribution"] = {**config["distribution"], "num_slots": 1 if mode == "local" else 2}
    if threads and mode in ("distributed", "custom"):
        intra, inter = (int(x) for x in threads.split(","))
        config["worker_threads"] = {"intra_op": intra, "inter_op": inter}
    spark = None
    started = time.perf_counter()
    if mode != "single_node":
        spark = create_spark_session(spark_settings(_spark_conf(master)))
    result = run_training(
        train_path=splits["train"].path,
        validation_path=splits["validation"].path,
        fingerprint=f"benchmark-{mode}-{time.time()}",
        config=config,
    )
    wall = time.perf_counter() - started
    accuracy = _test_accuracy(load_trained_model(result.model_path), splits["test"])
    if spark is not None:
        spark.stop()
    return {
        "mode": mode,
        "workers": result.num_workers,
        "epochs": result.epochs,
        "batch": result.global_batch_size,
        "wall_s": wall,
        "fit_s": result.fit_time_s,
        "images_per_s": result.examples_trained / result.fit_time_s,
        "test_accuracy": accuracy,
        "val_accuracy": result.history["val_accuracy"][-1],
    }


def curve(
    which: str, data_root: Path, max_epochs: int | None, stop_at_target: bool = False
) -> dict[str, Any]:
    """Per-epoch (cumulative training seconds, test accuracy) of one configuration."""
    import keras

    from mnist_pipeline.training.model import (
        build_core_model,
        compile_model,
        learning_rate_at,
    )
    from mnist_pipeline.training.worker import _dataset

    splits = _splits(data_root)
    images, labels = splits["train"].read()
    test_images, test_labels = splits["test"].read()
    params = _training_params()
    keras.utils.set_random_seed(int(params["seed"]))
    if which == "recipe":
        layers = keras.layers
        model = keras.Sequential(
            [
                keras.Input((28, 28, 1)),
                layers.Conv2D(32, 3, activation="relu"),
                layers.MaxPooling2D(2),
                layers.Conv2D(64, 3, activation="relu"),
                layers.MaxPooling2D(2),
                layers.Flatten(),
                layers.Dropout(0.5),
                layers.Dense(10, activation="softmax"),
            ]
        )
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        epochs, batch, schedule = 15, 128, None
    else:
        model = compile_model(build_core_model(params["model"]), params["optimizer"])
        epochs, batch, schedule = int(params["epochs"]), int(params["batch_size"]), params
    epochs = min(epochs, max_epochs or epochs)
    data = _dataset(images, labels, batch, seed=int(params["seed"]))
    steps = len(labels) // batch
    points, trained = [], 0.0
    for epoch in range(epochs):
        if schedule is not None:
            rate = learning_rate_at(epoch, int(params["epochs"]), params["optimizer"])
            model.optimizer.learning_rate.assign(rate)
        started = time.perf_counter()
        model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
        trained += time.perf_counter() - started
        accuracy = float(model.evaluate(test_images, test_labels, batch_size=1000, verbose=0)[1])
        points.append({"epoch": epoch + 1, "train_s": trained, "test_accuracy": accuracy})
        print(f"  {which} epoch {epoch + 1}: {trained:.1f} s, test {accuracy:.4f}", flush=True)
        if stop_at_target and which == "recipe" and accuracy >= TARGET:
            break  # its time to the target is known; the remaining epochs cannot change it
    return {"which": which, "points": points}


def _child(args: list[str]) -> dict[str, Any]:
    """Run this script with ``args`` in a fresh process; return its RESULT line."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "SPARK_LOCAL_IP": "127.0.0.1"}
    process = subprocess.Popen(
        [sys.executable, __file__, *args],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    result, tail = None, []
    for line in process.stdout:
        if line.startswith(RESULT):
            result = json.loads(line[len(RESULT) :])
        elif "epoch" in line or "Error" in line:
            print("   ", line.rstrip()[-160:], flush=True)
        tail = [*tail[-40:], line]
    if process.wait() != 0 or result is None:
        raise RuntimeError(f"benchmark child {args} failed:\n{''.join(tail)}")
    return result


def _time_to(points: list[dict[str, Any]]) -> float | None:
    return next((p["train_s"] for p in points if p["test_accuracy"] >= TARGET), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=os.environ.get("MNIST_DATA_ROOT", "data"))
    parser.add_argument("--modes", default="single_node,local,distributed,custom")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--worker-threads", default="1,1", help="intra,inter per worker")
    parser.add_argument("--skip-curves", action="store_true")
    parser.add_argument("--skip-modes", action="store_true")
    parser.add_argument("--recipe-epochs", type=int, default=15)
    parser.add_argument(
        "--recipe-full", action="store_true", help="run all recipe epochs past the target"
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--curve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    data_root = Path(args.data_root).resolve()
    if args.one:
        print(RESULT + json.dumps(one_mode(args.one, data_root, args.master, args.worker_threads)))
        return
    if args.curve:
        stop = not args.recipe_full
        print(RESULT + json.dumps(curve(args.curve, data_root, args.recipe_epochs, stop)))
        return

    print(f"MNIST training benchmark on {os.cpu_count()} CPUs, data {data_root}")
    if not args.skip_modes:
        rows = []
        for mode in args.modes.split(","):
            print(f"- {mode} …", flush=True)
            common = ["--data-root", str(data_root), "--master", args.master]
            rows.append(_child([*common, "--one", mode, "--worker-threads", args.worker_threads]))
        base = next((r for r in rows if r["mode"] == "single_node"), rows[0])
        print(
            f"\n{'mode':<12} {'workers':>7} {'epochs':>6} {'batch':>5} {'wall s':>8} "
            f"{'fit s':>8} {'images/s':>9} {'vs single':>9} {'overhead':>9} {'test acc':>8}"
        )
        for r in rows:
            print(
                f"{r['mode']:<12} {r['workers']:>7} {r['epochs']:>6} {r['batch']:>5} "
                f"{r['wall_s']:>8.1f} {r['fit_s']:>8.1f} {r['images_per_s']:>9.0f} "
                f"{r['images_per_s'] / base['images_per_s']:>8.2f}x "
                f"{r['wall_s'] / base['wall_s'] - 1:>+8.0%} {r['test_accuracy']:>8.4f}"
            )
    if not args.skip_curves:
        print(f"\nTime to {TARGET:.1%} test accuracy (training time, evaluation excluded)")
        common = ["--data-root", str(data_root), "--recipe-epochs", str(args.recipe_epochs)]
        common += ["--recipe-full"] if args.recipe_full else []
        default = _child([*common, "--curve", "default"])
        recipe = _child([*common, "--curve", "recipe"])
        ours, theirs = _time_to(default["points"]), _time_to(recipe["points"])
        for name, run, reached in (("default", default, ours), ("keras recipe", recipe, theirs)):
            last = run["points"][-1]
            when = f"{reached:.1f} s" if reached is not None else "never"
            print(
                f"{name:<13} reached {TARGET:.1%} after {when}; final {last['test_accuracy']:.4f} "
                f"after {last['epoch']} epochs, {last['train_s']:.1f} s"
            )
        if ours and theirs:
            print(f"ratio (recipe / default): {theirs / ours:.2f}x sooner")


if __name__ == "__main__":
    main()
