"""The project's Keras CNN on a GPU with ``KERAS_BACKEND=jax`` (no TensorFlow, no Spark).

Trains the model of ``training/model.py`` (pure Keras: loaded from its file, so neither
TensorFlow nor the project's dependencies are imported) on MNIST from an ``.npz``, with the
configuration of ``conf/base/parameters_training.yml`` (the default and the ``accurate``
preset), and the Keras "Simple MNIST convnet" recipe for comparison. After every epoch
it evaluates the test set and prints training time, images/s and test accuracy; the
time to 99 % is the training time (evaluation excluded) until the first epoch at or
above it. ``--variant`` adds configurations (JSON overrides of ``training``) to compare.

Made for the lent GPU machine (Python 3.12, JAX, no TensorFlow, no network)::

    KERAS_BACKEND=jax python benchmarks/gpu_keras_jax.py --data .gpu-carry/mnist.npz \\
        --out "$OUT" [--seeds 0,1,2] [--quick]

``--quick`` trains on 2,000 images for a smoke test on a CPU. Prints figures, asserts nothing;
every result is also written as one JSON line to ``<out>/results.jsonl``.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras
import numpy as np
import yaml
from keras_recipe import BATCH_SIZE as RECIPE_BATCH_SIZE
from keras_recipe import recipe_model

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TARGET = 0.99


def _model_module():
    """``training/model.py`` by path: pure Keras, no TensorFlow, no project dependencies.

    It imports only Keras and the NumPy-only :mod:`mnist_pipeline.image_contract`
    (``src`` goes on ``sys.path``; ``mnist_pipeline/__init__.py`` imports nothing).
    """
    sys.path.insert(0, str(PROJECT_ROOT / "src"))
    path = PROJECT_ROOT / "src/mnist_pipeline/training/model.py"
    spec = importlib.util.spec_from_file_location("mnist_training_model", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _training_params() -> dict[str, Any]:
    text = (PROJECT_ROOT / "conf/base/parameters_training.yml").read_text()
    return yaml.safe_load(text)["training"]


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def run(name: str, config: dict[str, Any] | None, data, seed: int, epochs: int) -> dict:
    """Train one configuration (``None``: the Keras recipe) for ``epochs``, evaluating each."""
    model_py = _model_module()
    x, y, tx, ty = data
    keras.utils.set_random_seed(seed)
    if config is None:
        model, batch = recipe_model(), RECIPE_BATCH_SIZE
    else:
        batch = int(config["batch_size"])
        steps = len(y) // batch
        core = model_py.build_core_model(config["model"])
        model = model_py.compile_model(
            model_py.training_model(core, config["model"]),
            config["optimizer"],
            epochs * steps,
            steps_per_epoch=steps,
            loss_spec=config.get("loss"),
        )
    steps = len(y) // batch
    rng = np.random.default_rng(seed)
    points, trained = [], 0.0
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(y))[: steps * batch]
        started = time.perf_counter()
        model.fit(x[order], y[order], batch_size=batch, epochs=1, shuffle=False, verbose=0)
        seconds = time.perf_counter() - started
        trained += seconds
        accuracy = float(model.evaluate(tx, ty, batch_size=2000, verbose=0)[1])
        points.append(
            {
                "epoch": epoch,
                "epoch_s": round(seconds, 3),
                "train_s": round(trained, 3),
                "images_per_s": round(steps * batch / seconds, 1),
                "test_accuracy": accuracy,
            }
        )
        print(
            f"  {name} seed {seed} epoch {epoch}: {seconds:6.2f} s "
            f"({steps * batch / seconds:8.0f} img/s), test {accuracy:.4f}",
            flush=True,
        )
    reached = next((p for p in points if p["test_accuracy"] >= TARGET), None)
    return {
        "name": name,
        "seed": seed,
        "epochs": epochs,
        "batch": batch,
        "points": points,
        "time_to_99_s": reached["train_s"] if reached else None,
        "epoch_to_99": reached["epoch"] if reached else None,
        "final_accuracy": points[-1]["test_accuracy"],
        # steady state: epochs after the first (the first one includes XLA compilation)
        "images_per_s": round(
            statistics.median(p["images_per_s"] for p in points[1:] or points), 1
        ),
    }


def _load(path: str, quick: bool):
    data = np.load(path)
    x = (data["x_train"].astype("float32") / 255.0)[..., None]
    tx = (data["x_test"].astype("float32") / 255.0)[..., None]
    y, ty = data["y_train"].astype("int32"), data["y_test"].astype("int32")
    if quick:
        return x[:2000], y[:2000], tx[:1000], ty[:1000]
    return x, y, tx, ty


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help=".npz with x_train, y_train, x_test, y_test")
    parser.add_argument("--out", default=".")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--recipe-epochs", type=int, default=15)
    parser.add_argument("--variant", action="append", default=[], help="NAME=JSON overrides")
    parser.add_argument("--variants-file", help="JSON object NAME -> overrides")
    parser.add_argument("--skip", default="", help="comma list of: default,accurate,recipe")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()

    import jax

    print(f"keras {keras.__version__}, backend {keras.backend.backend()}, devices {jax.devices()}")
    data = _load(args.data, args.quick)
    params = _training_params()
    seeds = [int(s) for s in args.seeds.split(",")]
    skip = set(filter(None, args.skip.split(",")))
    plan: list[tuple[str, dict[str, Any] | None, int]] = []
    if "default" not in skip:
        plan.append(("default", params, int(params["epochs"])))
    if "recipe" not in skip:
        plan.append(("keras_recipe", None, args.recipe_epochs))
    variants = [tuple(v.split("=", 1)) for v in args.variant]
    if args.variants_file:
        variants += [
            (k, json.dumps(v)) for k, v in json.loads(Path(args.variants_file).read_text()).items()
        ]
    for name, overrides in variants:
        config = _merge(params, json.loads(overrides))
        plan.append((name, config, int(config["epochs"])))
    if "accurate" not in skip and "accurate" in params.get("presets", {}):
        config = _merge(params, params["presets"]["accurate"])
        plan.append(("accurate", config, int(config["epochs"])))
    if args.quick:
        plan = [(name, config, min(epochs, 2)) for name, config, epochs in plan]

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict]] = {}
    with (out / "results.jsonl").open("a") as sink:
        for name, config, epochs in plan:
            for seed in seeds:
                result = run(name, config, data, seed, epochs)
                results.setdefault(name, []).append(result)
                sink.write(json.dumps(result) + "\n")
                sink.flush()

    print(
        f"\n{'configuration':<16} {'seed':>4} {'img/s':>9} {'epoch→99%':>9} "
        f"{'s→99%':>7} {'final':>7} {'epochs':>6}"
    )
    for name, runs in results.items():
        for r in runs:
            when = f"{r['time_to_99_s']:.1f}" if r["time_to_99_s"] else "never"
            print(
                f"{name:<16} {r['seed']:>4} {r['images_per_s']:>9.0f} "
                f"{r['epoch_to_99'] or '-':>9} {when:>7} {r['final_accuracy']:>7.4f} "
                f"{r['epochs']:>6}"
            )
    times = {
        name: [r["time_to_99_s"] for r in runs if r["time_to_99_s"]]
        for name, runs in results.items()
    }
    if times.get("default") and times.get("keras_recipe"):
        ours, theirs = statistics.median(times["default"]), statistics.median(times["keras_recipe"])
        print(
            f"median time to 99 %: default {ours:.1f} s, recipe {theirs:.1f} s, "
            f"ratio {theirs / ours:.2f}x"
        )


if __name__ == "__main__":
    main()
