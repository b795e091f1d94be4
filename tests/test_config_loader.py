"""Runtime parameters (``--params``) change single keys, whichever environment set the section."""

from __future__ import annotations

from pathlib import Path

import yaml

from mnist_pipeline import settings
from mnist_pipeline.parameters import validate
from tests.conftest import PROJECT_ROOT


def _parameters(conf: Path, env: str, runtime: dict | None = None) -> dict:
    loader = settings.CONFIG_LOADER_CLASS(
        conf_source=str(conf), env=env, runtime_params=runtime, **settings.CONFIG_LOADER_ARGS
    )
    return loader["parameters"]


def test_a_runtime_param_of_a_section_the_environment_does_not_set_keeps_its_other_keys():
    """`kedro run --env gcp --params monitoring.fail_on_drift=true` (conf/gcp sets other
    sections): the run used to be refused with monitoring's present keys "missing"."""
    conf = PROJECT_ROOT / "conf"
    configured = _parameters(conf, "gcp")
    merged = _parameters(conf, "gcp", {"monitoring": {"fail_on_drift": True}})
    assert merged["monitoring"] == {**configured["monitoring"], "fail_on_drift": True}
    validate(merged, ["monitoring"])  # no key reported missing
    assert {k: v for k, v in merged.items() if k != "monitoring"} == {
        k: v for k, v in configured.items() if k != "monitoring"
    }


def test_a_runtime_param_of_a_section_the_environment_sets_overrides_that_key_only():
    conf = PROJECT_ROOT / "conf"
    configured = _parameters(conf, "gcp")["serving"]
    merged = _parameters(conf, "gcp", {"serving": {"port": 9000}})["serving"]
    assert merged == {**configured, "port": 9000}


def test_environments_still_replace_top_level_keys_and_runtime_params_go_last(tmp_path):
    for env, parameters in {
        "base": {"a": {"x": 1, "y": 2}, "b": {"p": 1, "q": 2}},
        "prod": {"a": {"x": 10}},
    }.items():
        (tmp_path / env).mkdir()
        (tmp_path / env / "parameters.yml").write_text(yaml.safe_dump(parameters))
    assert _parameters(tmp_path, "prod") == {"a": {"x": 10}, "b": {"p": 1, "q": 2}}
    merged = _parameters(tmp_path, "prod", {"a": {"y": 3}, "b": {"q": 5}, "c": 7})
    assert merged == {"a": {"x": 10, "y": 3}, "b": {"p": 1, "q": 5}, "c": 7}
    assert _parameters(tmp_path, "base", {"b": {"q": 5}}) == {
        "a": {"x": 1, "y": 2},
        "b": {"p": 1, "q": 5},
    }
