"""Benchmark: the four training modes on the full MNIST, and time to 99.0 % test accuracy.

Part 1 – every mode with the same model, global batch and epochs (the default
configuration, ``worker_threads: auto``): wall time (launch included), fit time,
images/s, test accuracy, and the ratio to ``single_node``. Each mode runs in a fresh
Python process; ``distributed`` and ``custom`` run two TensorFlow workers as Spark
barrier tasks on ``--master`` (default ``local[2]``).

Part 2 – time to 99.0 % test accuracy over ``--seeds`` (default 0,1,2): the default
configuration against the Keras "Simple MNIST convnet" recipe (Conv32-Pool-Conv64-Pool-
Dropout 0.5-Dense 10, Adam, batch 128, 15 epochs) and the ``previous`` default (the one
before issue 27: Conv32-Pool-Conv64-Pool-Dense256, one warm-up + cosine over 3 epochs of
batch 128), each seed in a fresh process, the three interleaved seed by seed so that a
change of the machine's load touches all three alike. Test accuracy is measured after every
epoch (evaluation time not counted); every epoch's time and accuracy is printed, then
per seed the accuracy after epoch 1 and at the end, the medians of the time to 99 % and
their ratio (the recipe's over the default's), the default's median epoch time against the
previous default's (the epoch cost of the change) and each configuration's training
images/s.

Part 3 – the ``accurate`` preset (``--accurate``): its test accuracy per epoch against
the time the recipe took for its 15 epochs (run with ``--recipe-full``).

The load average is printed at the start, after every epoch and at the end: on a shared
machine the figures are only as good as the quiet they were measured in.

Usage (after ``kedro run --pipelines ingestion,preprocessing``)::

    MNIST_DATA_ROOT=data python benchmarks/training_modes.py [--modes single_node,local]
        [--master local[2]] [--worker-threads auto] [--repeats N] [--seeds 0,1,2] [--epochs N]
        [--skip-modes] [--skip-curves] [--curves default,recipe,previous] [--accurate]
        [--recipe-full]

Prints the figures; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TARGET = 0.99
RESULT = "RESULT "
#: The default before issue 27, merged over today's parameters: the baseline of the
#: epoch-cost figure ("each epoch no more than 20 % slower than today's").
PREVIOUS_DEFAULT: dict[str, Any] = {
    "model": {
        "conv_blocks": [{"filters": 32, "kernel_size": 3}, {"filters": 64, "kernel_size": 3}],
        "batch_norm": False,
        "dense_units": 256,
        "dropout": 0.4,
        "augment": {"max_shift": 0},
    },
    "optimizer": {
        "name": "adam",
        "learning_rate": 0.005,
        "schedule": "cosine",
        "warmup_fraction": 0.1,
        "final_learning_rate": 0.0,
        "cycle_epochs": 0,
    },
    "loss": {"label_smoothing": 0.0},
    "batch_size": 128,
    "epochs": 3,
}


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


def _read(split) -> tuple:
    """All images and labels of a split (one reader of one)."""
    from mnist_pipeline.datasets import read_image_shards

    return read_image_shards(split.path, 0, 1, split.storage_options)


def _test_accuracy(model, test) -> float:
    images, labels = _read(test)
    probabilities = model.predict(images * 255.0, batch_size=1000, verbose=0)  # 0–255 contract
    return float((probabilities.argmax(axis=1) == labels).mean())


def one_mode(
    mode: str, data_root: Path, master: str, threads: str | None, epochs: int | None = None
) -> dict[str, Any]:
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
    if threads and threads != "auto":
        intra, inter = (int(x) for x in threads.split(","))
        config["worker_threads"] = {"intra_op": intra, "inter_op": inter}
    if epochs:
        config["epochs"] = epochs
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
    which: str, data_root: Path, seed: int, max_epochs: int | None, stop_at_target: bool = False
) -> dict[str, Any]:
    """Per-epoch (cumulative training seconds, test accuracy) of one configuration and seed.

    ``which``: ``default``, ``accurate`` (the preset), ``previous`` (:data:`PREVIOUS_DEFAULT`)
    or ``recipe``.
    """
    import keras

    from mnist_pipeline.training.model import build_core_model, compile_model, training_model
    from mnist_pipeline.training.runner import resolve_preset
    from mnist_pipeline.training.worker import input_batches

    splits = _splits(data_root)
    images, labels = _read(splits["train"])
    test_images, test_labels = _read(splits["test"])
    params = _training_params()
    keras.utils.set_random_seed(seed)
    if which == "recipe":
        from keras_recipe import BATCH_SIZE, EPOCHS, recipe_model

        model = recipe_model()
        epochs, batch = EPOCHS, BATCH_SIZE
    else:
        if which == "previous":
            params = {**params, "presets": {"previous": PREVIOUS_DEFAULT}}
        config = resolve_preset({**params, "preset": which})
        epochs, batch = int(config["epochs"]), int(config["batch_size"])
        core = build_core_model(config["model"])
        steps = len(labels) // batch
        model = compile_model(
            training_model(core, config["model"]),
            config["optimizer"],
            epochs * steps,
            steps_per_epoch=steps,
            loss_spec=config.get("loss"),
        )
    epochs = min(epochs, max_epochs or epochs)
    data = input_batches(images, labels, batch, seed=seed)
    steps = len(labels) // batch
    points, trained, trained_cpu = [], 0.0, 0.0
    for epoch in range(epochs):
        started, started_cpu = time.perf_counter(), time.process_time()
        model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
        seconds = time.perf_counter() - started
        # The process's CPU time (all its threads): the work done, whatever the machine's
        # load or a stall of the host did to the wall time.
        cpu_seconds = time.process_time() - started_cpu
        trained += seconds
        trained_cpu += cpu_seconds
        accuracy = float(model.evaluate(test_images, test_labels, batch_size=1000, verbose=0)[1])
        points.append(
            {
                "epoch": epoch + 1,
                "epoch_s": seconds,
                "images_per_s": steps * batch / seconds,
                "train_s": trained,
                "epoch_cpu_s": cpu_seconds,
                "train_cpu_s": trained_cpu,
                "test_accuracy": accuracy,
            }
        )
        print(
            f"  {which} seed {seed} epoch {epoch + 1}: {seconds:.1f} s (total {trained:.1f} s), "
            f"CPU {cpu_seconds:.1f} s (total {trained_cpu:.1f} s), "
            f"{steps * batch / seconds:,.0f} images/s, test {accuracy:.4f}, "
            f"load {_load()}",
            flush=True,
        )
        if stop_at_target and which == "recipe" and accuracy >= TARGET:
            break  # its time to the target is known; the remaining epochs cannot change it
    return {"which": which, "seed": seed, "points": points}


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


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


def _time_to(points: list[dict[str, Any]], key: str = "train_s") -> float | None:
    return next((p[key] for p in points if p["test_accuracy"] >= TARGET), None)


def _median_epoch(results: list[dict[str, Any]], key: str) -> float:
    return statistics.median(p[key] for r in results for p in r["points"])


def _summarise_curves(runs: dict[str, list[dict[str, Any]]]) -> None:
    """Per seed: epoch 1, when 99 % was reached, the end; then the medians and ratios."""
    medians, cpu_medians = {}, {}
    for name, results in runs.items():
        reached = [_time_to(r["points"]) for r in results]
        reached_cpu = [_time_to(r["points"], "train_cpu_s") for r in results]
        for r, when in zip(results, reached, strict=True):
            first, last = r["points"][0], r["points"][-1]
            epoch = next((p["epoch"] for p in r["points"] if p["test_accuracy"] >= TARGET), None)
            print(
                f"{name:<9} seed {r['seed']}: epoch 1 {first['test_accuracy']:.4f}; reached "
                f"{TARGET:.1%} "
                + (f"at epoch {epoch} after {when:.1f} s" if when else "never")
                + f"; final {last['test_accuracy']:.4f} after {last['epoch']} epochs, "
                f"{last['train_s']:.1f} s"
            )
        times = [t for t in reached if t is not None]
        medians[name] = statistics.median(times) if len(times) == len(results) else None
        cpu_times = [t for t in reached_cpu if t is not None]
        complete = len(cpu_times) == len(results)
        cpu_medians[name] = statistics.median(cpu_times) if complete else None
    for label, figures in (("", medians), ("CPU ", cpu_medians)):
        for name in ("default", "previous", "accurate"):
            ours, theirs = figures.get(name), figures.get("recipe")
            if ours and theirs:
                print(
                    f"median {label}time to {TARGET:.1%}: {name} {ours:.1f} s, recipe "
                    f"{theirs:.1f} s, ratio of the medians {theirs / ours:.2f}x"
                )
    if "default" in runs and "previous" in runs:
        for key, label in (("epoch_s", "time"), ("epoch_cpu_s", "CPU time")):
            ours, before = _median_epoch(runs["default"], key), _median_epoch(runs["previous"], key)
            print(
                f"median epoch {label}: default {ours:.1f} s, previous default {before:.1f} s, "
                f"{ours / before:.2f}x ({ours / before - 1:+.0%})"
            )
    for name, results in runs.items():
        print(
            f"training images/s, {name}: median {_median_epoch(results, 'images_per_s'):,.0f} "
            "over its epochs"
        )


def _run_modes(args: argparse.Namespace, data_root: Path) -> None:
    """The mode table; with ``--repeats N``, N rounds of all modes, interleaved round by
    round, and each mode's ratio to the ``single_node`` run of the same round (paired, so
    that a change of the machine's load touches both sides of a ratio alike)."""
    modes = args.modes.split(",")
    common = ["--data-root", str(data_root), "--master", args.master]
    common += ["--epochs", str(args.epochs)] if args.epochs else []
    rounds: list[list[dict[str, Any]]] = []
    for round_index in range(args.repeats):
        rows = []
        for mode in modes:
            label = f" (round {round_index + 1} of {args.repeats})" if args.repeats > 1 else ""
            print(f"- {mode}{label} …", flush=True)
            load_before = _load()
            row = _child([*common, "--one", mode, "--worker-threads", args.worker_threads])
            rows.append({**row, "load": f"{load_before} → {_load()}"})
        rounds.append(rows)
    print(
        f"\n{'round':>5} {'mode':<12} {'workers':>7} {'epochs':>6} {'batch':>5} {'wall s':>8} "
        f"{'fit s':>8} {'images/s':>9} {'vs single':>9} {'overhead':>9} {'test acc':>8}  load"
    )
    ratios: dict[str, list[float]] = {mode: [] for mode in modes}
    for round_index, rows in enumerate(rounds, start=1):
        base = next((r for r in rows if r["mode"] == "single_node"), rows[0])
        for r in rows:
            ratio = r["images_per_s"] / base["images_per_s"]
            ratios[r["mode"]].append(ratio)
            print(
                f"{round_index:>5} {r['mode']:<12} {r['workers']:>7} {r['epochs']:>6} "
                f"{r['batch']:>5} {r['wall_s']:>8.1f} {r['fit_s']:>8.1f} "
                f"{r['images_per_s']:>9.0f} {ratio:>8.2f}x "
                f"{r['wall_s'] / base['wall_s'] - 1:>+8.0%} {r['test_accuracy']:>8.4f}  {r['load']}"
            )
    if args.repeats > 1:
        for mode in modes:
            speeds = [r["images_per_s"] for rows in rounds for r in rows if r["mode"] == mode]
            line = f"{mode}: median {statistics.median(speeds):,.0f} images/s"
            if mode != "single_node" and any(r["mode"] == "single_node" for r in rounds[0]):
                paired = ratios[mode]
                line += (
                    "; vs single_node, paired by round: "
                    + ", ".join(f"{x:.2f}x" for x in paired)
                    + f"; median {statistics.median(paired):.2f}x "
                    f"(range {min(paired):.2f}-{max(paired):.2f}x)"
                )
            print(line)
    print(f"load average after the modes: {_load()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=os.environ.get("MNIST_DATA_ROOT", "data"))
    parser.add_argument("--modes", default="single_node,local,distributed,custom")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--worker-threads", default="auto", help="auto, or intra,inter")
    parser.add_argument("--epochs", type=int, help="epochs of the mode runs (default: config)")
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="rounds of the modes, interleaved; prints the median of the paired ratios",
    )
    parser.add_argument("--seeds", default="0,1,2", help="seeds of the time-to-99 %% curves")
    parser.add_argument("--skip-curves", action="store_true")
    parser.add_argument("--skip-modes", action="store_true")
    parser.add_argument("--accurate", action="store_true", help="also the accurate preset")
    parser.add_argument(
        "--curves",
        default="default,recipe,previous",
        help="which curves (default, recipe, previous, accurate)",
    )
    parser.add_argument("--recipe-epochs", type=int, default=15)
    parser.add_argument(
        "--recipe-full", action="store_true", help="run all recipe epochs past the target"
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--curve", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    data_root = Path(args.data_root).resolve()
    if args.one:
        result = one_mode(args.one, data_root, args.master, args.worker_threads, args.epochs)
        print(RESULT + json.dumps(result))
        return
    if args.curve:
        stop = not args.recipe_full
        result = curve(args.curve, data_root, args.seed, args.recipe_epochs, stop)
        print(RESULT + json.dumps(result))
        return

    print(f"MNIST training benchmark on {os.cpu_count()} CPUs, data {data_root}")
    print(f"load average at start: {_load()}")
    if not args.skip_modes:
        _run_modes(args, data_root)
    if not args.skip_curves:
        print(f"\nTime to {TARGET:.1%} test accuracy (training time, evaluation excluded)")
        common = ["--data-root", str(data_root), "--recipe-epochs", str(args.recipe_epochs)]
        common += ["--recipe-full"] if args.recipe_full else []
        which = args.curves.split(",") + (["accurate"] if args.accurate else [])
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in which}
        for seed in (int(s) for s in args.seeds.split(",")):
            for name in which:
                runs[name].append(_child([*common, "--curve", name, "--seed", str(seed)]))
        _summarise_curves(runs)
    print(f"load average at end: {_load()}")


if __name__ == "__main__":
    main()
