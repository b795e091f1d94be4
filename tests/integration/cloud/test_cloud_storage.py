"""Object storage of both clouds, for real (Azurite, fake-gcs-server): the IDX dataset over
abfs:// and gs://, model-input shards and training checkpoints on abfs://, and the faults
(endpoint down, wrong key, missing container/bucket, connection cut mid-upload)."""

from __future__ import annotations

import base64
import json

import fsspec.config
import numpy as np
import pytest
from kedro.io import DatasetError

from mnist_pipeline import storage
from mnist_pipeline.datasets import ImageShardsDataset, MNISTIDXDataset, read_image_shards
from mnist_pipeline.datasets.image_shards import MANIFEST, write_image_shards
from mnist_pipeline.training import checkpoint
from tests.conftest import read_mnist_split
from tests.idx_files import encode_idx
from tests.integration.cloud.tcp_proxy import CuttingProxy
from tools.cloud.emulators import DEV_KEY, connection_string, free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def mnist_slice(real_mnist_dir):
    """200 real training images and labels (uint8)."""
    split = read_mnist_split(real_mnist_dir, "train", count=200)
    return split["images"], split["labels"]


@pytest.mark.parametrize(
    ("protocol", "bucket"), [("abfs", "sandbox"), ("gs", "production")], ids=["abfs", "gs"]
)
def test_the_idx_dataset_reads_mnist_from_object_storage(protocol, bucket, mnist_slice, request):
    images, labels = mnist_slice
    options = request.getfixturevalue(f"{protocol}_options")
    unique = request.getfixturevalue("unique")
    source = f"{protocol}://{bucket}/{unique}/mnist"
    fs, root = storage.filesystem(source, options)
    fs.pipe(f"{root}/train-images-idx3-ubyte.gz", encode_idx(images, compress=True))
    fs.pipe(f"{root}/train-labels-idx1-ubyte.gz", encode_idx(labels, compress=True))
    dataset = MNISTIDXDataset(
        images=f"{source}/train-images-idx3-ubyte.gz",
        labels=f"{source}/train-labels-idx1-ubyte.gz",
        credentials=options,
    )
    loaded = dataset.load()
    np.testing.assert_array_equal(loaded["images"], images)
    np.testing.assert_array_equal(loaded["labels"], labels)
    assert DEV_KEY not in str(dataset)  # credentials stay out of the description


def test_storage_options_come_from_fsspec_configuration(monkeypatch, abfs_options, unique):
    """FSSPEC_ABFS_* variables (fsspec's configuration) in the driver become explicit options
    that travel to training processes; explicit options win."""
    monkeypatch.setitem(fsspec.config.conf, "abfs", dict(abfs_options))
    url = f"abfs://sandbox/{unique}/x"
    assert storage.resolve_options(url) == abfs_options
    assert storage.resolve_options(f"az://sandbox/{unique}/x") == abfs_options  # an alias
    assert storage.resolve_options(url, {"connection_string": "other"}) == {
        "connection_string": "other"
    }
    assert storage.resolve_options("/tmp/local") == {}


def test_model_input_shards_on_abfs(mnist_slice, abfs_options, unique):
    images, labels = mnist_slice
    path = f"abfs://sandbox/{unique}/05_model_input/train"
    dataset = ImageShardsDataset(path=path, num_shards=4, credentials=abfs_options)
    dataset.save({"images": images[..., None] / 255.0, "labels": labels})
    shards = dataset.load()
    assert shards.path == path and shards.num_examples == 200
    halves = [read_image_shards(path, index, 2, abfs_options) for index in (0, 1)]
    assert sum(len(y) for _, y in halves) == 200
    assert sorted(np.concatenate([y for _, y in halves])) == sorted(labels)


