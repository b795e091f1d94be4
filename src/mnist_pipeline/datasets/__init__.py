"""Custom Kedro datasets for the formats kedro-datasets has no dataset for."""

from .image_shards import ImageShards, ImageShardsDataset, read_image_shards
from .keras_model import KerasModelDataset
from .mnist_idx_dataset import ChecksumMismatchError, MNISTIDXDataset

__all__ = [
    "ChecksumMismatchError",
    "ImageShards",
    "ImageShardsDataset",
    "KerasModelDataset",
    "MNISTIDXDataset",
    "read_image_shards",
]
