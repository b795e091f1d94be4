"""The production model for a batch job: pinned once on the driver, loaded once per executor worker.

``models:/<name>@<alias>`` is resolved on the driver to one version (an alias can move
while a job runs; every row names the version that scored it). The driver downloads that
version's files once and ships them to the executors as one archive with
``SparkContext.addFile``, so executors need no access to the registry and no registry
credentials. Each Python worker unpacks the archive once and keeps the loaded MLflow
pyfunc for every later batch (:func:`load_shipped_model`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mnist_pipeline.registry.store import resolve_alias

_LOADED: dict[str, Any] = {}


@dataclass(frozen=True)
class PinnedModel:
    """The version a job scores with.

    Attributes:
        name / alias / version: ``models:/<name>@<alias>`` resolved to ``version``.
        model_uri: ``models:/<name>/<version>``.
        registry_uri: the registry, password removed (safe to log).
    """

    name: str
    alias: str
    version: str
    model_uri: str
    registry_uri: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def pin_model(name: str, alias: str, registry_uri: str) -> PinnedModel:
    """Resolve ``models:/<name>@<alias>`` in ``registry_uri`` to one version."""
    reference = resolve_alias(name, alias, registry_uri)
    return PinnedModel(
        name=reference.name,
        alias=alias,
        version=reference.version,
        model_uri=reference.model_uri,
        registry_uri=reference.registry_uri,
    )


def archive_model(model_dir: Path, folder: Path, label: str) -> Path:
    """Zip ``model_dir`` into ``folder``; the name holds ``label`` and a content hash."""
    digest = hashlib.sha256()
    files = sorted(path for path in model_dir.rglob("*") if path.is_file())
    for path in files:
        digest.update(str(path.relative_to(model_dir)).encode())
        digest.update(path.read_bytes())
    archive = folder / f"mnist-model-{label}-{digest.hexdigest()[:12]}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as bundle:
        for path in files:
            bundle.write(path, path.relative_to(model_dir))
    return archive


def load_model_folder(model_dir: str | Path) -> Any:
    """The MLflow pyfunc in ``model_dir``, loaded once per process."""
    key = str(model_dir)
    if key not in _LOADED:
        import mlflow

        _LOADED[key] = mlflow.pyfunc.load_model(key)
    return _LOADED[key]


def load_shipped_model(archive_name: str) -> Any:
    """In an executor: the pyfunc from the archive the driver shipped (``SparkFiles``).

    Unpacked once per machine into the temporary folder (a file lock keeps two
    workers from unpacking at the same time), loaded once per Python worker.
    """
    if archive_name in _LOADED:
        return _LOADED[archive_name]
    from pyspark import SparkFiles

    archive = Path(SparkFiles.get(archive_name))
    target = Path(tempfile.gettempdir()) / "mnist-scoring-models" / archive.stem
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{target}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not (target / "MLmodel").is_file():
                staging = Path(tempfile.mkdtemp(prefix=f".{archive.stem}.", dir=target.parent))
                with zipfile.ZipFile(archive) as bundle:
                    bundle.extractall(staging)
                with contextlib.suppress(FileNotFoundError):
                    shutil.rmtree(target)
                os.replace(staging, target)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    _LOADED[archive_name] = load_model_folder(target)
    return _LOADED[archive_name]
