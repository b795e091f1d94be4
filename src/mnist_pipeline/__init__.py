"""mnist-pipeline: MNIST from raw IDX files to a served, versioned REST endpoint."""

__version__ = "0.1.0"
