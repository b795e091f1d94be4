"""Empty MLflow SQLite stores for tests, copied from one template migrated once per run.

MLflow creates a SQLite store by running every schema migration (about 70): some 2 s of CPU
each time, and the suite makes dozens of stores. A test that only needs an empty store
copies the template instead. Tests that prove a fresh machine gets its stores created on
first use (``make run``'s embedded defaults) keep making their own.

The template holds no experiment: MLflow creates the default one (id 0) when it first
opens a copy, with the artifact root of whoever opens it, as it does for a new store.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import built_once

_FOLDER: dict[str, pytest.TempPathFactory] = {}


def use_tmp_path_factory(factory: pytest.TempPathFactory) -> None:
    """Where the template is built (called once per session by ``tests/conftest.py``)."""
    _FOLDER["factory"] = factory


def _build(folder: Path) -> None:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    path = folder / "empty.db"
    store = SqlAlchemyStore(f"sqlite:///{path}", (folder / "artifacts").as_uri())
    store.engine.dispose()
    with sqlite3.connect(path) as db:  # the default experiment is made again on open
        db.execute("DELETE FROM experiments")


def empty_store(path: Path) -> str:
    """An empty, migrated MLflow store at ``path`` (kept if one is there); its ``sqlite:///`` URI.

    Outside a pytest session (no template folder) nothing is copied: MLflow makes the store.
    """
    path = Path(path)
    factory = _FOLDER.get("factory")  # None outside pytest: MLflow creates the store itself
    if factory is not None and not path.exists():
        template = built_once(factory, "mlflow-empty-store", _build) / "empty.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, path)
    return f"sqlite:///{path}"
