"""The chief's checkpoints and final model on any storage (local folder, ``abfs://``, ``gs://``):
each epoch's weights go to a new object, then ``state.json`` naming them is written last, then
the older weights are deleted, so a crash anywhere leaves ``state.json`` naming complete weights
(docs/training.md). Keras writes local files only: the chief saves to a local temporary file and
uploads it (:mod:`mnist_pipeline.storage`), and downloads before loading.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Mapping
from typing import Any

from mnist_pipeline import storage

logger = logging.getLogger(__name__)

STATE_FILE = "state.json"
MODEL_FILE = "mnist_cnn.keras"
WEIGHTS_PREFIX = "weights-"
WEIGHTS_SUFFIX = ".weights.h5"

CHECKPOINT_SETTING = "training.checkpoint.dir (TRAINING_CHECKPOINT_DIR)"
OUTPUT_SETTING = "training.output_dir (MNIST_STORAGE_ROOT)"


def weights_name(epoch: int) -> str:
    """A fresh object name for ``epoch``'s weights (unique per write)."""
    return f"{WEIGHTS_PREFIX}{epoch:04d}-{uuid.uuid4().hex[:8]}{WEIGHTS_SUFFIX}"


def read_state(checkpoint_dir: str, options: Mapping[str, Any] | None = None) -> dict | None:
    """The last completed checkpoint's state, or ``None`` when there is none to resume.

    A state whose weights object is missing (deleted by hand) is not resumable: it is
    reported and ignored, and training starts afresh.
    """
    state_url = storage.join(checkpoint_dir, STATE_FILE)
    with storage.storage_errors(state_url, CHECKPOINT_SETTING, options, "read"):
        state = storage.read_json(state_url, options)
        if state is None:
            return None
        weights = state.get("weights")
        if not weights or not storage.exists(storage.join(checkpoint_dir, weights), options):
            logger.warning(
                "%s names weights %r that are not there; starting afresh", state_url, weights
            )
            return None
    return state


def load_weights(
    model, checkpoint_dir: str, state: Mapping[str, Any], options: Mapping[str, Any] | None = None
) -> None:
    """Load the weights ``state`` names into ``model``."""
    url = storage.join(checkpoint_dir, state["weights"])
    with contextlib.ExitStack() as stack:
        model.load_weights(_fetch(url, CHECKPOINT_SETTING, options, stack))


def _fetch(
    url: str, setting: str, options: Mapping[str, Any] | None, stack: contextlib.ExitStack
) -> str:
    """A local path holding ``url`` for as long as ``stack`` is open."""
    with storage.storage_errors(url, setting, options, "download"):
        return stack.enter_context(storage.local_copy(url, options))


def save_checkpoint(
    model,
    checkpoint_dir: str,
    state: dict[str, Any],
    *,
    is_chief: bool,
    options: Mapping[str, Any] | None = None,
) -> None:
    """Save ``model``'s weights and then the ``state`` naming them (chief only writes).

    Every worker runs the saving code (TensorFlow's multi-worker rule); the others
    save into a local temporary folder that is deleted at once.
    """
    folder = tempfile.mkdtemp(prefix="mnist-checkpoint-")
    try:
        name = weights_name(int(state["epoch"]))
        local = os.path.join(folder, name)
        model.save_weights(local)
        if not is_chief:
            return
        target = storage.join(checkpoint_dir, name)
        with storage.storage_errors(target, CHECKPOINT_SETTING, options, "upload"):
            storage.upload(local, target, options)
        state_url = storage.join(checkpoint_dir, STATE_FILE)
        with storage.storage_errors(state_url, CHECKPOINT_SETTING, options, "upload"):
            storage.write_bytes(
                state_url, json.dumps({**state, "weights": name}, indent=2).encode(), options
            )
        # The new state is in place: older weights are garbage now.
        for entry in storage.listdir(checkpoint_dir, options):
            if entry.startswith(WEIGHTS_PREFIX) and entry != name:
                try:
                    storage.remove(storage.join(checkpoint_dir, entry), options)
                except Exception as exc:  # a leftover is harmless: the state names the new one
                    logger.warning("could not delete old checkpoint weights %s: %s", entry, exc)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def save_model(
    model, output_dir: str, *, is_chief: bool, options: Mapping[str, Any] | None = None
) -> str | None:
    """Save ``model`` as ``<output_dir>/mnist_cnn.keras``; its URL (chief) or ``None``."""
    folder = tempfile.mkdtemp(prefix="mnist-model-")
    try:
        local = os.path.join(folder, MODEL_FILE)
        model.save(local)
        if not is_chief:
            return None
        target = storage.join(output_dir, MODEL_FILE)
        with storage.storage_errors(target, OUTPUT_SETTING, options, "upload"):
            storage.upload(local, target, options)
        return target
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def load_model(url: str, options: Mapping[str, Any] | None = None):
    """Load the model the chief saved at ``url`` (driver side; downloads it first if remote)."""
    import keras

    with contextlib.ExitStack() as stack:
        return keras.saving.load_model(_fetch(url, OUTPUT_SETTING, options, stack))


def remove_checkpoints(checkpoint_dir: str, options: Mapping[str, Any] | None = None) -> None:
    """Delete a finished run's checkpoint folder (best effort)."""
    try:
        storage.remove_tree(checkpoint_dir, options)
    except Exception as exc:
        logger.warning("could not delete checkpoints at %s: %s", checkpoint_dir, exc)
