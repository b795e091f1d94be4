"""Benchmark: where a two-worker training step's time goes (the ``distributed`` mode's profile).

The default model, optimizer and loss (``conf/base/parameters_training.yml``), global batch
``--batch`` (default: the configuration's), fit for ``--steps`` steps on random data through
the project's input path (``worker.input_batches``, ``keras_compat.distribute_on_host``)
after a warm-up fit of 30 steps. Two-worker variants run two processes with a
``MultiWorkerMirroredStrategy`` on 127.0.0.1 (what each Spark barrier task runs, without
Spark), each with 1 intra-op and 1 inter-op thread (``worker_threads: auto`` on 2 cores)
unless the variant says otherwise; each variant in fresh processes:

* ``single``: no strategy, one process, 2 threads, the whole global batch (``single_node``);
* ``half``: no strategy, one process, 1 thread, half the batch (a worker's compute alone);
* ``half_x2``: two such processes at once (the two workers' compute, sharing the cores);
* ``input_x2``: two processes iterating the distributed dataset only (the input pipeline);
* ``allreduce``: two workers all-reducing the model's gradients (one packed tensor of the
  trainable parameters' size) in a loop, and ``allreduce_scalar``: a rank-0 value;
* ``workers``: the two-worker fit as ``worker.train`` runs it;
* ``workers_no_grad_sync``: the same with the gradient all-reduce skipped (workers diverge:
  for timing only);
* ``workers_local_metrics``: the same with the per-step loss/metric values left per worker
  (no cross-worker reduction of the step's logs; the epoch's logs still are);
* ``workers_threads_2_2`` / ``workers_threads_1_2``: intra-op, inter-op threads per worker.

Prints ms per step (or per all-reduce), the process CPU seconds of worker 0, the ratio
to ``single`` in images/s and each process's epoch loss (two workers on different data
print the same loss when the epoch's logs are reduced across workers)::

    .venv/bin/python benchmarks/distributed_step.py [--steps 300] [--variants a,b]

Prints the figures; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from typing import Any

TWO_WORKER = (
    "workers",
    "workers_no_grad_sync",
    "workers_local_metrics",
    "workers_threads_2_2",
    "workers_threads_1_2",
    "allreduce",
    "allreduce_scalar",
    "input_x2",
    "half_x2",
)
VARIANTS = ("single", "half", *TWO_WORKER)
WARMUP_STEPS = 30


def _threads(variant: str) -> tuple[int, int]:
    if variant == "single":
        return 2, 2
    if variant.startswith("workers_threads_"):
        intra, inter = variant.removeprefix("workers_threads_").split("_")
        return int(intra), int(inter)
    return 1, 1


def _measure(variant: str, steps: int, batch: int, index: int) -> dict[str, Any]:
    import numpy as np
    import tensorflow as tf

    # isort: split
    import keras

    tf.config.threading.set_intra_op_parallelism_threads(_threads(variant)[0])
    tf.config.threading.set_inter_op_parallelism_threads(_threads(variant)[1])
    from training_modes import _training_params

    from mnist_pipeline.training import keras_compat
    from mnist_pipeline.training.model import build_core_model, compile_model, training_model
    from mnist_pipeline.training.worker import input_batches

    config = _training_params()
    distributed = variant in TWO_WORKER and not variant.startswith("half")
    strategy = tf.distribute.MultiWorkerMirroredStrategy() if distributed else None
    local_batch = batch // 2 if variant.startswith("half") else batch
    rng = np.random.default_rng(index)
    count = local_batch * 200
    images = rng.random((count, 28, 28, 1), dtype=np.float32)
    labels = rng.integers(0, 10, count)
    data = input_batches(images, labels, local_batch, seed=index)
    if strategy is not None:
        keras_compat.apply_multi_worker_fix()
        data = keras_compat.distribute_on_host(strategy, data)
    if variant.startswith("allreduce"):
        size = 1 if variant == "allreduce_scalar" else _parameter_count(config)
        value = tf.ones([size]) if size > 1 else tf.constant(1.0)

        def _all_reduce():
            return tf.distribute.get_replica_context().all_reduce("sum", value)

        @tf.function
        def _step():
            return strategy.run(_all_reduce)

        for _ in range(WARMUP_STEPS):
            _step()
        began, cpu = time.perf_counter(), time.process_time()
        for _ in range(steps):
            _step()
        return _figures(began, cpu, steps)
    if variant == "input_x2":
        iterator = iter(data)
        for _ in range(WARMUP_STEPS):
            next(iterator)
        began, cpu = time.perf_counter(), time.process_time()
        for _ in range(steps):
            next(iterator)
        return _figures(began, cpu, steps)
    if variant == "workers_no_grad_sync":
        from keras.src.backend.tensorflow import optimizer as tf_optimizer

        tf_optimizer.TFOptimizer._all_reduce_sum_gradients = lambda self, pairs: list(pairs)
    if variant == "workers_local_metrics":
        from keras.src.backend.tensorflow import trainer as tf_trainer

        tf_trainer.reduce_per_replica = lambda values, strategy, reduction: (
            keras.tree.map_structure(lambda v: strategy.experimental_local_results(v)[0], values)
        )

    def build():
        total = (WARMUP_STEPS + steps) * 2
        model = build_core_model(config["model"])
        return compile_model(
            training_model(model, config["model"]),
            config["optimizer"],
            total,
            steps_per_epoch=total,
            loss_spec=config.get("loss"),
        )

    if strategy is None:
        model = build()
    else:
        with strategy.scope():
            model = build()
    model.fit(data, epochs=1, steps_per_epoch=WARMUP_STEPS, verbose=0, shuffle=False)
    began, cpu = time.perf_counter(), time.process_time()
    history = model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
    figures = _figures(began, cpu, steps)
    figures["loss"] = float(history.history["loss"][-1])
    return figures


def _parameter_count(config: dict[str, Any]) -> int:
    from mnist_pipeline.training.model import build_core_model

    return int(build_core_model(config["model"]).count_params())


def _figures(began: float, cpu: float, steps: int) -> dict[str, Any]:
    return {
        "ms": (time.perf_counter() - began) / steps * 1000,
        "cpu_s": time.process_time() - cpu,
    }


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _run(variant: str, steps: int, batch: int) -> dict[str, Any]:
    """The variant in fresh processes (two for the two-worker ones); worker 0's figures."""
    processes = 2 if variant in TWO_WORKER else 1
    ports = _free_ports(processes)
    children = []
    for index in range(processes):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        if variant in TWO_WORKER and not variant.endswith("_x2"):
            workers = [f"127.0.0.1:{port}" for port in ports]
            env["TF_CONFIG"] = json.dumps(
                {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
            )
        if variant == "input_x2":  # the distributed dataset of a one-worker strategy
            env["TF_CONFIG"] = json.dumps(
                {
                    "cluster": {"worker": [f"127.0.0.1:{ports[index]}"]},
                    "task": {"type": "worker", "index": 0},
                }
            )
        command = [sys.executable, __file__, "--variant", variant, "--index", str(index)]
        command += ["--steps", str(steps), "--batch", str(batch)]
        children.append(
            subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        )
    outputs = [child.communicate() for child in children]
    for child, (_, err) in zip(children, outputs, strict=True):
        if child.returncode != 0:
            raise RuntimeError(f"{variant} failed:\n{err.decode()[-3000:]}")
    results = [json.loads(out.decode().strip().splitlines()[-1]) for out, _ in outputs]
    figures = results[0]
    if "loss" in figures:  # each worker's epoch loss: the same if the epoch logs are global
        figures["losses"] = [r["loss"] for r in results]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, help="global batch (default: the configuration's)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # child process
    parser.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        result = _measure(args.variant, args.steps, args.batch, args.index)
        print(json.dumps(result))
        return
    if args.batch is None:
        from training_modes import _training_params

        args.batch = int(_training_params()["batch_size"])
    print(
        f"two-worker step profile: global batch {args.batch}, {args.steps} steps, "
        f"{os.cpu_count()} CPUs, load average {_load()}"
    )
    single = None
    for variant in args.variants.split(","):
        figures = _run(variant, args.steps, args.batch)
        line = f"{variant:>22}: {figures['ms']:7.2f} ms  {figures['cpu_s']:6.1f} s CPU (worker 0)"
        if variant == "single":
            single = figures["ms"]
        elif single and variant.startswith("workers"):
            line += f"  {single / figures['ms']:4.2f}x single's images/s"
        if "losses" in figures:
            line += "  epoch loss " + " / ".join(f"{x:.6f}" for x in figures["losses"])
        print(line + f"  load {_load()}", flush=True)
    print(f"load average at end: {_load()}")


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