def test_setting_storage_up_again_is_no_error_and_loses_nothing(
    emulators, abfs_options, gs_options, mnist_slice, unique
):
    """`make cloud-up` over emulators' folders that hold the containers and buckets already,
    and a second save to the same prefix: no "already exists" error, nothing lost."""
    kept = {
        f"abfs://sandbox/{unique}/kept": abfs_options,
        f"gs://production/{unique}/kept": gs_options,
    }
    for url, options in kept.items():
        storage.write_bytes(url, b"still here", options)
    emulators.create_stores()  # the containers and buckets exist: set up again
    for url, options in kept.items():
        assert storage.read_bytes(url, options) == b"still here"
    images, labels = mnist_slice
    dataset = ImageShardsDataset(path=f"abfs://sandbox/{unique}/train", credentials=abfs_options)
    for _ in range(2):
        dataset.save({"images": images[..., None] / 255.0, "labels": labels})
    assert dataset.load().num_examples == 200


def test_a_cut_rewrite_of_shards_is_never_read_as_complete(emulators, mnist_slice, unique):
    """Re-writing a complete shard set through a connection cut mid-upload: the old manifest
    is gone first, so the folder is refused, not read as a mix of old and new files."""
    images, labels = mnist_slice
    x = images[..., None] / 255.0
    path = f"abfs://sandbox/{unique}/train"
    direct = {"connection_string": emulators.azure_connection_string}
    write_image_shards(path, x, labels, num_shards=4, storage_options=direct)
    with CuttingProxy(emulators.azurite_port, cut_after=20_000) as proxy:
        cut = {"connection_string": connection_string(proxy.port)}
        with pytest.raises(DatasetError) as caught:
            ImageShardsDataset(path=path, num_shards=4, credentials=cut).save(
                {"images": x, "labels": labels}
            )
    assert proxy.cut.is_set()
    message = str(caught.value)
    assert path in message and "MNIST_STORAGE_ROOT" in message
    assert DEV_KEY not in message
    with pytest.raises(DatasetError, match=f"has no {MANIFEST}"):
        read_image_shards(path, 0, 1, direct)


def _tiny_model():
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(optimizer="adam", loss="mse")
    return model


def test_checkpoints_on_abfs_one_weights_object_per_epoch_state_last(
    abfs_options, unique, monkeypatch
):
    folder = f"abfs://sandbox/{unique}/checkpoints/run"
    model = _tiny_model()
    for epoch in (1, 2):
        checkpoint.save_checkpoint(
            model, folder, {"epoch": epoch}, is_chief=True, options=abfs_options
        )
    names = storage.listdir(folder, abfs_options)
    state = checkpoint.read_state(folder, abfs_options)
    assert state["epoch"] == 2
    assert names == sorted([checkpoint.STATE_FILE, state["weights"]])  # epoch 1's deleted
    restored = _tiny_model()
    checkpoint.load_weights(restored, folder, state, abfs_options)
    np.testing.assert_array_equal(restored.get_weights()[0], model.get_weights()[0])

    # A crash after epoch 3's weights went up but before its state: epoch 2 stays whole.
    def _crash(*args, **kwargs):
        raise ConnectionResetError("connection reset by peer")

    monkeypatch.setattr(storage, "write_bytes", _crash)
    with pytest.raises(storage.StorageError, match="TRAINING_CHECKPOINT_DIR"):
        checkpoint.save_checkpoint(model, folder, {"epoch": 3}, is_chief=True, options=abfs_options)
    monkeypatch.undo()
    again = checkpoint.read_state(folder, abfs_options)
    assert again["epoch"] == 2 and again["weights"] == state["weights"]
    checkpoint.load_weights(_tiny_model(), folder, again, abfs_options)
    # The next good save cleans the orphan up.
    checkpoint.save_checkpoint(model, folder, {"epoch": 3}, is_chief=True, options=abfs_options)
    assert len(storage.listdir(folder, abfs_options)) == 2


def test_a_checkpoint_cut_mid_upload_leaves_the_previous_one(emulators, abfs_options, unique):
    import keras

    folder = f"abfs://sandbox/{unique}/checkpoints/run"
    model = keras.Sequential([keras.Input((256,)), keras.layers.Dense(512)])  # ~0.5 MB weights
    checkpoint.save_checkpoint(model, folder, {"epoch": 1}, is_chief=True, options=abfs_options)
    before = checkpoint.read_state(folder, abfs_options)
    with CuttingProxy(emulators.azurite_port, cut_after=100_000) as proxy:
        cut = {"connection_string": connection_string(proxy.port)}
        with pytest.raises(storage.StorageError) as caught:
            checkpoint.save_checkpoint(model, folder, {"epoch": 2}, is_chief=True, options=cut)
    assert folder in str(caught.value) and "training.checkpoint.dir" in str(caught.value)
    after = checkpoint.read_state(folder, abfs_options)
    assert after == before  # still epoch 1, naming weights that are complete
    checkpoint.load_weights(model, folder, after, abfs_options)


