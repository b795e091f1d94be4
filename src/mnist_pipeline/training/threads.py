"""``training.worker_threads``: each TensorFlow worker's share of its host's cores.

With several training workers on one host (``distributed``/``custom`` on ``local[N]``
or on an executor with several task slots) each worker left at TensorFlow's default
sizes its pools for *all* the host's cores, and together they oversubscribe the CPU.
``auto`` (the default) gives each worker the cores of its Spark task when
``spark.task.cpus`` is set, else the host's cores divided by the workers on that host.

Where the counts are applied: spark-tensorflow-distributor initialises TensorFlow (it
creates its ``MultiWorkerMirroredStrategy``) *before* it calls the training function, and
``tf.config.threading`` cannot change the pools afterwards. So :class:`WorkerThreads`
travels pickled with the training function's arguments and, when unpickled in the Spark
task's Python worker (before the runner starts TensorFlow), exports
``TF_NUM_INTRAOP_THREADS``/``TF_NUM_INTEROP_THREADS``, which TensorFlow reads when it
creates its pools. In processes where our code runs first (single_node, custom mode after
its context reset) :meth:`WorkerThreads.apply` sets them through ``tf.config.threading``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mnist_pipeline.tf_threads import configure_threads, export_thread_environment, host_cores

AUTO = "auto"
#: The fewest inter-op threads ``auto`` gives, whatever the core share. In a worker with
#: peers the gradients' all-reduce is an asynchronous op that holds an inter-op thread while it
#: waits for the peer workers; with one thread the rest of the step queues behind it, and
#: two workers on 2 cores stepped in 54 ms against 28 ms with two inter-op threads (single
#: node: 27 ms; benchmarks/distributed_step.py, docs/training.md#benchmark). The intra-op
#: pool, where the arithmetic runs, keeps the core share: it is what oversubscribes.
MIN_INTER_OP_THREADS = 2


def auto_threads(cores: int, workers_on_host: int, task_cpus: int | None = None) -> int:
    """Threads per pool for one TensorFlow worker: its share of the host's cores.

    ``task_cpus`` (``spark.task.cpus``, when the Spark configuration sets it) wins;
    otherwise the host's ``cores`` divided by the training workers on that host.
    Never less than 1.
    """
    if task_cpus:
        return max(int(task_cpus), 1)
    return max(int(cores) // max(int(workers_on_host), 1), 1)


def workers_on_host(addresses: list[str], index: int) -> int:
    """How many barrier tasks at ``addresses`` (``host:port``) share task ``index``'s host."""
    host = addresses[index].rsplit(":", 1)[0]
    return sum(1 for address in addresses if address.rsplit(":", 1)[0] == host)


def colocated_workers() -> int:
    """Training workers on this host: from the Spark barrier task's peers, else 1."""
    try:
        from pyspark import BarrierTaskContext, TaskContext
    except ImportError:
        return 1
    context = TaskContext.get()
    if not isinstance(context, BarrierTaskContext):
        return 1  # the driver (single_node, local)
    addresses = [info.address for info in context.getTaskInfos()]
    return workers_on_host(addresses, context.partitionId()) if addresses else 1


@dataclass(frozen=True)
class WorkerThreads:
    """``training.worker_threads`` of one training process, resolved where it runs.

    ``intra_op``/``inter_op``: ``auto`` (this worker's share, :func:`auto_threads`),
    ``0`` (TensorFlow's default: all cores) or a count. ``task_cpus``:
    ``spark.task.cpus`` when the Spark configuration sets it, else ``None``.
    """

    intra_op: int | str = AUTO
    inter_op: int | str = AUTO
    task_cpus: int | None = None

    @classmethod
    def from_config(
        cls, threads: Mapping[str, Any] | None, task_cpus: int | None = None
    ) -> WorkerThreads:
        """From ``training.worker_threads`` (missing keys: ``auto``).

        Raises:
            ValueError: a value that is not ``auto`` or a count ≥ 0, named.
        """
        threads = threads or {}
        values = []
        for key in ("intra_op", "inter_op"):
            value = threads.get(key, AUTO)
            valid = value == AUTO or (
                isinstance(value, int) and not isinstance(value, bool) and value >= 0
            )
            if not valid:
                raise ValueError(
                    f"training.worker_threads.{key} must be 'auto', 0 (TensorFlow's default) "
                    f"or a positive count, got {value!r}"
                )
            values.append(value)
        return cls(values[0], values[1], task_cpus)

    def resolve(self, workers: int | None = None) -> tuple[int, int]:
        """``(intra_op, inter_op)`` for this process (0: TensorFlow's default).

        ``auto``: this worker's core share, and at least :data:`MIN_INTER_OP_THREADS`
        inter-op threads. ``workers``: training workers on this host (default: found from
        Spark).
        """
        share = inter_share = 0
        if AUTO in (self.intra_op, self.inter_op):
            on_host = colocated_workers() if workers is None else workers
            share = auto_threads(host_cores(), on_host, self.task_cpus)
            inter_share = max(share, MIN_INTER_OP_THREADS)
        intra = share if self.intra_op == AUTO else int(self.intra_op)
        inter = inter_share if self.inter_op == AUTO else int(self.inter_op)
        return intra, inter

    def apply(self) -> tuple[int, int]:
        """Set TensorFlow's pools in this process (kept if TensorFlow already started)."""
        intra, inter = self.resolve()
        configure_threads(intra, inter)
        return intra, inter

    def __reduce__(self):
        return (_unpickled, (self.intra_op, self.inter_op, self.task_cpus))


def _unpickled(intra_op: int | str, inter_op: int | str, task_cpus: int | None) -> WorkerThreads:
    """Unpickling (in a Spark task's Python worker): export the counts for TensorFlow."""
    threads = WorkerThreads(intra_op, inter_op, task_cpus)
    export_thread_environment(*threads.resolve())
    return threads
