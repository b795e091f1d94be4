"""Messages the docs quote are the messages the code prints.

Each quoted message is found in its page and compared with the message the code raises for
the same input; ``...``, ``…`` and ``[...]`` in a quote stand for any text.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
README = PROJECT_ROOT / "README.md"
SERVING = PROJECT_ROOT / "docs" / "serving.md"


def _pattern(quote: str) -> re.Pattern:
    parts = re.split(r"\[\.\.\.\]|\.\.\.|…", quote)
    return re.compile(".*".join(re.escape(part) for part in parts), re.S)


def _row(doc: Path, label: str) -> str:
    """The last backticked cell of the table row that starts with ``| <label> |``."""
    for line in doc.read_text().splitlines():
        if line.startswith(f"| {label} |"):
            return re.findall(r"`([^`]*)`", line)[-1]
    raise AssertionError(f"{doc.name}: no table row '{label}'")


def _contract_error(body: bytes, max_batch: int = 1024) -> str:
    from mnist_pipeline.serving.contract import images_from_request, parse_json

    with pytest.raises(ValueError) as caught:
        images_from_request(parse_json(body), max_batch=max_batch)
    return str(caught.value)


IMAGE = [[0] * 28] * 28
REQUESTS = {
    "not JSON": b"{nope",
    "not an object, none or several of the four bodies": b"[1, 2]",
    "a DataFrame cell that is not an image": json.dumps(
        {"dataframe_split": {"columns": ["image"], "data": [[[0] * 783]]}}
    ).encode(),
    "wrong shape": json.dumps({"instances": [[1, 2, 3]]}).encode(),
    "strings": json.dumps({"instances": [[["a"] * 28] * 28]}).encode(),
    "`NaN`, `Infinity`": (
        '{"instances": [[' + ",".join(["[" + ",".join(["NaN"] * 28) + "]"] * 28) + "]]}"
    ).encode(),
    "outside 0–255": json.dumps({"instances": [[[0] * 27 + [300]] * 28]}).encode(),
    "empty list": json.dumps({"instances": []}).encode(),
    "more than `max_batch_size` images (1024)": json.dumps({"instances": [IMAGE] * 2000}).encode(),
}


@pytest.mark.parametrize("label", sorted(REQUESTS))
def test_serving_docs_quote_the_contracts_messages(label):
    quote = _row(SERVING, label)
    message = _contract_error(REQUESTS[label])
    assert _pattern(quote).fullmatch(message), f"docs: {quote!r}\ncode: {message!r}"


def _troubleshooting(prefix: str) -> str:
    for line in README.read_text().splitlines():
        if line.startswith(f"| `{prefix}"):
            return re.findall(r"`([^`]*)`", line)[0]
    raise AssertionError(f"README troubleshooting: no row quoting {prefix!r}")


def test_readme_quotes_the_offline_error(tmp_path):
    from kedro.io import DatasetError

    from mnist_pipeline.datasets import MNISTIDXDataset

    offline = tmp_path / "offline"
    dataset = MNISTIDXDataset(
        images=f"{offline}/t10k-images-idx3-ubyte.gz",
        labels=f"{offline}/t10k-labels-idx1-ubyte.gz",
    )
    with pytest.raises(DatasetError) as caught:
        dataset.load()
    # What `kedro run` prints (errors.report): "Error: DatasetError: <catalog name>: <message>"
    printed = f"Error: DatasetError: mnist_t10k_raw: {caught.value}"
    quote = _troubleshooting("Error: DatasetError")
    assert _pattern(quote).match(printed.replace(str(offline), "https://…")), (
        f"docs: {quote!r}\ncode: {printed!r}"
    )


def test_readme_quotes_the_gate_refusal():
    from mnist_pipeline.pipelines.promotion.nodes import promote_candidate
    from mnist_pipeline.registry import gate

    params = {
        "mode": "enabled",
        "metric": "test_accuracy",
        "min_accuracy": 0.99,
        "tolerance": 0.002,
        "fail_run_on_refusal": True,
    }
    verdict = gate.decide({"test_accuracy": 0.985}, None, params)
    verdict["candidate_version"] = "3"
    candidate = {"model_name": "mnist_cnn", "version": "3"}
    with pytest.raises(gate.GateRefusedError) as caught:
        promote_candidate(candidate, verdict, {}, {"gate": params})
    printed = f"GateRefusedError: {caught.value}"
    quote = _troubleshooting("GateRefusedError")
    assert _pattern(quote).match(printed), f"docs: {quote!r}\ncode: {printed!r}"


def test_readme_names_every_kedro_viz_tag():
    from kedro.framework.project import configure_project

    from mnist_pipeline.pipeline_registry import register_pipelines

    configure_project("mnist_pipeline")
    pipelines = register_pipelines().values()
    tags = {tag for pipeline in pipelines for node in pipeline.nodes for tag in node.tags}
    text = " ".join(README.read_text().split())
    paragraph = text[text.index("kedro-viz draws") :]
    paragraph = paragraph[paragraph.index("tags nodes") : paragraph.index("The data report")]
    named = set(re.findall(r"`([a-z_]+)`", paragraph))
    assert named == tags, f"README names {sorted(named)}, the pipelines use {sorted(tags)}"
    words = {4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight"}
    assert f"with {words.get(len(tags), len(tags))} tags" in paragraph


def test_extending_lists_the_network_nodes_that_exist():
    import importlib

    text = (PROJECT_ROOT / "docs" / "extending.md").read_text()
    section = text[text.index("## Deliberate exceptions") : text.index("## Checklist")]
    rows = re.findall(r"^\| `(\w+)` \| (.+?) \|", section, re.M)
    assert {stage for stage, _ in rows} == {"promotion", "deploy"}
    for stage, names in rows:
        module = importlib.import_module(f"mnist_pipeline.pipelines.{stage}.nodes")
        for name in re.findall(r"`(\w+)`", names):
            assert callable(getattr(module, name, None)), f"{stage}.nodes has no {name}"
