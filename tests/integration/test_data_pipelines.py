"""Ingestion and preprocessing through a real Kedro session on the real MNIST files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from mnist_pipeline.datasets import read_image_shards
from tests.mlflow_stores import empty_store

pytestmark = pytest.mark.integration

# Images per digit 0–9 in the canonical files (shared/data/mnist/README.md).
TRAIN_PER_DIGIT = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_PER_DIGIT = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _run(project_root, env: dict[str, str], pipelines: list[str]) -> None:
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        bootstrap_project(project_root)
        for pipeline in pipelines:
            with KedroSession.create(project_path=project_root, env="azure") as session:
                session.run(pipeline_names=[pipeline])


def _env(source, data_root, scratch) -> dict[str, str]:
    return {
        "MNIST_SOURCE": str(source),
        "MNIST_DATA_ROOT": str(data_root),
        "MNIST_CACHE_DIR": str(data_root / "01_raw/mnist"),
        # --env azure tracks into the sandbox store: keep it out of the project.
        "MLFLOW_SANDBOX_TRACKING_URI": empty_store(scratch / "sandbox.db"),
        "MLFLOW_SANDBOX_ARTIFACT_LOCATION": str(scratch / "sandbox-artifacts"),
    }


@pytest.fixture(scope="module")
def azure_run(tmp_path_factory, real_mnist_dir, project_root):
    """``kedro run --env azure`` of ingestion then preprocessing into a tmp data root."""
    root = tmp_path_factory.mktemp("run")
    _run(project_root, _env(real_mnist_dir, root / "data", root), ["ingestion", "preprocessing"])
    return root / "data"


def test_raw_files_are_verified_and_cached(azure_run, real_mnist_dir):
    cached = sorted(p.name for p in (azure_run / "01_raw/mnist").iterdir())
    assert cached == sorted(p.name for p in real_mnist_dir.glob("*.gz"))
    for name in cached:
        assert (azure_run / "01_raw/mnist" / name).read_bytes() == (
            real_mnist_dir / name
        ).read_bytes()


def test_data_report_counts_every_image(azure_run):
    summary = pd.read_csv(azure_run / "08_reporting/mnist_class_summary.csv")
    assert summary["train_images"].tolist() == TRAIN_PER_DIGIT
    assert summary["test_images"].tolist() == TEST_PER_DIGIT
    pixels = json.loads((azure_run / "08_reporting/mnist_pixel_statistics.json").read_text())
    assert pixels["train"]["num_images"] == 60_000 and pixels["test"]["num_images"] == 10_000
    assert (pixels["train"]["min"], pixels["train"]["max"]) == (0, 255)
    for plot in ("mnist_class_balance.png", "mnist_samples.png"):
        assert (azure_run / "08_reporting" / plot).read_bytes()[:4] == b"\x89PNG"


def test_model_input_splits(azure_run):
    fingerprint = json.loads((azure_run / "05_model_input/fingerprint.json").read_text())
    sizes = {name: split["num_examples"] for name, split in fingerprint["splits"].items()}
    assert sizes == {"train": 55_000, "validation": 5_000, "test": 10_000}
    # Stratified: the validation split keeps each digit's share of the 60,000 to within one image.
    expected = np.array(TRAIN_PER_DIGIT) * 5_000 / 60_000
    assert (
        np.abs(np.array(fingerprint["splits"]["validation"]["label_counts"]) - expected).max() <= 1
    )
    assert fingerprint["splits"]["test"]["label_counts"] == TEST_PER_DIGIT

    images, labels = read_image_shards(str(azure_run / "05_model_input/test"))
    assert images.shape == (10_000, 28, 28, 1) and images.dtype == np.float32
    assert images.min() == 0.0 and images.max() == 1.0
    assert np.bincount(labels).tolist() == TEST_PER_DIGIT


def test_second_run_reads_the_cache_and_reproduces_the_fingerprint(
    azure_run, project_root, tmp_path
):
    """With the source gone, a second run serves itself from the cache, identically."""
    before = json.loads((azure_run / "05_model_input/fingerprint.json").read_text())
    env = _env(tmp_path / "no-such-source", azure_run, tmp_path)
    _run(project_root, env, ["ingestion", "preprocessing"])
    after = json.loads((azure_run / "05_model_input/fingerprint.json").read_text())
    assert after["model_input"] == before["model_input"]
