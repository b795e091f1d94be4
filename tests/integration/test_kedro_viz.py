"""kedro-viz on the real project: a real ``kedro viz run`` server seen by headless Chromium.

The browser (the system's Chromium, driven by Playwright over its DevTools protocol) waits
for what each test checks: the flowchart's boxes, which the page draws only after its own
request to ``/api/main`` answers.

The server and ``kedro viz build`` run in a scratch copy of the project (``pyproject.toml``,
``conf/`` without personal ``conf/local`` files, ``src/``), so they never write into the
working tree. The screenshot is kept as a test artifact:
``test-artifacts/kedro-viz/flowchart.png`` (git-ignored).
"""

from __future__ import annotations

import base64
import json
import random
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from kedro.framework.project import configure_project

from mnist_pipeline.pipelines.ingestion.nodes import (
    plot_class_balance,
    summarise_classes,
    summarise_pixels,
)
from mnist_pipeline.processes import stop_process_group
from tests.conftest import make_split
from tests.integration.browser import Browser, launch, require_chromium
from tests.integration.scratch_project import project_copy, scratch_environment

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
START_TIMEOUT_S = 180.0  # about 10 s on an idle machine; much more on 2 busy cores
STOP_TIMEOUT_S = 15.0
KEDRO = str(Path(sys.executable).with_name("kedro"))
# Nodes the data scientists look for first; the tests also check every other node.
LANDMARKS = ("validate_train_split", "split_train_validation")
# Datasets kedro-viz draws without a layer: in-memory intermediates and parameters.
UNLAYERED_TYPES = {None, "io.memory_dataset.MemoryDataset"}
# Catalog datasets still without a layer, waiting for their owner (evaluation stage:
# add `metadata: {kedro-viz: {layer: reporting}}` to them, then remove them here).
KNOWN_UNLAYERED: set[str] = set()
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "kedro-viz"
# The flowchart's boxes: one per stage (collapsed, a modular pipeline) or per node.
STAGE_BOX = 'g.pipeline-node[data-node-type="modularPipeline"]'
NODE_BOX = 'g.pipeline-node[data-node-type="task"]'


def _viz_port() -> int:
    """A free port kedro-viz accepts: it refuses ports above 49151 (the OS's ephemeral range
    starts lower, so an OS-picked port will not do) and moves on to the next of five ports
    when one is taken; all five are free here."""

    def free(port: int) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                return False
            return True

    for _ in range(200):
        port = random.randint(20_000, 49_000)
        if all(free(port + offset) for offset in range(5)):
            return port
    raise RuntimeError("no free port for kedro-viz in 20000-49005")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the server's whole process group (kedro viz spawns children)."""
    stop_process_group(process, STOP_TIMEOUT_S)


@pytest.fixture(scope="module")
def registered_pipelines(project_root: Path) -> dict:
    """The project's pipelines as its registry builds them (what kedro-viz must show)."""
    configure_project("mnist_pipeline")
    from mnist_pipeline.pipeline_registry import register_pipelines

    return register_pipelines()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the module's pages (each page gets a fresh context)."""
    with launch(require_chromium()) as started:
        yield started


@pytest.fixture(scope="module")
def viz_scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("kedro-viz")


@pytest.fixture(scope="module")
def data_report(viz_scratch: Path) -> dict:
    """The ingestion report of 200 + 50 generated images, where the catalog looks for it."""
    train, test = make_split(200, seed=1), make_split(50, seed=2)
    reporting = viz_scratch / "data" / "08_reporting"
    reporting.mkdir(parents=True)
    summary = summarise_classes(train, test)
    summary.to_csv(reporting / "mnist_class_summary.csv", index=False)
    pixels = summarise_pixels(train, test)
    (reporting / "mnist_pixel_statistics.json").write_text(json.dumps(pixels))
    plot_class_balance(summary).savefig(reporting / "mnist_class_balance.png")
    return {"summary": summary, "pixels": pixels}


@pytest.fixture(scope="module")
def viz_url(viz_scratch: Path, data_report: dict, project_root: Path) -> Iterator[str]:
    """``kedro viz run --no-browser`` on 127.0.0.1:<free port>, stopped (as a group) after."""
    scratch = viz_scratch
    project = project_copy(project_root, scratch / "project")
    port = _viz_port()
    url = f"http://{HOST}:{port}"
    log_path = scratch / "kedro-viz.log"
    command = [KEDRO, "viz", "run", "--no-browser", "--host", HOST, "--port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=project,
            env=scratch_environment(scratch, project),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped as a whole
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"`{' '.join(command)}` exited with {process.returncode} before answering:\n"
                    + log_path.read_text(errors="replace")[-4000:]
                )
            try:
                if requests.get(f"{url}/api/main", timeout=5).ok:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"kedro viz did not answer {url}/api/main within {START_TIMEOUT_S:.0f} s:\n"
                    + log_path.read_text(errors="replace")[-4000:]
                )
            time.sleep(1)
        yield url
    finally:
        _stop(process)


@pytest.fixture(scope="module")
def api_main(viz_url: str) -> dict:
    response = requests.get(f"{viz_url}/api/main", timeout=30)
    response.raise_for_status()
    return response.json()


def _drawn_nodes(dom: str) -> dict[str, list[tuple[str, str]]]:
    """``{node type: [(data-id, data-node-fullname), ...]}`` of the flowchart's SVG nodes."""
    drawn: dict[str, list[tuple[str, str]]] = {}
    for tag in re.findall(r"<g\b[^>]*\bclass=\"pipeline-node [^\"]*\"[^>]*>", dom):
        attributes = dict(re.findall(r"([\w-]+)=\"([^\"]*)\"", tag))
        drawn.setdefault(attributes["data-node-type"], []).append(
            (attributes["data-id"], attributes["data-node-fullname"])
        )
    return drawn


