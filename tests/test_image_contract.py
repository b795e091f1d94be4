import numpy as np
import pytest

from mnist_pipeline.image_contract import ImageContractError, to_model_batch


@pytest.mark.parametrize(
    "shape", [(28, 28), (3, 28, 28), (3, 28, 28, 1)], ids=["one", "batch", "channels"]
)
def test_accepted_shapes(shape):
    batch = to_model_batch(np.full(shape, 255, dtype=np.uint8))
    assert batch.dtype == np.float32 and batch.shape[1:] == (28, 28, 1)
    assert batch.max() == 255.0  # never rescaled outside the model


def test_nested_lists():
    assert to_model_batch([[[0] * 28] * 28]).shape == (1, 28, 28, 1)


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (
            np.zeros((2, 27, 28)),
            r"shape \(28, 28\), \(N, 28, 28\) or \(N, 28, 28, 1\), found \(2, 27, 28\)",
        ),
        (np.zeros((0, 28, 28)), "the batch is empty"),
        ([["a"] * 28] * 28, "found str"),
        ([[0] * 28, [0] * 27], "rectangular array"),
        (np.full((28, 28), np.nan), "NaN or infinity"),
        (np.full((28, 28), np.inf), "NaN or infinity"),
        (np.full((28, 28), 256.0), r"found \[256, 256\]"),
        (np.full((28, 28), -1.0), r"found \[-1, -1\]"),
        (np.zeros((1, 28, 28, 3)), r"found \(1, 28, 28, 3\)"),
    ],
)
def test_refused(images, message):
    with pytest.raises(ImageContractError, match=message):
        to_model_batch(images)


def test_batch_limit():
    with pytest.raises(ImageContractError, match="batch of 5 images exceeds the limit of 4"):
        to_model_batch(np.zeros((5, 28, 28)), max_batch=4)
