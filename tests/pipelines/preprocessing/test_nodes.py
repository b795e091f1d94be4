import numpy as np
import pytest

from mnist_pipeline.datasets import ImageShardsDataset
from mnist_pipeline.pipelines.preprocessing.nodes import (
    fingerprint_model_input,
    scale_images,
    split_train_validation,
)
from tests.conftest import make_split


def test_scale_images_range_shape_dtype(small_split):
    small_split["images"][0] = 255
    small_split["images"][1] = 0
    scaled = scale_images(small_split)
    assert scaled["images"].shape == (200, 28, 28, 1)
    assert scaled["images"].dtype == np.float32
    assert scaled["images"].min() == 0.0 and scaled["images"].max() == 1.0
    np.testing.assert_allclose(scaled["images"][..., 0] * 255, small_split["images"], atol=1e-4)


def test_scale_images_refuses_already_scaled_input(small_split):
    with pytest.raises(ValueError, match=r"expected uint8 images of shape \(N, height, width\)"):
        scale_images({**small_split, "images": small_split["images"] / 255.0})


@pytest.mark.parametrize("size", [0.25, 50])
def test_split_is_stratified_and_disjoint(size):
    split = scale_images(make_split(200))
    train, validation = split_train_validation(split, {"validation_size": size, "seed": 3})
    assert len(validation["labels"]) == 50 and len(train["labels"]) == 150
    assert np.bincount(validation["labels"]).tolist() == [5] * 10
    flat = lambda s: {row.tobytes() for row in s["images"].reshape(len(s["images"]), -1)}  # noqa: E731
    assert not flat(train) & flat(validation)


def test_split_is_reproducible_and_seeded():
    split = scale_images(make_split(200))
    a, _ = split_train_validation(split, {"validation_size": 0.2, "seed": 1})
    b, _ = split_train_validation(split, {"validation_size": 0.2, "seed": 1})
    c, _ = split_train_validation(split, {"validation_size": 0.2, "seed": 2})
    np.testing.assert_array_equal(a["images"], b["images"])
    assert not np.array_equal(a["images"], c["images"])


@pytest.mark.parametrize("size", [0, 1.0, 1.5, -3, 5, 195, "10%", True])
def test_split_rejects_bad_sizes(size):
    with pytest.raises(ValueError, match=r"preprocessing\.validation_size must be"):
        split_train_validation(scale_images(make_split(200)), {"validation_size": size, "seed": 0})


def test_fingerprint_combines_split_hashes(tmp_path):
    handles = {}
    for name, seed in (("train", 0), ("validation", 1), ("test", 2)):
        dataset = ImageShardsDataset(path=str(tmp_path / name), num_shards=2)
        dataset.save(scale_images(make_split(40, seed=seed)))
        handles[name] = dataset.load()
    first = fingerprint_model_input(**handles)
    assert first == fingerprint_model_input(**handles)
    assert first["splits"]["train"]["num_examples"] == 40
    assert len(first["model_input"]) == 64
    # Any change in any split changes the fingerprint.
    ImageShardsDataset(path=str(tmp_path / "test"), num_shards=2).save(
        scale_images(make_split(40, seed=9))
    )
    handles["test"] = ImageShardsDataset(path=str(tmp_path / "test")).load()
    assert fingerprint_model_input(**handles)["model_input"] != first["model_input"]
