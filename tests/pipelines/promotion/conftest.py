from tests.registry.tiny_model import mnist_slices, tiny_model  # noqa: F401
