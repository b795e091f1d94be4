import functools
import hashlib
import http.server
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
from kedro.io import DatasetError

from mnist_pipeline.datasets import ChecksumMismatchError, MNISTIDXDataset
from tests.conftest import make_split
from tests.idx_files import encode_idx


def write_split(folder: Path, split: dict, prefix: str = "train", compress: bool = True) -> dict:
    """Write a split as MNIST-named IDX files; return file name → SHA-256."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if compress else ""
    sums = {}
    for kind, dims, array in (("images", 3, split["images"]), ("labels", 1, split["labels"])):
        name = f"{prefix}-{kind}-idx{dims}-ubyte{suffix}"
        data = encode_idx(array, compress=compress)
        (folder / name).write_bytes(data)
        sums[name] = hashlib.sha256(data).hexdigest()
    return sums


def dataset(source: str, prefix: str = "train", suffix: str = ".gz", **kwargs) -> MNISTIDXDataset:
    return MNISTIDXDataset(
        images=f"{source}/{prefix}-images-idx3-ubyte{suffix}",
        labels=f"{source}/{prefix}-labels-idx1-ubyte{suffix}",
        **kwargs,
    )


@pytest.mark.parametrize("compress", [True, False])
def test_loads_a_split(tmp_path, small_split, compress):
    sums = write_split(tmp_path / "src", small_split, compress=compress)
    loaded = dataset(str(tmp_path / "src"), suffix=".gz" if compress else "", checksums=sums).load()
    np.testing.assert_array_equal(loaded["images"], small_split["images"])
    np.testing.assert_array_equal(loaded["labels"], small_split["labels"])
    assert loaded["images"].dtype == np.uint8 and loaded["images"].flags.writeable


def test_caches_verified_files_and_reads_cache_afterwards(tmp_path, small_split):
    sums = write_split(tmp_path / "src", small_split)
    cache = tmp_path / "cache"
    dataset(str(tmp_path / "src"), checksums=sums, cache_dir=str(cache)).load()
    assert sorted(p.name for p in cache.iterdir()) == sorted(sums)
    # With the source gone, the cache alone serves the split.
    for file in (tmp_path / "src").iterdir():
        file.unlink()
    loaded = dataset(str(tmp_path / "src"), checksums=sums, cache_dir=str(cache)).load()
    np.testing.assert_array_equal(loaded["labels"], small_split["labels"])


def test_checksum_mismatch_is_refused_and_not_cached(tmp_path, small_split):
    sums = write_split(tmp_path / "src", small_split)
    sums["train-images-idx3-ubyte.gz"] = "0" * 64
    cache = tmp_path / "cache"
    with pytest.raises(
        ChecksumMismatchError,
        match=r"train-images-idx3-ubyte\.gz: SHA-256 mismatch, expected 0{64}",
    ):
        dataset(str(tmp_path / "src"), checksums=sums, cache_dir=str(cache)).load()
    assert not cache.exists() or not any(cache.iterdir())


def test_corrupt_cached_file_is_fetched_again(tmp_path, small_split):
    sums = write_split(tmp_path / "src", small_split)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "train-images-idx3-ubyte.gz").write_bytes(b"garbage")
    loaded = dataset(str(tmp_path / "src"), checksums=sums, cache_dir=str(cache)).load()
    assert len(loaded["images"]) == 200
    assert (
        hashlib.sha256((cache / "train-images-idx3-ubyte.gz").read_bytes()).hexdigest()
        == sums["train-images-idx3-ubyte.gz"]
    )


def test_truncated_gzip_without_checksum_is_refused_and_not_cached(tmp_path, small_split):
    write_split(tmp_path / "src", small_split)
    path = tmp_path / "src/train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:500])
    cache = tmp_path / "cache"
    with pytest.raises(
        DatasetError, match=r"train-images-idx3-ubyte\.gz: the gzip stream is truncated"
    ):
        dataset(str(tmp_path / "src"), cache_dir=str(cache)).load()
    assert not cache.exists() or not any(cache.iterdir())


def test_images_and_labels_swapped(tmp_path, small_split):
    write_split(tmp_path / "src", small_split)
    ds = MNISTIDXDataset(
        images=str(tmp_path / "src/train-labels-idx1-ubyte.gz"),
        labels=str(tmp_path / "src/train-images-idx3-ubyte.gz"),
    )
    with pytest.raises(
        DatasetError,
        match=r"train-labels-idx1-ubyte\.gz: wrong magic number 0x00000801, expected 0x00000803",
    ):
        ds.load()


def test_count_mismatch_names_both_files(tmp_path, small_split):
    write_split(tmp_path / "src", small_split)
    write_split(tmp_path / "other", make_split(150), prefix="train")
    ds = MNISTIDXDataset(
        images=str(tmp_path / "src/train-images-idx3-ubyte.gz"),
        labels=str(tmp_path / "other/train-labels-idx1-ubyte.gz"),
    )
    with pytest.raises(
        DatasetError,
        match=(
            r"train-images-idx3-ubyte\.gz holds 200 images but "
            r"train-labels-idx1-ubyte\.gz holds 150 labels"
        ),
    ):
        ds.load()


def test_label_out_of_range(tmp_path, small_split):
    small_split["labels"][7] = 11
    write_split(tmp_path / "src", small_split)
    with pytest.raises(DatasetError, match="label 11 at index 7 is not a digit"):
        dataset(str(tmp_path / "src")).load()


def test_wrong_image_size(tmp_path):
    write_split(tmp_path / "src", make_split(20, size=32))
    with pytest.raises(DatasetError, match=r"dimensions 20 × 32 × 32, expected N × 28 × 28"):
        dataset(str(tmp_path / "src")).load()


def test_missing_file(tmp_path):
    with pytest.raises(
        DatasetError, match=r"Could not read .*train-images-idx3-ubyte\.gz: FileNotFoundError"
    ):
        dataset(str(tmp_path / "nowhere")).load()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_source(tmp_path):
    url = f"http://127.0.0.1:{_free_port()}/mnist"
    with pytest.raises(DatasetError, match=rf"Could not read {url}/train-images-idx3-ubyte\.gz"):
        dataset(url, cache_dir=str(tmp_path / "cache")).load()


@pytest.fixture
def http_source(tmp_path, small_split):
    """A real HTTP server over a folder of IDX files, counting GET requests."""
    folder = tmp_path / "served"
    sums = write_split(folder, small_split)
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(folder))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", sums, requests
    server.shutdown()
    server.server_close()


def test_http_source_is_downloaded_once(tmp_path, http_source, small_split):
    url, sums, requests = http_source
    cache = tmp_path / "cache"
    first = dataset(url, checksums=sums, cache_dir=str(cache)).load()
    fetched = [r for r in requests if r.endswith(".gz")]
    assert sorted(fetched) == ["/train-images-idx3-ubyte.gz", "/train-labels-idx1-ubyte.gz"]
    requests.clear()
    second = dataset(url, checksums=sums, cache_dir=str(cache)).load()
    assert [r for r in requests if r.endswith(".gz")] == []
    np.testing.assert_array_equal(first["images"], second["images"])


def test_raw_files_are_read_only(tmp_path, small_split):
    ds = dataset(str(tmp_path / "out"))
    with pytest.raises(DatasetError, match="read-only"):
        ds.save(small_split)
    assert not (tmp_path / "out").exists()


def test_describe_never_shows_credentials(tmp_path):
    ds = dataset(str(tmp_path), credentials={"account_key": "s3cr3t-value"})
    assert "s3cr3t-value" not in repr(ds) and "s3cr3t-value" not in str(ds._describe())
