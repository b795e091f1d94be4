"""Evaluation nodes on a tiny model trained for real on a slice of MNIST."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from mnist_pipeline.pipelines.evaluation import nodes


@pytest.fixture(scope="module")
def evaluated(tiny_model, mnist_slices):
    model, _ = tiny_model
    test = mnist_slices["test"]
    return model, test, nodes.predict_test_set(model, test, {"batch_size": 256})


def test_metrics_agree_with_keras_on_the_scaled_images(evaluated):
    model, test, probabilities = evaluated
    metrics = nodes.compute_metrics(probabilities, test)
    # Keras' own metrics on the node's probabilities. model.evaluate is not the reference:
    # its batched float32 forward pass can flip a near-tie of a barely trained model, and
    # its returned accuracy was seen off the k/1000 grid in CI (0.8323 for 1000 images).
    accuracy = keras.metrics.SparseCategoricalAccuracy()
    accuracy.update_state(test["labels"], probabilities)
    loss = keras.losses.SparseCategoricalCrossentropy()(test["labels"], probabilities)
    assert metrics["test_accuracy"] == pytest.approx(float(accuracy.result()), abs=1e-6)
    assert metrics["test_loss"] == pytest.approx(float(loss), rel=1e-3)
    # The probabilities are the model's own on the scaled images (uint8 in, [0, 1] inside).
    direct = model.predict(test["images"][..., np.newaxis].astype(np.float32), verbose=0)
    np.testing.assert_allclose(probabilities, direct, atol=1e-4)
    assert 0.5 < metrics["test_accuracy"] < 1.0  # it learned; far above chance (0.1)
    assert metrics["test_images"] == len(test["labels"])
    assert nodes.metrics_for_mlflow(metrics)["test_accuracy"] == {
        "value": metrics["test_accuracy"],
        "step": 0,
    }


def test_per_class_report_counts_each_digit(evaluated):
    _, test, probabilities = evaluated
    report = nodes.per_class_report(probabilities, test)
    assert list(report["digit"]) == list(range(10))
    assert report["support"].sum() == len(test["labels"])
    predicted = probabilities.argmax(axis=1)
    digit = 3
    recall = (predicted[test["labels"] == digit] == digit).mean()
    assert report.loc[digit, "recall"] == pytest.approx(recall, abs=1e-4)


def test_plots_show_the_matrix_the_mistakes_and_the_curves(evaluated, tiny_model):
    _, test, probabilities = evaluated
    wrong = int((probabilities.argmax(axis=1) != test["labels"]).sum())
    matrix = nodes.plot_confusion_matrix(probabilities, test)
    assert f"({len(test['labels'])} test images)" in matrix.axes[0].get_title()
    grid = nodes.plot_misclassified(probabilities, test, {"max_misclassified": 12})
    titled = [a.get_title() for a in grid.axes if a.get_title()]
    assert len(titled) == min(12, wrong)
    assert all(t.startswith("pred ") and "true " in t for t in titled)
    assert f"Misclassified: {wrong} of {len(test['labels'])}" in grid._suptitle.get_text()
    curves = nodes.plot_training_curves(tiny_model[1])
    assert [line.get_label() for line in curves.axes[0].lines] == ["loss", "val_loss"]


def test_a_model_of_the_wrong_contract_is_refused(mnist_slices):
    inputs = keras.Input((28, 28, 1))
    wrong = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(inputs)))
    with pytest.raises(ValueError, match=r"\(N, 10\) probabilities, returned \(1000, 3\)"):
        nodes.predict_test_set(wrong, mnist_slices["test"], {"batch_size": 256})


def test_outcome_gives_accuracy_loss_and_f1():
    """The stage's line in the run's log (moved from tests/test_run_summary.py)."""
    metrics = {"test_accuracy": 0.9921, "test_loss": 0.0254, "test_macro_f1": 0.992}
    metrics["test_images"] = 10000
    assert nodes.outcome({"evaluation_metrics": metrics}) == (
        "evaluation: test accuracy 99.21 % on 10,000 images (loss 0.0254, macro F1 0.9920)"
    )
    assert nodes.outcome({"test_probabilities": np.zeros((1, 10))}) is None


def test_macro_figures_weigh_every_digit_the_same_however_rare():
    """910 zeros all right, ten of each other digit, the ten 1s all read as 0: the macro
    recall is 0.9 (one digit of ten never found), not the 0.99 that weighting by support
    (or accuracy) would give; each macro figure is the mean of the per-class report's."""
    labels = np.array([0] * 910 + [digit for digit in range(1, 10) for _ in range(10)])
    predicted = np.where(labels == 1, 0, labels)
    probabilities = np.eye(10, dtype=np.float32)[predicted] * 0.9 + 0.01
    test = {"labels": labels.astype(np.uint8)}
    metrics = nodes.compute_metrics(probabilities, test)
    assert metrics["test_accuracy"] == pytest.approx(0.99)
    assert metrics["test_macro_recall"] == pytest.approx(0.9)
    assert metrics["test_macro_precision"] == pytest.approx((910 / 920 + 8) / 10)
    report = nodes.per_class_report(probabilities, test)
    for figure in ("precision", "recall", "f1"):
        assert metrics[f"test_macro_{figure}"] == pytest.approx(report[figure].mean(), abs=1e-4)
