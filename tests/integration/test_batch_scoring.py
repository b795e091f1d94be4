"""Batch scoring for real: ``kedro run --env gcp --pipelines batch_scoring`` on ``local[2]``
Spark, and the same job on a standalone two-worker cluster, with a real model trained on
real MNIST and registered with the project's pyfunc."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from mnist_pipeline.datasets.image_shards import write_image_shards
from mnist_pipeline.scoring import spark as scoring_spark
from mnist_pipeline.scoring.inputs import list_inputs
from mnist_pipeline.scoring.model import pin_model
from mnist_pipeline.scoring.output import MANIFEST, read_scores
from tests.client.render import render
from tests.integration.spark_cluster import StandaloneCluster
from tests.scoring.real_model import production_model
from tests.training.conftest import spark_session

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TEST_IMAGES = 2000  # a slice of the real test set, as model-input shards


@pytest.fixture(scope="module")
def model(tmp_path_factory, real_mnist_dir):
    return production_model(tmp_path_factory, real_mnist_dir)


@pytest.fixture(scope="module")
def test_shards(model, tmp_path_factory):
    """The first test images as the preprocessing pipeline writes them: float32 in [0, 1]."""
    folder = tmp_path_factory.mktemp("model_input") / "test"
    images = model.test["images"][:TEST_IMAGES].astype(np.float32) / 255.0
    write_image_shards(str(folder), images, model.test["labels"][:TEST_IMAGES], num_shards=2)
    return folder


def test_kedro_run_scores_the_test_shards_on_local_spark(
    model, test_shards, project_root, tmp_path
):
    output = tmp_path / "scores"
    variables = {
        "MLFLOW_PRODUCTION_TRACKING_URI": model.registry_uri,
        "MLFLOW_PRODUCTION_REGISTRY_URI": model.registry_uri,
        "MLFLOW_PRODUCTION_ARTIFACT_LOCATION": str(tmp_path / "run-artifacts"),
        "MNIST_DATA_ROOT": str(tmp_path / "data"),
        "BATCH_SCORING_INPUT": str(test_shards),
        "BATCH_SCORING_OUTPUT": str(output),
        "SPARK_MASTER": "local[2]",
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in variables.items():
            patch.setenv(key, value)
        bootstrap_project(project_root)
        with KedroSession.create(project_path=project_root, env="gcp") as session:
            session.run(pipeline_names=["batch_scoring"])
            run_id = mlflow.last_active_run().info.run_id

    scores = read_scores(str(output)).to_pandas()
    labels = model.test["labels"][:TEST_IMAGES]
    assert len(scores) == TEST_IMAGES and scores["error"].isna().all()
    assert (scores["label"].to_numpy() == labels).all()  # every shard row, in order
    accuracy = float((scores["digit"] == scores["label"]).mean())
    assert accuracy >= 0.97, accuracy
    assert set(scores["model_version"]) == {model.version}
    assert set(scores["model_name"]) == {"mnist_cnn"}
    probabilities = np.stack(scores["probabilities"].to_numpy())
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    np.testing.assert_array_equal(probabilities.argmax(axis=1), scores["digit"])

    manifest = json.loads((output / MANIFEST).read_text())
    assert manifest["model"]["version"] == model.version
    assert manifest["summary"]["scored"] == TEST_IMAGES and manifest["summary"]["failed"] == 0
    assert sum(manifest["summary"]["per_digit"].values()) == TEST_IMAGES
    assert manifest["summary"]["accuracy"] == pytest.approx(accuracy)
    assert sorted(f["file"] for f in manifest["files"]) == sorted(
        p.name for p in output.glob("part-*.parquet")
    )
    summary = (tmp_path / "data/08_reporting/batch_scoring_summary.txt").read_text()
    assert f"{TEST_IMAGES} scored, 0 failed" in summary
    logged = mlflow.MlflowClient(tracking_uri=model.registry_uri).get_run(run_id).data.metrics
    assert logged["batch_scoring.scored"] == TEST_IMAGES
    assert logged["batch_scoring.accuracy"] == pytest.approx(accuracy)


@pytest.fixture(scope="module")
def cluster_spark(tmp_path_factory):
    cluster = StandaloneCluster(tmp_path_factory.mktemp("spark-cluster"), workers=2).start()
    spark = spark_session(
        cluster.master_url, app="batch-scoring-cluster-tests", reuse_workers=True
    )  # as the project runs batch scoring (conf/base/spark.yml)
    yield cluster, spark
    spark.stop()
    cluster.close()


@pytest.fixture(scope="module")
def photo_folder(model, tmp_path_factory):
    """Real test digits as PNG/JPEG photos (dark ink on paper), plus two unreadable files."""
    folder = tmp_path_factory.mktemp("photos")
    for index in range(40):
        image = render(model.test["images"][index])
        suffix = "png" if index % 2 else "jpg"
        image.save(folder / f"digit-{index:03d}-label-{model.test['labels'][index]}.{suffix}")
    (folder / "readme.txt").write_text("not an image")
    (folder / "truncated.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return folder


def test_two_worker_cluster_scores_photos_and_keeps_bad_files_as_error_rows(
    model, photo_folder, cluster_spark, tmp_path
):
    cluster, spark = cluster_spark
    output = tmp_path / "scores"
    items = list_inputs(str(photo_folder))
    pinned = pin_model(model.name, model.alias, model.registry_uri)
    try:
        manifest = scoring_spark.run_scoring_job(
            spark, items, pinned, model.registry_uri, output=str(output),
            batch_size=16, images_per_partition=21,
        )  # fmt: skip
    except Exception:
        print(cluster.executor_logs())
        raise
    scores = read_scores(str(output)).to_pandas()
    assert len(scores) == 42 and manifest["summary"]["failed"] == 2
    errors = scores[scores["error"].notna()]
    assert sorted(errors["path"].str.rsplit("/", n=1).str[1]) == ["readme.txt", "truncated.png"]
    good = scores[scores["error"].isna()]
    truth = good["path"].str.extract(r"label-(\d)")[0].astype(int)
    assert float((good["digit"] == truth).mean()) >= 0.9  # photos through the MNIST convention
    # Both executors took part (one partition of 21 files each).
    assert manifest["partitions"] == 2
    assert len(list(cluster.folder.glob("work/app-*/*/stderr"))) >= 2

    # A job that fails after its executors wrote their parts leaves the last output whole.
    def failing_commit(*args, **kwargs):
        raise OSError("storage went away")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(scoring_spark, "commit", failing_commit)
        with pytest.raises(OSError, match="storage went away"):
            scoring_spark.run_scoring_job(
                spark, items[:5], pinned, model.registry_uri, output=str(output)
            )
    assert sorted(p.name for p in output.iterdir()) == sorted(
        [MANIFEST, *(entry["file"] for entry in manifest["files"])]
    )
    assert len(read_scores(str(output))) == 42
