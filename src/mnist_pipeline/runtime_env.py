"""Process-wide defaults every entry point applies before TensorFlow, MLflow or Spark start.

Only *defaults*: a variable the user (or a cluster) already set is never changed.

* MLflow's INFO lines ("Creating initial MLflow database tables...") go with
  ``MLFLOW_LOGGING_LEVEL=WARNING``; its warnings and errors stay.
* TensorFlow's C++ start-up lines (``cpu_feature_guard``) are INFO lines of its C++ logger:
  ``TF_CPP_MIN_LOG_LEVEL=1`` keeps its warnings and errors. TensorFlow 2.21 prints two lines
  through absl before its logging is set up, which no variable silences: absl's
  ``All log messages before absl::InitializeLog() ...`` and ``oneDNN custom operations are on``.
* Spark's "Your hostname resolves to a loopback address … set SPARK_LOCAL_IP" hint: a local
  master (``local``, ``local[*]``, ``local-cluster[...]``) or a master on 127.0.0.1 binds to
  loopback anyway, so ``SPARK_LOCAL_IP=127.0.0.1`` is the right default there. On a real
  cluster (any other host, ``yarn``, ``k8s://``, Databricks) nothing is set.
* The venv's own tools: ``kedro mlflow ui`` runs ``mlflow`` and ``mlflow models serve`` runs
  ``uvicorn`` by name, found on ``PATH``; the interpreter's ``bin`` folder goes first on
  ``PATH`` so ``.venv/bin/kedro ...`` works without activating the venv.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import MutableMapping
from pathlib import Path

LOOPBACK = "127.0.0.1"
_LOCAL_MASTER = re.compile(r"^local(-cluster)?(\[.*\])?$")
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost"}


def quiet_native_logs(environ: MutableMapping[str, str] = os.environ) -> None:
    """Hide TensorFlow's C++ INFO start-up lines and MLflow's INFO chatter.

    Must run before TensorFlow and MLflow are imported: TensorFlow reads its variable when
    its C++ runtime loads, and MLflow configures its own ``mlflow`` logger on import (so
    ``conf/logging.yml`` cannot set its level).
    """
    environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")


def is_loopback_master(master: str) -> bool:
    """``local[...]``, ``local-cluster[...]`` or a master URL whose host is 127.0.0.1."""
    master = (master or "").strip()
    if _LOCAL_MASTER.match(master):
        return True
    match = re.match(r"^[a-z0-9+.-]+://([^/:,]+)", master)
    return bool(match) and match.group(1) in _LOOPBACK_HOSTS


def default_spark_local_ip(master: str, environ: MutableMapping[str, str] = os.environ) -> bool:
    """Set ``SPARK_LOCAL_IP=127.0.0.1`` when it is unset and ``master`` is on this machine.

    Returns whether it was set. Never applies to a real cluster's master.
    """
    if environ.get("SPARK_LOCAL_IP") or not is_loopback_master(master):
        return False
    environ["SPARK_LOCAL_IP"] = LOOPBACK
    return True


#: Set by Databricks Runtime on its clusters (e.g. "15.4"): the runtime owns the SparkContext.
DATABRICKS_RUNTIME = "DATABRICKS_RUNTIME_VERSION"


def runtime_owns_spark(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Whether a Databricks runtime owns this process's Spark session (its variable
    ``DATABRICKS_RUNTIME_VERSION`` is set): it created the SparkContext, the job's tasks
    share it, and it must not be stopped."""
    return bool(environ.get(DATABRICKS_RUNTIME, "").strip())


def venv_bin_on_path(environ: MutableMapping[str, str] = os.environ) -> None:
    """Put the running interpreter's ``bin`` folder first on ``PATH`` (if not already on it)."""
    bin_dir = str(Path(sys.executable).parent)
    parts = environ.get("PATH", "").split(os.pathsep) if environ.get("PATH") else []
    if bin_dir not in parts:
        environ["PATH"] = os.pathsep.join([bin_dir, *parts])


def apply_defaults(environ: MutableMapping[str, str] = os.environ) -> None:
    """What every entry point applies first (``settings.py``; Spark's part is per master)."""
    quiet_native_logs(environ)
    venv_bin_on_path(environ)
