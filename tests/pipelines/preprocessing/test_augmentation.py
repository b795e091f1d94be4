import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mnist_pipeline.pipelines.preprocessing.nodes import augment_with_shifts, scale_images
from tests.conftest import make_split
from tests.integration.scratch_project import project_copy, scratch_environment

PROJECT_ROOT = Path(__file__).resolve().parents[3]

PARAMS = {"enabled": True, "copies": 2, "max_shift": 2, "seed": 0}


def shift(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``image`` moved down by ``dy`` and right by ``dx`` pixels, zeros shifted in (reference)."""
    height, width = image.shape
    moved = np.zeros_like(image)
    for y in range(height):
        for x in range(width):
            if 0 <= y - dy < height and 0 <= x - dx < width:
                moved[y, x] = image[y - dy, x - dx]
    return moved


def test_disabled_returns_the_split_unchanged():
    split = scale_images(make_split(20))
    assert augment_with_shifts(split, {**PARAMS, "enabled": False}) is split


def test_adds_shifted_copies_after_the_originals():
    split = scale_images(make_split(30))
    augmented = augment_with_shifts(split, PARAMS)
    assert augmented["images"].shape == (90, 28, 28, 1)
    assert augmented["images"].dtype == np.float32
    np.testing.assert_array_equal(augmented["images"][:30], split["images"])
    np.testing.assert_array_equal(augmented["labels"], np.tile(split["labels"], 3))
    moves = range(-2, 3)
    for index, image in enumerate(augmented["images"][30:, ..., 0]):
        original = split["images"][index % 30, ..., 0]
        assert any(
            np.array_equal(image, shift(original, dy, dx)) for dy in moves for dx in moves
        ), f"copy {index} is not a shift of its original by at most 2 pixels"


def test_shifts_vary_and_are_seeded():
    split = scale_images(make_split(50))
    first = augment_with_shifts(split, PARAMS)["images"]
    np.testing.assert_array_equal(first, augment_with_shifts(split, PARAMS)["images"])
    other = augment_with_shifts(split, {**PARAMS, "seed": 1})["images"]
    assert not np.array_equal(first, other)
    unchanged = [np.array_equal(a, b) for a, b in zip(first[50:100], split["images"], strict=True)]
    assert sum(unchanged) < 10  # (0, 0) is one move in 25


@pytest.mark.parametrize(
    ("key", "value"), [("copies", 0), ("copies", 1.5), ("max_shift", 0), ("max_shift", 14)]
)
def test_rejects_bad_parameters(key, value):
    with pytest.raises(ValueError, match=rf"preprocessing\.augmentation\.{key} must be"):
        augment_with_shifts(scale_images(make_split(20)), {**PARAMS, key: value})


@pytest.mark.slow
@pytest.mark.integration
def test_a_preprocessing_run_with_augmentation_doubles_the_training_split(tmp_path):
    """The augmentation node wired into the real pipeline and switched on from the command
    line (docs/extending.md's larger example): two copies per training image, the validation
    and test splits untouched."""
    project = project_copy(PROJECT_ROOT, tmp_path / "project")
    env = scratch_environment(tmp_path, project)
    intermediate = tmp_path / "data" / "02_intermediate"
    intermediate.mkdir(parents=True)
    for name, split in (("mnist_train", make_split(200, seed=1)), ("mnist_test", make_split(50))):
        (intermediate / f"{name}.pkl").write_bytes(pickle.dumps(split))
    params = "preprocessing.augmentation.enabled=true,preprocessing.validation_size=0.2"
    command = [str(Path(sys.executable).with_name("kedro")), "run", "--env", "azure"]
    command += ["--pipelines", "preprocessing", "--params", params]
    result = subprocess.run(
        command, cwd=project, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    fingerprint = json.loads((tmp_path / "data/05_model_input/fingerprint.json").read_text())
    sizes = {name: split["num_examples"] for name, split in fingerprint["splits"].items()}
    assert sizes == {"train": 2 * 160, "validation": 40, "test": 50}