def test_api_serves_every_registered_node(api_main, registered_pipelines):
    expected = {node.name for node in registered_pipelines["__default__"].nodes}
    served = {node["full_name"] for node in api_main["nodes"] if node["type"] == "task"}
    assert served == expected
    assert {p["id"] for p in api_main["pipelines"]} == set(registered_pipelines)


def test_flowchart_draws_one_box_per_stage(browser, viz_url, registered_pipelines):
    stages = {node.namespace for node in registered_pipelines["__default__"].nodes}
    drawn = _drawn_nodes(browser.render(f"{viz_url}/", ready=STAGE_BOX, count=len(stages)))
    assert {name for _, name in drawn.get("modularPipeline", [])} == stages
    assert "task" not in drawn, "collapsed stages should hide their nodes"


@pytest.fixture(scope="module")
def expanded_flowchart(browser, viz_url, api_main) -> tuple[str, Path]:
    """The expanded flowchart's DOM once every node is drawn, and its screenshot (kept as a
    test artifact)."""
    tasks = [node for node in api_main["nodes"] if node["type"] == "task"]
    screenshot = ARTIFACTS / "flowchart.png"
    dom = browser.render(
        f"{viz_url}/?expandAllPipelines=true",
        ready=NODE_BOX,
        count=len(tasks),
        screenshot=screenshot,
    )
    return dom, screenshot


def test_flowchart_draws_every_node_when_expanded(expanded_flowchart, api_main):
    dom, _ = expanded_flowchart
    drawn = _drawn_nodes(dom)
    tasks = {node["id"]: node["name"] for node in api_main["nodes"] if node["type"] == "task"}
    assert dict(drawn.get("task", [])) == tasks
    for name in LANDMARKS:
        assert re.search(rf"class=\"pipeline-node__text\"[^>]*>{name}</text>", dom), name


def test_flowchart_screenshot(expanded_flowchart):
    from PIL import Image

    _, path = expanded_flowchart
    with Image.open(path) as image:
        assert image.size == (1600, 1000)
        # A drawn page, not a blank or error page: many distinct colours.
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 50


def _details(viz_url: str, api_main: dict, name: str) -> dict:
    """What kedro-viz shows when a dataset is clicked (``/api/nodes/<id>``)."""
    (node_id,) = {n["id"] for n in api_main["nodes"] if n["name"] == name and n["type"] == "data"}
    response = requests.get(f"{viz_url}/api/nodes/{node_id}", timeout=60)
    response.raise_for_status()
    return response.json()


def test_data_report_is_previewed(viz_url, api_main, data_report):
    table = _details(viz_url, api_main, "mnist_class_summary")
    assert table["preview_type"] == "TablePreview"
    assert table["preview"]["columns"] == list(data_report["summary"].columns)
    assert [row[1] for row in table["preview"]["data"]] == data_report["summary"][
        "train_images"
    ].tolist()
    stats = _details(viz_url, api_main, "mnist_pixel_statistics")
    assert stats["preview_type"] == "JSONPreview"
    assert json.loads(stats["preview"]) == json.loads(json.dumps(data_report["pixels"]))
    plot = _details(viz_url, api_main, "mnist_class_balance_plot")
    assert plot["preview_type"] == "ImagePreview"
    assert base64.b64decode(plot["preview"])[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_report_can_be_previewed(viz_url, api_main):
    # Metric histories live only in MLflow (its UI charts them): nothing on disk to preview.
    reports = sorted(
        {
            n["name"]
            for n in api_main["nodes"]
            if n.get("layer") == "reporting"
            and "MlflowMetricsHistoryDataset" not in (n.get("dataset_type") or "")
        }
    )
    assert "mnist_class_summary" in reports
    silent = [name for name in reports if not _details(viz_url, api_main, name).get("preview_type")]
    assert not silent, f"kedro-viz cannot preview these reports: {silent}"


def test_catalog_datasets_carry_a_layer(api_main):
    unlayered = sorted(
        node["name"]
        for node in api_main["nodes"]
        if node["type"] == "data"
        and node["dataset_type"] not in UNLAYERED_TYPES
        and not node["layer"]
    )
    assert not set(unlayered) - KNOWN_UNLAYERED, f"datasets without a kedro-viz layer: {unlayered}"


def test_layers_have_an_order(api_main):
    """kedro-viz draws layer bands only when the layers form no cycle."""
    assert api_main["layers"][:2] == ["raw", "intermediate"]
    assert {"model_input", "models", "reporting"} <= set(api_main["layers"])


def test_viz_build(tmp_path, project_root, registered_pipelines):
    """``kedro viz build``: a static site with the project's data, offline."""
    project = project_copy(project_root, tmp_path / "project")
    result = subprocess.run(
        [KEDRO, "viz", "build"],
        cwd=project,
        env=scratch_environment(tmp_path, project),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    build = project / "build"
    assert (build / "index.html").is_file()
    main = json.loads((build / "api" / "main").read_text())
    expected = {node.name for node in registered_pipelines["__default__"].nodes}
    assert {n["full_name"] for n in main["nodes"] if n["type"] == "task"} == expected
    for name in registered_pipelines:
        assert (build / "api" / "pipelines" / name).is_file(), name