def _wrong_key() -> str:
    return base64.b64encode(b"not the key of this account" * 2).decode()


FAULTS = {
    "azure-endpoint-down": (
        lambda e: ("abfs://sandbox/x", {"connection_string": connection_string(free_port())}),
        "cannot be reached",
    ),
    "azure-wrong-key": (
        lambda e: (
            "abfs://sandbox/x",
            {"connection_string": connection_string(e.azurite_port, key=_wrong_key())},
        ),
        "credentials were refused",
    ),
    "azure-missing-container": (
        lambda e: ("abfs://no-such-container/x", {"connection_string": e.azure_connection_string}),
        "not found",
    ),
    "gcs-missing-bucket": (
        lambda e: ("gs://no-such-bucket/x", {"endpoint_url": e.gcs_endpoint, "token": "anon"}),
        "not found",
    ),
}  # fmt: skip


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_storage_faults_are_clear_and_name_the_uri_and_setting(fault, emulators, mnist_slice):
    make, reason = FAULTS[fault]
    root, options = make(emulators)
    path = f"{root}/05_model_input/train"
    images, labels = mnist_slice
    with pytest.raises(DatasetError) as caught:  # Kedro wraps the dataset's StorageError
        ImageShardsDataset(path=path, num_shards=2, credentials=options).save(
            {"images": images[:20, ..., None] / 255.0, "labels": labels[:20]}
        )
    message = str(caught.value)
    assert isinstance(caught.value.__cause__, storage.StorageError)
    assert path in message, message
    assert "MNIST_STORAGE_ROOT" in message, message
    assert reason in message, message
    assert _wrong_key() not in message and DEV_KEY not in message
    if reason == "not found":
        return  # reading finds no checkpoint there; the first write fails as above
    # An unreachable or refusing store fails the first read too (a resuming worker's):
    with pytest.raises(storage.StorageError) as caught:
        checkpoint.read_state(f"{root}/checkpoints/run", options)
    assert f"{root}/checkpoints/run" in str(caught.value)
    assert "TRAINING_CHECKPOINT_DIR" in str(caught.value)
    assert json.dumps(options) not in str(caught.value)


@pytest.mark.parametrize("side", ["input", "output"])
def test_batch_scoring_with_a_wrong_storage_key_names_the_setting_not_the_key(side, emulators):
    """Checked on the driver before Spark starts: one clear line, no raw AuthorizationFailure."""
    from mnist_pipeline.errors import expected_failure
    from mnist_pipeline.pipelines.batch_scoring.nodes import score_batch

    wrong = {"connection_string": connection_string(emulators.azurite_port, key=_wrong_key())}
    good = {"connection_string": emulators.azure_connection_string}
    storage.write_bytes("abfs://sandbox/scoring-key/in/a.png", b"png", good)
    scoring = {
        "input": {"path": "abfs://sandbox/scoring-key/in", "storage_options": good},
        "output": {"path": "abfs://sandbox/scoring-key/out", "storage_options": good},
        "batch_size": 8,
        "images_per_partition": 100,
    }
    scoring[side]["storage_options"] = wrong
    with pytest.raises(storage.StorageError) as caught:
        score_batch({}, {"registry_uri": "unused"}, scoring)
    message = str(caught.value)
    assert f"batch_scoring.{side}.path" in message and "credentials were refused" in message
    assert f"abfs://sandbox/scoring-key/{'in' if side == 'input' else 'out'}" in message
    assert _wrong_key() not in message and DEV_KEY not in message
    assert expected_failure(caught.value) is not None  # one line and a fix, no traceback
