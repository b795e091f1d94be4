"""The trained Keras model: kedro-datasets' ``TensorFlowModelDataset``, created on first use.

kedro-mlflow's ``after_catalog_created`` hook builds every dataset of the catalog when a
session starts, and importing ``kedro_datasets.tensorflow`` imports TensorFlow: about 10 s
of CPU here, in every ``kedro run``, ``kedro viz`` and notebook kernel. A run whose nodes
never touch the model (ingestion, preprocessing, monitoring, batch scoring) should not pay
it, so this dataset keeps its arguments and makes the real one when the model is loaded,
saved or looked for.
"""

from __future__ import annotations

from typing import Any

from kedro.io import AbstractDataset


class KerasModelDataset(AbstractDataset[Any, Any]):
    """``tensorflow.TensorFlowModelDataset`` with TensorFlow imported on first use.

    Same arguments (``filepath`` on any fsspec location, ``load_args``, ``save_args``,
    ``credentials``, ``fs_args``); not versioned (the model's versions live in MLflow).

    Example:
        >>> dataset = KerasModelDataset(filepath="data/06_models/mnist_cnn.keras")
        >>> "tensorflow" in dataset._describe()["wraps"]
        True
    """

    def __init__(
        self,
        *,
        filepath: str,
        load_args: dict[str, Any] | None = None,
        save_args: dict[str, Any] | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._arguments = {
            "filepath": filepath,
            "load_args": load_args,
            "save_args": save_args,
            "credentials": credentials,
            "fs_args": fs_args,
        }
        self.metadata = metadata
        self._dataset: AbstractDataset | None = None

    def _wrapped(self) -> AbstractDataset:
        if self._dataset is None:
            from kedro_datasets.tensorflow import TensorFlowModelDataset

            self._dataset = TensorFlowModelDataset(**self._arguments)
        return self._dataset

    def load(self) -> Any:
        return self._wrapped().load()

    def save(self, data: Any) -> None:
        self._wrapped().save(data)

    def _exists(self) -> bool:
        return self._wrapped().exists()

    def _release(self) -> None:
        if self._dataset is not None:
            self._dataset.release()

    def _describe(self) -> dict[str, Any]:
        # Never the credentials.
        return {
            "filepath": self._arguments["filepath"],
            "load_args": self._arguments["load_args"],
            "save_args": self._arguments["save_args"],
            "wraps": "tensorflow.TensorFlowModelDataset",
        }
