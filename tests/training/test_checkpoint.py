"""The chief's checkpoint protocol without TensorFlow: a model whose weights are a few bytes.

What a resume relies on: ``read_state`` names weights that are there and hold that epoch,
whatever step a crash cut the save at (local folder and object store); a state whose
weights are gone is not resumed.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mnist_pipeline import storage
from mnist_pipeline.training import checkpoint
from tests.crash_points import every_crash, roots


class BytesModel:
    """Saves and loads its "weights" (bytes) like a Keras model does, to a local file."""

    def __init__(self, weights: bytes = b"") -> None:
        self.weights = weights

    def save_weights(self, path: str) -> None:
        Path(path).write_bytes(self.weights)

    def load_weights(self, path: str) -> None:
        self.weights = Path(path).read_bytes()


def _save(folder: str, epoch: int) -> None:
    state = {"epoch": epoch, "epochs": 5, "history": {"loss": [1.0] * epoch}}
    checkpoint.save_checkpoint(BytesModel(f"epoch {epoch}".encode()), folder, state, is_chief=True)


def _resumed_epoch(folder: str) -> int:
    """The epoch a resume starts after, checked against the weights it loads."""
    state = checkpoint.read_state(folder)
    assert state is not None, "the previous checkpoint was lost"
    model = BytesModel()
    checkpoint.load_weights(model, folder, state)
    assert model.weights == f"epoch {state['epoch']}".encode(), "weights of another epoch"
    return int(state["epoch"])


@pytest.mark.parametrize("kind", ["local", "object store"])
def test_a_save_cut_at_any_step_resumes_from_whole_weights_of_epoch_2_or_3(kind, tmp_path):
    def check(root: str, died: bool) -> None:
        folder = f"{root}/checkpoints"
        assert _resumed_epoch(folder) in ((2, 3) if died else (3,))
        if not died:  # the older weights are gone, the new ones stay
            names = storage.listdir(folder)
            assert len(names) == 2 and checkpoint.STATE_FILE in names

    def setup(root: str) -> None:
        _save(f"{root}/checkpoints", 1)
        _save(f"{root}/checkpoints", 2)

    steps = every_crash(roots(kind, tmp_path), setup, lambda r: _save(f"{r}/checkpoints", 3), check)
    assert steps >= 3  # the weights, the state, the older weights removed


@pytest.mark.parametrize("kind", ["local", "object store"])
def test_a_state_naming_weights_that_are_gone_starts_afresh_and_says_so(kind, tmp_path, caplog):
    folder = roots(kind, tmp_path)(0) + "/checkpoints"
    _save(folder, 2)
    state = checkpoint.read_state(folder)
    storage.remove(storage.join(folder, state["weights"]))  # deleted by hand, or lost
    with caplog.at_level(logging.WARNING, logger="mnist_pipeline.training.checkpoint"):
        assert checkpoint.read_state(folder) is None
    assert f"names weights {state['weights']!r} that are not there" in caplog.text
    _save(folder, 1)  # training afresh checkpoints again, and a resume finds that
    assert _resumed_epoch(folder) == 1
