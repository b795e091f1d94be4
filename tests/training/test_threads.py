"""The automatic thread split of co-located training workers (pure functions, no TensorFlow run)."""

from __future__ import annotations

import os
import pickle

import pytest

from mnist_pipeline.tf_threads import INTER_OP_ENV, INTRA_OP_ENV
from mnist_pipeline.training.threads import WorkerThreads, auto_threads, workers_on_host


@pytest.mark.parametrize(
    ("cores", "workers", "task_cpus", "expected"),
    [
        (2, 2, None, 1),  # two workers on a 2-core host: one core each
        (8, 2, None, 4),
        (8, 3, None, 2),  # rounded down, never oversubscribed
        (2, 4, None, 1),  # more workers than cores: still at least one thread
        (16, 1, None, 16),  # alone on the host: all of it
        (16, 4, 2, 2),  # spark.task.cpus set: the task's cores win
        (2, 2, 3, 3),
    ],
)
def test_auto_threads_split_the_host_or_take_the_task_cpus(cores, workers, task_cpus, expected):
    assert auto_threads(cores, workers, task_cpus) == expected


def test_workers_on_host_counts_the_barrier_tasks_sharing_an_address():
    addresses = ["10.0.0.1:4000", "10.0.0.1:4001", "10.0.0.2:4000", "10.0.0.1:4002"]
    assert workers_on_host(addresses, 0) == 3
    assert workers_on_host(addresses, 2) == 1
    assert workers_on_host(["127.0.0.1:1", "127.0.0.1:2"], 1) == 2


def test_resolve_auto_and_explicit_counts():
    assert WorkerThreads("auto", "auto").resolve(workers=1) == (
        auto_threads(_cores(), 1),
        max(auto_threads(_cores(), 1), 2),
    )
    assert WorkerThreads("auto", 1, task_cpus=3).resolve(workers=2) == (3, 1)
    assert WorkerThreads(0, 0).resolve(workers=2) == (0, 0)  # TensorFlow's default


def test_auto_gives_each_worker_its_core_share_and_at_least_two_inter_op_threads(monkeypatch):
    # One inter-op thread queued the step behind the gradients' all-reduce, which holds a
    # thread while it waits for the peer: two workers on 2 cores stepped at half speed.
    monkeypatch.setattr("mnist_pipeline.training.threads.host_cores", lambda: 2)
    assert WorkerThreads("auto", "auto").resolve(workers=2) == (1, 2)
    assert WorkerThreads("auto", "auto").resolve(workers=1) == (2, 2)
    assert WorkerThreads("auto", 1).resolve(workers=2) == (1, 1)  # an explicit count stays
    monkeypatch.setattr("mnist_pipeline.training.threads.host_cores", lambda: 16)
    assert WorkerThreads("auto", "auto").resolve(workers=2) == (8, 8)


def test_unpickling_in_a_worker_exports_the_counts_for_tensorflow(monkeypatch):
    monkeypatch.delenv(INTRA_OP_ENV, raising=False)
    monkeypatch.delenv(INTER_OP_ENV, raising=False)
    threads = pickle.loads(pickle.dumps(WorkerThreads(3, 1)))
    assert threads == WorkerThreads(3, 1)
    assert (os.environ[INTRA_OP_ENV], os.environ[INTER_OP_ENV]) == ("3", "1")


@pytest.mark.parametrize("bad", [-1, "all", 1.5, True])
def test_bad_worker_threads_are_refused_with_the_key(bad):
    with pytest.raises(ValueError, match=r"training\.worker_threads\.intra_op must be 'auto'"):
        WorkerThreads.from_config({"intra_op": bad})


def test_missing_keys_default_to_auto():
    assert WorkerThreads.from_config(None, task_cpus=2) == WorkerThreads("auto", "auto", 2)


def _cores() -> int:
    from mnist_pipeline.tf_threads import host_cores

    return host_cores()
