import json

import numpy as np
import pytest
from kedro.io import DatasetError

from mnist_pipeline.datasets import ImageShardsDataset, read_image_shards
from tests.crash_points import every_crash, roots


@pytest.fixture
def scaled():
    rng = np.random.default_rng(1)
    return {
        "images": rng.random((103, 28, 28, 1), dtype=np.float32),
        "labels": (np.arange(103) % 10).astype(np.uint8),
    }


def test_round_trip_and_handle(tmp_path, scaled):
    ds = ImageShardsDataset(path=str(tmp_path / "train"), num_shards=4)
    ds.save(scaled)
    handle = ds.load()
    assert handle.num_examples == 103 and handle.image_shape == (28, 28, 1)
    assert len(handle.files) == 4 and len(handle.sha256) == 64
    assert sum(handle.label_counts) == 103
    images, labels = read_image_shards(handle.path)
    np.testing.assert_array_equal(images, scaled["images"])
    np.testing.assert_array_equal(labels, scaled["labels"])
    assert images.dtype == np.float32


def test_workers_read_disjoint_shares_that_cover_the_split(tmp_path, scaled):
    ImageShardsDataset(path=str(tmp_path / "s"), num_shards=4).save(scaled)
    shares = [read_image_shards(str(tmp_path / "s"), i, 2) for i in range(2)]
    assert sum(len(labels) for _, labels in shares) == 103
    joined = np.concatenate([images for images, _ in shares])
    assert np.unique(joined.reshape(103, -1), axis=0).shape[0] == 103


def test_more_workers_than_shards_is_a_clear_error(tmp_path, scaled):
    ImageShardsDataset(path=str(tmp_path / "s"), num_shards=2).save(scaled)
    with pytest.raises(DatasetError, match="fewer than the 3 workers"):
        read_image_shards(str(tmp_path / "s"), 2, 3)


def test_same_content_same_fingerprint(tmp_path, scaled):
    a = ImageShardsDataset(path=str(tmp_path / "a"), num_shards=2)
    b = ImageShardsDataset(path=str(tmp_path / "b"), num_shards=5)
    a.save(scaled)
    b.save(scaled)
    assert a.load().sha256 == b.load().sha256
    scaled["images"][0, 0, 0, 0] += 0.5
    a.save(scaled)
    assert a.load().sha256 != b.load().sha256


def test_overwrite_replaces_old_shards(tmp_path, scaled):
    ds = ImageShardsDataset(path=str(tmp_path / "s"), num_shards=8)
    ds.save(scaled)
    ImageShardsDataset(path=str(tmp_path / "s"), num_shards=2).save(scaled)
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [
        "_manifest.json",
        "part-00000.parquet",
        "part-00001.parquet",
    ]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_incomplete_folder_is_refused(tmp_path, scaled):
    ds = ImageShardsDataset(path=str(tmp_path / "s"), num_shards=2)
    ds.save(scaled)
    (tmp_path / "s/_manifest.json").unlink()
    assert not ds.exists()
    with pytest.raises(DatasetError, match=r"has no _manifest\.json"):
        ds.load()


def test_old_format_is_refused(tmp_path, scaled):
    ImageShardsDataset(path=str(tmp_path / "s"), num_shards=2).save(scaled)
    manifest = tmp_path / "s/_manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "format_version": 0}))
    with pytest.raises(DatasetError, match="format version 0, expected 1"):
        read_image_shards(str(tmp_path / "s"))


def test_mismatched_lengths_are_refused(tmp_path, scaled):
    with pytest.raises(DatasetError, match="103 images but 3 labels"):
        ImageShardsDataset(path=str(tmp_path / "s")).save(
            {**scaled, "labels": scaled["labels"][:3]}
        )


def _split(seed: int, count: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "images": rng.random((count, 28, 28, 1), dtype=np.float32),
        "labels": rng.integers(0, 10, count).astype(np.uint8),
    }


@pytest.mark.parametrize("kind", ["local", "object store"])
def test_a_rewrite_cut_at_any_step_is_read_whole_old_or_new_or_refused(kind, tmp_path):
    """The process dies at each step of re-writing a split (same shard names, new content):
    a reader gets the old split whole, the new one whole, or a clear refusal; never a mix of
    old and new shards, never a manifest naming a shard that is not there."""
    old, new = _split(1, 40), _split(2, 36)

    def check(root: str, died: bool) -> None:
        try:
            images, labels = read_image_shards(f"{root}/train")
        except DatasetError as error:
            assert died and "has no _manifest.json" in str(error)
            return
        got = "old" if len(labels) == 40 else "new"
        expected = old if got == "old" else new
        np.testing.assert_array_equal(images, expected["images"], err_msg=f"a mix read as {got}")
        np.testing.assert_array_equal(labels, expected["labels"])
        handle = ImageShardsDataset(path=f"{root}/train").load()
        assert handle.num_examples == len(labels)
        assert died or got == "new"

    steps = every_crash(
        roots(kind, tmp_path),
        lambda root: ImageShardsDataset(path=f"{root}/train", num_shards=4).save(old),
        lambda root: ImageShardsDataset(path=f"{root}/train", num_shards=4).save(new),
        check,
    )
    assert steps >= 5  # four shards and a manifest at least: every one of them was cut
