from tests.serving.fixtures import model_server, registered  # noqa: F401
