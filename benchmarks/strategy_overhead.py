"""Benchmark: what a ``tf.distribute`` strategy alone costs per training step on this machine.

The same Keras CNN (the Keras recipe's shape, batch 128) fit for a fixed number of steps on
random data through the project's input pipeline (``worker.input_batches``), each variant in
a fresh process (TensorFlow's threads and devices are set once per process):

* ``none``: no strategy (the project's ``single_node`` mode);
* ``mirrored``: a ``MirroredStrategy`` on the one CPU device;
* ``multi_worker``: a one-worker ``MultiWorkerMirroredStrategy`` (the runner's strategy in
  ``local`` mode, without Spark);
* ``*_host``: the same strategies with the batches distributed by
  ``keras_compat.distribute_on_host`` (a plain iterator, as ``worker.train`` does), instead
  of ``tf.distribute``'s ``MultiDeviceIterator`` (what ``fit`` does by itself).

Prints milliseconds per step, process CPU seconds and the ratio against ``none``::

    .venv/bin/python benchmarks/strategy_overhead.py [--steps 300]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

VARIANTS = ("none", "mirrored", "multi_worker", "mirrored_host", "multi_worker_host")
BATCH = 128


def _measure(variant: str, steps: int, steps_per_execution: int = 1) -> dict[str, float]:
    """Fit in this process; ms per step over ``steps`` after 50 warm-up steps."""
    import numpy as np
    import tensorflow as tf

    # isort: split
    import keras

    from mnist_pipeline.training.keras_compat import (
        disable_device_iterator_autotuning,
        distribute_on_host,
    )
    from mnist_pipeline.training.worker import input_batches

    disable_device_iterator_autotuning()  # as worker.train does under a strategy
    rng = np.random.default_rng(0)
    images = rng.random((BATCH * steps, 28, 28, 1), dtype=np.float32)
    labels = rng.integers(0, 10, BATCH * steps)
    make_strategy = {
        "none": None,
        "mirrored": lambda: tf.distribute.MirroredStrategy(["/cpu:0"]),
        "multi_worker": tf.distribute.MultiWorkerMirroredStrategy,
    }[variant.removesuffix("_host")]
    strategy = make_strategy() if make_strategy else None
    scope = strategy.scope() if strategy else None

    def build():
        layers = keras.layers
        model = keras.Sequential(
            [
                keras.Input((28, 28, 1)),
                layers.Conv2D(32, 3, activation="relu"),
                layers.MaxPooling2D(),
                layers.Conv2D(64, 3, activation="relu"),
                layers.MaxPooling2D(),
                layers.Flatten(),
                layers.Dense(128, activation="relu"),
                layers.Dense(10, activation="softmax"),
            ]
        )
        model.compile(
            "adam",
            "sparse_categorical_crossentropy",
            metrics=["accuracy"],
            steps_per_execution=steps_per_execution,
        )
        return model

    if scope is None:
        model = build()
    else:
        with scope:
            model = build()
    batches = input_batches(images, labels, BATCH, seed=0)
    if variant.endswith("_host"):
        batches = distribute_on_host(strategy, batches)
    model.fit(batches, epochs=1, steps_per_epoch=50, verbose=0)  # tracing, warm-up
    began, cpu = time.perf_counter(), time.process_time()
    model.fit(batches, epochs=1, steps_per_epoch=steps, verbose=0)
    return {
        "ms_per_step": (time.perf_counter() - began) / steps * 1000,
        "cpu_s": time.process_time() - cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument(
        "--steps-per-execution",
        type=int,
        default=1,
        help="Keras steps run per tf.function call (default 1, Keras' own default)",
    )
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # child process
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(_measure(args.variant, args.steps, args.steps_per_execution)))
        return

    print(f"tf.distribute overhead per step, batch {BATCH}, {args.steps} steps "
          f"({args.steps_per_execution} per execution), "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()}")  # fmt: skip
    results = {}
    for variant in VARIANTS:
        done = subprocess.run(
            [sys.executable, __file__, "--variant", variant, "--steps", str(args.steps),
             "--steps-per-execution", str(args.steps_per_execution)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        results[variant] = json.loads(done.stdout.strip().splitlines()[-1])
        figures = results[variant]
        ratio = figures["ms_per_step"] / results["none"]["ms_per_step"]
        print(f"{variant:>17}: {figures['ms_per_step']:7.1f} ms/step  "
              f"{figures['cpu_s']:6.1f} s CPU  {ratio:4.2f}x none")  # fmt: skip
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
