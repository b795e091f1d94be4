import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from mnist_pipeline.pipelines.ingestion.nodes import (
    outcome,
    plot_class_balance,
    plot_samples,
    summarise_classes,
    summarise_pixels,
    validate_split,
)
from tests.conftest import make_split


def test_validate_split_passes_a_good_split(small_split):
    assert (
        validate_split(small_split, {"name": "train", "num_images": 200, "min_images_per_class": 1})
        is small_split
    )


def test_validate_split_accepts_any_count_when_not_configured(small_split):
    validate_split(small_split, {"name": "train", "num_images": None, "min_images_per_class": 1})


def test_validate_split_wrong_count(small_split):
    with pytest.raises(ValueError, match="train: expected 60,000 images, found 200"):
        validate_split(
            small_split, {"name": "train", "num_images": 60000, "min_images_per_class": 1}
        )


def test_validate_split_missing_digit(small_split):
    small_split["labels"][small_split["labels"] == 3] = 4
    with pytest.raises(ValueError, match=r"test: digits \[3\] have fewer than 1 images"):
        validate_split(small_split, {"name": "test", "num_images": None, "min_images_per_class": 1})


def test_class_summary_counts_and_shares():
    train, test = make_split(100), make_split(50, seed=1)
    summary = summarise_classes(train, test)
    assert summary["digit"].tolist() == list(range(10))
    assert summary["train_images"].tolist() == [10] * 10
    assert summary["test_images"].sum() == 50
    assert summary["train_share"].sum() == pytest.approx(1.0)


def test_pixel_statistics():
    split = {
        "images": np.zeros((4, 28, 28), dtype=np.uint8),
        "labels": np.arange(4, dtype=np.uint8),
    }
    split["images"][0, 0, 0] = 255
    stats = summarise_pixels(split, split)["train"]
    assert stats["num_images"] == 4 and stats["height"] == 28 and stats["width"] == 28
    assert stats["min"] == 0 and stats["max"] == 255
    assert stats["zero_fraction"] == pytest.approx(1 - 1 / (4 * 784), abs=1e-4)
    assert stats["mean"] == pytest.approx(255 / (4 * 784), abs=1e-4)
    assert stats["std"] == pytest.approx(split["images"].std(), abs=1e-4)


def test_plots_are_figures(small_split):
    assert isinstance(plot_class_balance(summarise_classes(small_split, small_split)), Figure)
    figure = plot_samples(small_split, per_class=3)
    assert isinstance(figure, Figure)
    mosaic = figure.axes[0].images[0].get_array()
    assert mosaic.shape == (280, 84)
    first_three = np.flatnonzero(small_split["labels"] == 3)[0]
    np.testing.assert_array_equal(mosaic[84:112, :28], small_split["images"][first_three])


def test_outcome_gives_counts_shape_and_balance():
    """The stage's line in the run's log (moved from tests/test_run_summary.py)."""
    summary = pd.DataFrame({"train_share": [0.09, 0.112], "test_share": [0.1, 0.1]})
    line = outcome(
        {
            "mnist_train": make_split(60),
            "mnist_test": make_split(10),
            "mnist_class_summary": summary,
        }
    )
    assert line.startswith("ingestion: 60 train + 10 test images verified")
    assert "28×28" in line and "classes 9.0–11.2 % of train" in line
    assert outcome({"mnist_train": make_split(60)}) is None  # not the whole stage yet
