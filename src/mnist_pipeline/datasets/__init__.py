"""Custom Kedro datasets for the formats kedro-datasets has no dataset for."""

from .image_shards import ImageShards, ImageShardsDataset, read_image_shards
from .mnist_idx_dataset import ChecksumMismatchError, MNISTIDXDataset

__all__ = [
    "ChecksumMismatchError",
    "ImageShards",
    "ImageShardsDataset",
    "MNISTIDXDataset",
    "read_image_shards",
]
