"""Serving the promoted model over REST (TensorFlow Serving's JSON contract).

* :mod:`.model`      a registered version (pinned by :mod:`mnist_pipeline.registry`) → Keras
* :mod:`.contract`   the request/answer bodies and their validation
* :mod:`.predictor`  the compiled model behind a batching worker thread
* :mod:`.app`        the HTTP routes (Starlette on uvicorn)
* :mod:`.server`     start/stop: foreground for users, child process for checks
* :mod:`.validation` validate a model in a real server before calling it deployable
"""

from .model import ModelLoadError, load_keras_model
from .server import ServerProcess, ServerSettings, ServerStartError, run_server
from .validation import validate_in_server

__all__ = [
    "ModelLoadError",
    "ServerProcess",
    "ServerSettings",
    "ServerStartError",
    "load_keras_model",
    "run_server",
    "validate_in_server",
]
