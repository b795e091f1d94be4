"""The guard of what the project patches or subclasses in other libraries (versions.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mnist_pipeline.versions import UnsupportedVersionError, require


def test_require_takes_the_range_and_refuses_outside_it_by_name():
    require("uvicorn", "0.54.0", ("0.54", "0.56"), user="m")
    require("uvicorn", "0.55.3", ("0.54", "0.56"), user="m")
    for version in ("0.53.9", "0.56.0", "0.56.0rc1", "1.0"):
        with pytest.raises(UnsupportedVersionError) as error:
            require("uvicorn", version, ("0.54", "0.56"), user="serving.guards", note="tested")
        message = str(error.value)
        assert f"uvicorn {version} is not supported by serving.guards" in message
        assert "uvicorn >=0.54, <0.56: tested" in message


def test_the_installed_uvicorn_and_mlflow_are_in_their_ranges_and_others_are_refused(
    monkeypatch, tmp_path: Path
):
    import mlflow
    import uvicorn

    from mnist_pipeline.registry import model_env
    from mnist_pipeline.serving import guards

    guards.guarded_protocol(1.0, 1.0, 1024)  # what requirements.lock installs
    monkeypatch.setattr(uvicorn, "__version__", "0.29.0")
    with pytest.raises(UnsupportedVersionError, match=r"uvicorn 0\.29\.0 .* <0\.56"):
        guards.guarded_protocol(1.0, 1.0, 1024)
    monkeypatch.setattr(mlflow, "__version__", "3.18.0")
    with pytest.raises(UnsupportedVersionError, match=r"mlflow 3\.18\.0 .* >=3\.17, <3\.18"):
        model_env.env_dir(tmp_path / "model", tmp_path / "envs")
