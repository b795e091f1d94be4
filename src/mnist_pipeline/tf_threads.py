"""TensorFlow's thread pools: the one place that sets them (training workers, the model server).

TensorFlow fixes its intra-op and inter-op pools when its eager context is first
initialised; afterwards ``tf.config.threading`` refuses changes. Two ways in:

* :func:`configure_threads` before the first TensorFlow operation of a process (or
  right after a ``context._reset_context()``), through ``tf.config.threading``;
* :func:`export_thread_environment` where someone else initialises TensorFlow before
  our code runs (spark-tensorflow-distributor builds its ``MultiWorkerMirroredStrategy``
  before calling the training function): ``TF_NUM_INTRAOP_THREADS`` /
  ``TF_NUM_INTEROP_THREADS``, which TensorFlow reads when it creates its pools.
"""

from __future__ import annotations

import logging
import os

logger = logging.getLogger(__name__)

INTRA_OP_ENV = "TF_NUM_INTRAOP_THREADS"
INTER_OP_ENV = "TF_NUM_INTEROP_THREADS"


def host_cores() -> int:
    """The cores this process may run on (its CPU affinity, else the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def configure_threads(intra_op: int | None, inter_op: int | None) -> bool:
    """Fix TensorFlow's pools (0/None: keep TensorFlow's default for that pool).

    Returns:
        ``True`` if applied, ``False`` if TensorFlow was already initialised with
        other values (they are kept; a debug line says so).
    """
    import tensorflow as tf

    try:
        if intra_op:
            tf.config.threading.set_intra_op_parallelism_threads(int(intra_op))
        if inter_op:
            tf.config.threading.set_inter_op_parallelism_threads(int(inter_op))
    except RuntimeError:
        logger.debug("TensorFlow already initialised; its thread pools are kept")
        return False
    return True


def export_thread_environment(intra_op: int | None, inter_op: int | None) -> None:
    """Set ``TF_NUM_INTRAOP_THREADS`` / ``TF_NUM_INTEROP_THREADS`` for this process.

    For a process whose TensorFlow context is created later by code we do not
    control. 0/None leaves the variable as it is.
    """
    if intra_op:
        os.environ[INTRA_OP_ENV] = str(int(intra_op))
    if inter_op:
        os.environ[INTER_OP_ENV] = str(int(inter_op))
