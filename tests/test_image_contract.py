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


def _digit(high: float = 255.0) -> np.ndarray:
    """A stroke of ink on a blank background, ink = ``high``."""
    image = np.zeros((28, 28), np.float32)
    image[6:22, 12:16] = high
    image[6:22, 11] = high / 2  # anti-aliased edge
    return image


def test_an_image_scaled_to_0_1_is_refused_naming_the_0_255_contract():
    """The Keras tutorials' [0, 1] convention would read as an almost blank 0-255 image."""
    scaled = _digit(1.0)
    with pytest.raises(ImageContractError, match=r"image 0 looks scaled to \[0, 1\].*0-255"):
        to_model_batch(scaled)
    batch = np.stack([_digit(), _digit(1.0)])  # one of two: named by its index
    with pytest.raises(ImageContractError, match=r"image 1 looks scaled to \[0, 1\]"):
        to_model_batch(batch)


@pytest.mark.parametrize(
    "image",
    [
        np.eye(28, dtype=np.uint8),  # 0-255 pixels that happen to be only 0s and 1s
        np.eye(28, dtype=np.float32),  # the same as floats: no fractional pixel
        np.zeros((28, 28), np.float32),  # blank
        _digit(),  # an ordinary 0-255 image with fractional edges
    ],
    ids=["uint8-0-1", "float-0-1", "blank", "0-255-fractional"],
)
def test_0_255_images_without_the_unit_scale_signature_stay_valid(image):
    np.testing.assert_array_equal(to_model_batch(image)[0, ..., 0], image)


def test_a_dataframe_row_is_one_image_flattened_row_major():
    """What MLflow hands the pyfunc for dataframe_split/dataframe_records bodies: pixel k of
    a row is pixel (k // 28, k % 28) of its image, in a one-column frame of 784-pixel cells
    and in a frame of 784 columns alike."""
    import pandas as pd

    from mnist_pipeline.image_contract import images_from_model_input

    ramp = np.arange(784).reshape(28, 28) % 251  # every pixel knows its row and column
    images = np.stack([ramp, 250 - ramp, ramp.T])
    flat = [image.ravel().tolist() for image in images]
    assert flat[0][1] == ramp[0, 1] and flat[0][28] == ramp[1, 0]  # row-major, by definition
    frames = {
        "one column": pd.DataFrame({"image": flat}),
        "784 columns": pd.DataFrame(flat, columns=[f"pixel{k}" for k in range(784)]),
    }
    for name, frame in frames.items():
        batch = to_model_batch(images_from_model_input(frame))
        np.testing.assert_array_equal(batch[..., 0], images, err_msg=name)
