"""Evaluation plots are built with matplotlib's object API, like ingestion's: no pyplot state."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from mnist_pipeline.pipelines.evaluation import nodes


def test_plots_leave_no_figure_in_pyplot():
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(10), size=40)
    test = {
        "images": rng.integers(0, 256, (40, 28, 28), dtype=np.uint8),
        "labels": np.arange(40) % 10,
    }
    before = plt.get_fignums()
    figures = [
        nodes.plot_confusion_matrix(probabilities, test),
        nodes.plot_training_curves(
            {
                "loss": [0.5, 0.3],
                "val_loss": [0.4, 0.35],
                "accuracy": [0.9, 0.95],
                "val_accuracy": [0.91, 0.94],
            }
        ),
    ]
    assert all(isinstance(figure, Figure) for figure in figures)
    assert plt.get_fignums() == before  # nothing registered with pyplot
    assert "import matplotlib.pyplot" not in Path(nodes.__file__).read_text()
