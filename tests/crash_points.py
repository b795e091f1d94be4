"""A process that dies at every step of a change to storage, for tests of what a reader sees.

A change (a dataset save, a batch-scoring commit, a checkpoint) is a series of steps on
storage: files or objects written, renamed, removed. :func:`every_crash` runs the change once
per step, each time on fresh storage set up the same way and with the process "dying" right
at that step; after each run the test checks what a reader finds. The property under test
is the one users rely on, e.g. *a reader never sees a manifest naming a missing file*; any
order of writes that breaks it fails at the step where it shows, whichever line is wrong.

What a step is, and where the process dies:

* local files: opening a file for writing (the process dies *after* the open: the file is
  there, created or truncated, and empty, as after a crash mid-write), and ``os.replace``,
  ``os.rename``, ``os.unlink``/``os.remove``, ``os.rmdir`` (it dies *before* them);
* an object store (fsspec's ``memory://``, which stands in for ``gs://``/``abfs://``): an
  object written or removed (it dies *before* it: an object store publishes an object whole
  or not at all).

Only paths under the change's own ``root`` count. Once dead, every later step under it fails
too (a dead process does nothing more, not even the cleanup in its ``except`` blocks), and
the crash is a :class:`SimulatedCrash`, a ``BaseException``, so ``except Exception`` in the
code under test cannot swallow it.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fsspec.implementations.memory import MemoryFileSystem


class SimulatedCrash(BaseException):
    """The process died here."""


_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


class _Dying:
    """Counts the steps under ``root``; dies at step ``crash_at`` (0-based) and stays dead."""

    def __init__(self, root: str, crash_at: int) -> None:
        self.memory = root.startswith("memory://")
        self.root = (
            MemoryFileSystem._strip_protocol(root).rstrip("/")
            if self.memory
            else os.path.realpath(root)
        )
        self.crash_at = crash_at
        self.steps = 0
        self.died = False

    def _under_root(self, path: object, dir_fd: int | None = None) -> bool:
        if isinstance(path, int) or path is None:
            return False
        text = os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else str(path)
        if self.memory:
            text = MemoryFileSystem._strip_protocol(text)
        elif dir_fd is not None and not os.path.isabs(text):
            text = os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), text)
        else:
            text = os.path.realpath(text)
        return text == self.root or text.startswith(self.root + "/")

    def step(self) -> None:
        """One step happens now; the process dies at it (or has died already)."""
        if self.died or self.steps == self.crash_at:
            self.died = True
            raise SimulatedCrash(f"died at step {self.crash_at}")
        self.steps += 1


def _patch_local(monkeypatch: pytest.MonkeyPatch, dying: _Dying) -> None:
    real_open, real_os_open = builtins.open, os.open

    def open_(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        if any(flag in mode for flag in "wax+") and dying._under_root(file):
            try:
                dying.step()
            except SimulatedCrash:
                handle.close()  # created or truncated, nothing written: a cut write
                raise
        return handle

    def os_open(path, flags, mode=0o777, *, dir_fd=None):
        fd = real_os_open(path, flags, mode, dir_fd=dir_fd)
        if flags & _WRITE_FLAGS and dying._under_root(path, dir_fd):
            try:
                dying.step()
            except SimulatedCrash:
                os.close(fd)
                raise
        return fd

    def before(real: Callable, paths: int = 1) -> Callable:
        def wrapper(*args, **kwargs):
            dir_fd = kwargs.get("dir_fd", kwargs.get("src_dir_fd"))
            if any(dying._under_root(arg, dir_fd) for arg in args[:paths]):
                dying.step()
            return real(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(builtins, "open", open_)
    monkeypatch.setattr(io, "open", open_)
    monkeypatch.setattr(os, "open", os_open)
    for name, paths in (("replace", 2), ("rename", 2), ("unlink", 1), ("remove", 1), ("rmdir", 1)):
        monkeypatch.setattr(os, name, before(getattr(os, name), paths))


def _patch_memory(monkeypatch: pytest.MonkeyPatch, dying: _Dying) -> None:
    real_open, real_rm, real_copy = (
        MemoryFileSystem._open,
        MemoryFileSystem._rm,
        MemoryFileSystem.cp_file,
    )

    def open_(self, path, mode="rb", *args, **kwargs):
        if any(flag in mode for flag in "wax") and dying._under_root(path):
            dying.step()
        return real_open(self, path, mode, *args, **kwargs)

    def rm(self, path):
        if dying._under_root(path):
            dying.step()
        return real_rm(self, path)

    def copy(self, path1, path2, **kwargs):
        if dying._under_root(path2):
            dying.step()
        return real_copy(self, path1, path2, **kwargs)

    monkeypatch.setattr(MemoryFileSystem, "_open", open_)
    monkeypatch.setattr(MemoryFileSystem, "_rm", rm)
    monkeypatch.setattr(MemoryFileSystem, "cp_file", copy)


@contextlib.contextmanager
def dying_at(root: str, step: int) -> Iterator[_Dying]:
    """In this block, the process dies at ``step`` (0-based) of the changes under ``root``."""
    dying = _Dying(root, step)
    with pytest.MonkeyPatch.context() as monkeypatch:
        (_patch_memory if dying.memory else _patch_local)(monkeypatch, dying)
        try:
            yield dying
        except SimulatedCrash:
            if not dying.died:  # pragma: no cover - only _Dying raises it
                raise


def every_crash(
    fresh_root: Callable[[int], str],
    setup: Callable[[str], None],
    change: Callable[[str], None],
    check: Callable[[str, bool], None],
    *,
    max_steps: int = 200,
) -> int:
    """Run ``change`` once per step, dying at that step; ``check(root, died)`` after each.

    Each run gets its own ``root`` (``fresh_root(n)``), prepared by ``setup`` first (without
    dying). The last run is the change that completes: ``check(root, False)``.

    Returns:
        the number of steps of the complete change.
    """
    for step in range(max_steps):
        root = fresh_root(step)
        setup(root)
        with dying_at(root, step) as dying:
            change(root)
        try:
            check(root, dying.died)
        finally:
            if root.startswith("memory://"):
                with contextlib.suppress(FileNotFoundError):
                    MemoryFileSystem().rm(root, recursive=True)
        if not dying.died:
            return step
    raise AssertionError(f"the change took more than {max_steps} steps")


def roots(kind: str, tmp_path: Path) -> Callable[[int], str]:
    """``fresh_root`` for :func:`every_crash`: new folders under ``tmp_path`` (``local``) or
    unique ``memory://`` prefixes (``object store``). A change writes anywhere under its root
    (e.g. a dataset at ``<root>/train`` and its temporary folder beside it)."""
    if kind == "local":
        return lambda step: str(tmp_path / f"run-{step}")
    prefix = f"memory://crash-{uuid.uuid4().hex[:8]}"
    return lambda step: f"{prefix}/run-{step}"
