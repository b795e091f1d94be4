"""A replica of a Databricks ML runtime's Python, with the project installed as a job cluster
installs it; and the clusters' lock (``requirements-databricks.txt``).

The runtime is described by one data file (default ``tools/databricks/runtime-15.4-lts-ml.toml``:
the release notes' library versions, their source, and the allow-list of what the wheel may
change). Downloads happen here only; the tests read what ``build`` leaves in ``.dbr-venv/``.

``python -m tools.databricks.replica lock`` (``make databricks-lock``) resolves the wheel's
dependencies (``pyproject.toml``), with the data file's ``[cluster_requirements]``, with
``uv`` for the runtime's Python, every runtime library
held at the runtime's version except those of the allow-list, and writes what a cluster must
add or change as ``requirements-databricks.txt``: the job tasks install it before the wheel,
so pip finds the wheel's dependencies satisfied and leaves the runtime alone. Without it pip
picks the newest version of every new package, and those pull newer protobuf, numpy,
SQLAlchemy… over the runtime's (TensorFlow 2.16 then breaks).

``python -m tools.databricks.replica`` (``make install``) builds the replica:

1. a venv with this machine's Python of the runtime's minor version, the runtime's
   pip/setuptools/wheel, and Spark's Python (pyspark, py4j) on ``sys.path`` through a ``.pth``
   file without dist-info, as Databricks does from ``/databricks/spark/python``;
2. the runtime's libraries at the runtime's versions (``uv``) for the packages that matter:
   those the project imports, those the issue's dependency ranges pin against, every runtime
   library in the wheel's resolution, and — a fixpoint — every runtime library that pip,
   asked to install the lock and the wheel, would newly install (``pip install --dry-run``).
   pip then faces the conflicts it would face on the cluster, without the runtime's ~350
   packages (torch, ray…);
3. ``pip freeze --all`` (before); the task's libraries in their order, each with the
   replica's own pip as the cluster installs a library: ``pip install -r
   requirements-databricks.txt``, then ``pip install <wheel>`` (built from the sources as
   ``kedro package`` builds it); ``pip freeze --all`` (after), ``pip check``; all in
   ``replica.json``;
4. Model Serving's stand-in (``model-serving/``): a fresh venv with only what the project's
   logged models require in the replica (``registry.model.pip_requirements``: the runtime's
   TensorFlow, the lock's MLflow and Keras...), resolved afresh as Model Serving builds a
   served model's environment; the deploy job's smoke test is answered from there.

A later run with the same inputs (data file, ``pyproject.toml``, lock, this file) only
reinstalls the wheel (the sources changed): ``pip install --no-deps --force-reinstall``.

``python -m tools.databricks.replica metadata`` refreshes the runtime libraries' own
requirements (``<data file stem>.requires.json``, from PyPI's metadata), with which the tests
find runtime libraries outside the replica whose requirements the allowed changes break.
Run it after editing the data file's libraries.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_RUNTIME = ROOT / "tools" / "databricks" / "runtime-15.4-lts-ml.toml"
DEFAULT_TARGET = ROOT / ".dbr-venv"
LOCK = "requirements-databricks.txt"
RECORD = "replica.json"
# What the project's dependency ranges pin against (issue 22), whatever the sources import.
ALWAYS = (
    "tensorflow",
    "keras",
    "numpy",
    "pandas",
    "pyarrow",
    "scipy",
    "scikit-learn",
    "matplotlib",
    "mlflow-skinny",
    "cloudpickle",
    "protobuf",
    "fsspec",
    "pydantic",
    "requests",
    "spark-tensorflow-distributor",
)
# Runtime libraries the jobs reach by URL scheme, never by an import in the sources: fsspec's
# http:// (the bundle's default MNIST source), MLflow's wasbs:// and gs:// artifact stores.
BY_SCHEME = ("aiohttp", "azure-storage-blob", "azure-identity", "google-cloud-storage")
MAX_ROUNDS = 6
# The platform the lock is resolved for (Databricks Runtime 15.4 runs Ubuntu 22.04, x86_64).
PLATFORM = "x86_64-manylinux_2_28"


class ReplicaError(RuntimeError):
    """A step of the build failed; the message says which and where its log is."""


def normalise(name: str) -> str:
    """PEP 503 name: lower case, runs of ``-_.`` as one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def load_runtime(path: Path) -> dict:
    runtime = tomllib.loads(path.read_text())
    runtime["libraries"] = {normalise(k): v for k, v in runtime["libraries"].items()}
    runtime["allowed_changes"] = {
        normalise(k): v for k, v in runtime.get("allowed_changes", {}).items()
    }
    return runtime


def core_dependencies(project: Path) -> list[str]:
    """What a cluster installs with the wheel: ``[project] dependencies`` (no extras)."""
    return list(tomllib.loads((project / "pyproject.toml").read_text())["project"]["dependencies"])


def _sha256(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def sources_digest(src: Path) -> str:
    """sha256 of the package's .py files (what the installed wheel was built from)."""
    h = hashlib.sha256()
    for file in sorted(src.rglob("*.py")):
        if "egg-info" in str(file):
            continue
        h.update(str(file.relative_to(src)).encode())
        h.update(file.read_bytes())
    return h.hexdigest()


def cluster_requirements(project: Path, runtime: dict) -> list[str]:
    """What a job cluster installs besides the runtime: the wheel's core dependencies and the
    data file's ``[cluster_requirements]`` (where the runtime's own version cannot run the jobs)."""
    extra = [f"{name}{spec}" for name, spec in runtime.get("cluster_requirements", {}).items()]
    return core_dependencies(project) + extra


def lock_inputs(project: Path, runtime: dict) -> str:
    """What the lock is resolved from: the wheel's ranges, the runtime's pins, the allow-list."""
    return _sha256(
        {
            "dependencies": cluster_requirements(project, runtime),
            "python": runtime["runtime"]["python"],
            "libraries": runtime["libraries"],
            "allowed": sorted(runtime["allowed_changes"]),
            "outside_pip": runtime["outside_pip"],
            "unknown_versions": runtime.get("unknown_versions", {}),
        }
    )


def read_lock(path: Path) -> tuple[str | None, dict[str, str]]:
    """(the inputs digest in its header, its pins)."""
    text = path.read_text() if path.is_file() else ""
    found = re.search(r"^# inputs: ([0-9a-f]{64})$", text, re.M)
    pins = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[normalise(name)] = version.strip()
    return (found.group(1) if found else None), pins


def _uv() -> str:
    """The laptop venv's uv (pinned by requirements.lock), else uv on PATH."""
    beside = Path(sys.executable).with_name("uv")
    return str(beside) if beside.exists() else shutil.which("uv") or "uv"


def _clean_env() -> dict[str, str]:
    """The environment pip and uv run with: no project venv, no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def resolve(project: Path, runtime: dict, log: Path | None = None) -> dict[str, str]:
    """The clusters' closure on the runtime: ``uv pip compile`` of :func:`cluster_requirements`
    for the runtime's Python, every runtime library not on the allow-list held at the
    runtime's version (``{name: version}``)."""
    allowed = runtime["allowed_changes"]
    with tempfile.TemporaryDirectory() as scratch:
        requirements = Path(scratch) / "requirements.in"
        requirements.write_text("\n".join(cluster_requirements(project, runtime)) + "\n")
        constraints = Path(scratch) / "constraints.txt"
        held = {n: v for n, v in runtime["libraries"].items() if n not in allowed}
        constraints.write_text("".join(f"{n}=={v}\n" for n, v in sorted(held.items())))
        output = Path(scratch) / "resolved.txt"
        command = [_uv(), "pip", "compile", "--quiet", "--no-header", "--no-annotate"]
        command += ["--python-version", runtime["runtime"]["python"], "--python-platform"]
        command += [PLATFORM, "-c", constraints, requirements, "-o", output]
        result = subprocess.run(
            [str(c) for c in command], capture_output=True, text=True, env=_clean_env(), check=False
        )
        if log is not None:
            with log.open("a") as out:
                out.write(f"$ uv pip compile (the wheel's closure)\n{result.stderr}\n")
        if result.returncode:
            raise ReplicaError(
                "the wheel's dependencies cannot be resolved with the runtime's libraries held "
                "at their versions (only the allow-list, [allowed_changes] in "
                f"the data file, may change):\n{result.stderr.strip()}"
            )
        _, pins = read_lock(output)
    return pins


def write_lock(project: Path, runtime_file: Path) -> Path:
    """``requirements-databricks.txt``: what the resolution adds to the runtime or changes
    in it (allow-list), pinned; runtime libraries kept at their versions are left out."""
    runtime = load_runtime(runtime_file)
    resolved = resolve(project, runtime)
    libraries = runtime["libraries"]
    outside = set(map(normalise, runtime["outside_pip"]))
    if clash := sorted(outside & set(resolved)):
        raise ReplicaError(
            f"the wheel's dependencies would install {clash} from PyPI over the runtime's own "
            "(outside pip, [outside_pip] in the data file)"
        )
    unknown = set(map(normalise, runtime.get("unknown_versions", {}).get("names", ())))
    added = {n: v for n, v in resolved.items() if libraries.get(n) != v and n not in unknown}
    header = [
        "# The Databricks job clusters' library installed before the project's wheel",
        f"# (resources/*.yml), for {runtime['runtime']['name']}.",
        "# Generated by `make databricks-lock` (python -m tools.databricks.replica lock) from",
        f"# pyproject.toml's dependencies and {runtime_file.relative_to(project)}",
        "# ([cluster_requirements]); do not edit. It pins what they add to the runtime or",
        "# change in it (only the data file's [allowed_changes]), resolved with every other",
        "# runtime library at the runtime's version, so that pip installing the wheel afterwards",
        "# finds its dependencies satisfied and leaves the runtime's libraries alone.",
        f"# inputs: {lock_inputs(project, runtime)}",
    ]
    path = project / LOCK
    path.write_text("\n".join(header + [f"{n}=={v}" for n, v in sorted(added.items())]) + "\n")
    return path


def build_wheel(project: Path, outdir: Path) -> Path:
    """The project's wheel, built from a scratch copy of the sources as ``kedro package``
    builds it (``python -m build --wheel``); the working tree stays clean."""
    outdir.mkdir(parents=True, exist_ok=True)
    for old in outdir.glob("*.whl"):
        old.unlink()
    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch)
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(project / name, source)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
        shutil.copytree(project / "src", source / "src", ignore=ignore)
        command = [sys.executable, "-m", "build", "--wheel", "--no-isolation"]
        command += ["--skip-dependency-check", "--outdir", str(outdir), str(source)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode:
            raise ReplicaError(f"building the wheel failed:\n{result.stdout}{result.stderr}")
    (wheel,) = outdir.glob("mnist_pipeline-*-py3-none-any.whl")
    return wheel


def imported_runtime_packages(src: Path, libraries: dict[str, str]) -> set[str]:
    """Runtime libraries whose modules the sources import (through this venv's metadata)."""
    from importlib.metadata import packages_distributions

    modules = set()
    for file in src.rglob("*.py"):
        for match in re.finditer(r"^\s*(?:from|import)\s+([A-Za-z_]\w*)", file.read_text(), re.M):
            modules.add(match.group(1))
    owners = packages_distributions()
    return {normalise(d) for m in modules for d in owners.get(m, ())} & set(libraries)


class Replica:
    """The replica venv at ``target`` of the runtime described by ``runtime_file``."""

    def __init__(self, target: Path, runtime_file: Path):
        self.target = target
        self.runtime = load_runtime(runtime_file)
        self.python = target / "bin" / "python"
        self.spark_python = target / "spark-python"
        self.log = target / "build.log"

    def run(self, what: str, command: list, **kwargs) -> subprocess.CompletedProcess:
        """Run a step with its output in build.log; a failure names the step and the log."""
        with self.log.open("a") as log:
            log.write(f"\n$ {what}: {' '.join(map(str, command))}\n")
            log.flush()
            result = subprocess.run(
                [str(c) for c in command],
                env=_clean_env(),
                stdout=log,
                stderr=log,
                check=False,
                **kwargs,
            )
        if result.returncode:
            tail = self.log.read_text().splitlines()[-25:]
            raise ReplicaError(
                f"{what} failed (exit {result.returncode}); {self.log}:\n" + "\n".join(tail)
            )
        return result

    def query(self, code: str) -> str:
        return subprocess.run(
            [str(self.python), "-c", code], check=True, capture_output=True, text=True,
            env=_clean_env(),
        ).stdout.strip()  # fmt: skip

    def pins(self) -> Path:
        """The runtime's libraries as ``==`` constraints (uv's input)."""
        path = self.target / "runtime-constraints.txt"
        libraries = self.runtime["libraries"]
        path.write_text("".join(f"{n}=={v}\n" for n, v in sorted(libraries.items())))
        return path

    def add_runtime_libraries(self, names: list[str]) -> None:
        command = [_uv(), "pip", "install", "--python", self.python, "-c", self.pins(), *names]
        self.run(f"install runtime libraries {names}", command)

    def create(self) -> None:
        if self.target.exists():
            shutil.rmtree(self.target)
        python = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([_uv(), "venv", "--quiet", "--python", python, str(self.target)],
                       check=True, env=_clean_env())  # fmt: skip
        wanted = self.runtime["runtime"]["python"]
        actual = self.query("import sys; print('%d.%d' % sys.version_info[:2])")
        if actual != wanted:
            raise ReplicaError(f"the runtime runs Python {wanted}; {python} is {actual}")
        libraries = self.runtime["libraries"]
        base = [f"pip=={self.runtime['installer']['pip']}"]
        base += [f"{name}=={libraries[name]}" for name in ("setuptools", "wheel")]
        self.run("install pip", [_uv(), "pip", "install", "--python", self.python, *base])
        # Spark's Python outside pip, as on the cluster: no dist-info, a .pth entry.
        outside = [f"{name}=={v}" for name, v in self.runtime["outside_pip"].items()]
        command = [_uv(), "pip", "install", "--no-deps", "--python", self.python]
        self.run("install Spark", [*command, "--target", self.spark_python, *outside])
        for info in self.spark_python.glob("*.dist-info"):
            shutil.rmtree(info)
        shutil.rmtree(self.spark_python / "bin", ignore_errors=True)  # console scripts
        site = Path(self.query("import sysconfig; print(sysconfig.get_paths()['purelib'])"))
        (site / "databricks_spark.pth").write_text(f"{self.spark_python}\n")

    def pip(self, what: str, *args, **kwargs) -> subprocess.CompletedProcess:
        return self.run(what, [self.python, "-m", "pip", *args], **kwargs)

    def freeze(self) -> dict[str, str]:
        out = subprocess.run(
            [str(self.python), "-m", "pip", "freeze", "--all"],
            check=True, capture_output=True, text=True, env=_clean_env(),
        ).stdout  # fmt: skip
        pins = {}
        for line in out.splitlines():
            name, sep, version = line.partition("==")
            if not sep:
                name, _, version = line.partition(" @ ")
            pins[normalise(name.strip())] = version.strip()
        return pins

    def dry_run(self, *requirements) -> list[str]:
        """The packages pip would install or change for ``requirements`` (pip's report)."""
        with tempfile.TemporaryDirectory() as scratch:
            report = Path(scratch) / "report.json"
            self.pip("pip install --dry-run", "install", "--dry-run", "--report", report,
                     *requirements)  # fmt: skip
            items = json.loads(report.read_text())["install"]
        return [normalise(item["metadata"]["name"]) for item in items]

    def complete(self, seed: set[str], lock: Path, wheel: Path) -> list[list[str]]:
        """Install ``seed`` at the runtime's versions, then every runtime library that pip
        would newly install for the lock and the wheel, until there is none."""
        libraries = self.runtime["libraries"]
        rounds = [sorted(seed)]
        self.add_runtime_libraries(rounds[0])
        for _ in range(MAX_ROUNDS):
            installed = set(self.freeze())
            wanted = set(self.dry_run("-r", lock, wheel))
            missing = sorted((wanted & set(libraries)) - installed)
            if not missing:
                return rounds
            rounds.append(missing)
            self.add_runtime_libraries(missing)
        raise ReplicaError(f"no fixpoint after {MAX_ROUNDS} rounds: {rounds}")

    def install_library(self, what: str, *requirements) -> dict[str, str]:
        """``pip install`` as a cluster installs one library; what pip installed."""
        with tempfile.TemporaryDirectory() as scratch:
            report = Path(scratch) / "report.json"
            self.pip(what, "install", "--report", report, *requirements)
            items = json.loads(report.read_text())["install"]
        return {normalise(i["metadata"]["name"]): i["metadata"]["version"] for i in items}

    def model_requirements(self) -> list[str]:
        """What the project's logged models require here (``registry.model.pip_requirements``)."""
        code = (
            "import json; from mnist_pipeline.registry.model import pip_requirements; "
            "print(json.dumps(pip_requirements()))"
        )
        return json.loads(self.query(code).splitlines()[-1])

    def build_serving_env(self) -> dict:
        """Model Serving's stand-in: a fresh venv with the logged models' requirements only,
        resolved afresh as Model Serving resolves them (nothing of the runtime)."""
        try:
            requirements = self.model_requirements()
        except subprocess.CalledProcessError as error:  # the project does not import here
            return {"error": f"{error.stderr.strip().splitlines()[-1:]}"}
        folder = self.target / "model-serving"
        shutil.rmtree(folder, ignore_errors=True)
        python = getattr(sys, "_base_executable", sys.executable)
        self.run("create the serving venv", [_uv(), "venv", "--python", python, folder])
        command = [_uv(), "pip", "install", "--python", folder / "bin" / "python", *requirements]
        self.run(f"install the model's requirements {requirements}", command)
        return {"requirements": requirements, "python": str(folder / "bin" / "python")}

    def check(self) -> dict:
        result = subprocess.run(
            [str(self.python), "-m", "pip", "check"], capture_output=True, text=True,
            env=_clean_env(), check=False,
        )  # fmt: skip
        return {"returncode": result.returncode, "output": result.stdout + result.stderr}


def build_inputs(project: Path, runtime_file: Path) -> str:
    """What the replica's dependencies come from (a change means a full rebuild)."""
    files = [runtime_file, project / "pyproject.toml", project / LOCK, Path(__file__)]
    return _sha256([f.read_text() if f.is_file() else None for f in files])


def build(project: Path, target: Path, runtime_file: Path) -> dict:
    started = time.monotonic()
    replica = Replica(target, runtime_file)
    record_path = target / RECORD
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    wheel_dir = target / "dist"
    if record.get("inputs") == build_inputs(project, runtime_file) and replica.python.exists():
        # Only the sources changed: the dependencies' resolution stands.
        wheel = build_wheel(project, wheel_dir)
        replica.pip("reinstall the wheel", "install", "--no-deps", "--force-reinstall", wheel)
        record.update(wheel=wheel.name, sources=sources_digest(project / "src" / "mnist_pipeline"))
        serving = record["model_serving"]
        if "error" in serving or replica.model_requirements() != serving["requirements"]:
            record["model_serving"] = replica.build_serving_env()
        record_path.write_text(json.dumps(record, indent=1) + "\n")
        print(f"{target.name}: reinstalled {wheel.name} ({time.monotonic() - started:.0f} s)")
        return record

    replica.create()
    runtime = replica.runtime
    lock = project / LOCK
    lock_digest, _ = read_lock(lock)
    try:  # the clusters' closure, to seed the replica with the runtime libraries it needs
        resolved, unresolvable = resolve(project, runtime, replica.log), None
    except ReplicaError as error:
        # The replica is still built and the task's libraries installed as a cluster would
        # (the committed lock, then the wheel): the tests then show what pip changes.
        resolved, unresolvable = {}, str(error)
    wheel = build_wheel(project, wheel_dir)
    seed = set(ALWAYS) | set(BY_SCHEME)
    seed |= imported_runtime_packages(project / "src", runtime["libraries"])
    seed |= set(resolved) & set(runtime["libraries"])
    rounds = replica.complete(seed, lock, wheel)
    before = replica.freeze()
    from_lock = replica.install_library(f"pip install -r {LOCK}", "-r", lock)
    from_wheel = replica.install_library("pip install <wheel>", wheel)
    after = replica.freeze()
    record = {
        "runtime": runtime["runtime"]["name"],
        "runtime_file": str(runtime_file.relative_to(project)),
        "inputs": build_inputs(project, runtime_file),
        "lock_current": lock_digest == lock_inputs(project, runtime),
        "unresolvable": unresolvable,
        "sources": sources_digest(project / "src" / "mnist_pipeline"),
        "wheel": wheel.name,
        "python": replica.query("import sys; print(sys.version.split()[0])"),
        "spark_home": str(replica.spark_python / "pyspark"),
        "rounds": rounds,
        "before": before,
        "installed_by_lock": from_lock,
        "installed_by_wheel": from_wheel,
        "after": after,
        "pip_check": replica.check(),
        "model_serving": replica.build_serving_env(),
        "seconds": round(time.monotonic() - started, 1),
    }
    record_path.write_text(json.dumps(record, indent=1) + "\n")
    changed = sorted(n for n in before if n in after and before[n] != after[n])
    print(
        f"{target.name}: {record['runtime']} replica in {record['seconds']:.0f} s; "
        f"{len(before)} packages, {len(after) - len(before)} added by the lock and the wheel, "
        f"changed: {', '.join(changed) or 'none'}; pip check exit "
        f"{record['pip_check']['returncode']}"
        + ("" if record["lock_current"] else f"; {LOCK} is STALE: run `make databricks-lock`")
    )
    if unresolvable:
        print(f"warning: {unresolvable}", file=sys.stderr)
    return record


# -- the runtime libraries' own requirements (a refresh step, not part of make install) ------
def metadata_file(runtime_file: Path) -> Path:
    return runtime_file.with_suffix(".requires.json")


def _report(pins: list[str], scratch: Path) -> list[dict]:
    """pip's dry-run report of ``pins`` for this Python (the runtime's minor version): the
    wheels' metadata from the index, an sdist's prepared from it (nothing is built)."""
    report = scratch / "report.json"
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--no-deps"]
    command += ["--ignore-installed", "--prefer-binary", "--report", str(report), *pins]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode:
        raise LookupError(result.stdout + result.stderr)
    return json.loads(report.read_text())["install"]


def refresh_metadata(runtime_file: Path) -> Path:
    """Every runtime library's ``Requires-Dist`` (pip's dry-run reports), written beside the
    data file; a library whose metadata pip cannot prepare is listed as unavailable."""
    runtime = load_runtime(runtime_file)
    pins = [f"{n}=={v}" for n, v in sorted(runtime["libraries"].items())]
    unavailable: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as scratch:
        while True:  # all at once; one whose metadata fails is set aside, then the rest again
            try:
                items = _report(pins, Path(scratch))
                break
            except LookupError as error:
                text = str(error)
                failed = [p for p in pins if re.search(rf"\b{re.escape(p.split('==')[0])}\b", text)]
                named = re.search(r"(?:Failed to build|for) '?([A-Za-z0-9_.-]+)'?", text)
                culprit = next(
                    (
                        p
                        for p in failed
                        if named and normalise(p.split("==")[0]) == normalise(named.group(1))
                    ),
                    None,
                )
                if culprit is None:
                    raise
                unavailable[culprit] = text.strip().splitlines()[-1][:300]
                pins.remove(culprit)
    requires = {
        normalise(item["metadata"]["name"]): sorted(
            r for r in item["metadata"].get("requires_dist", []) if "extra ==" not in r
        )
        for item in items
    }
    path = metadata_file(runtime_file)
    content = {
        "generated_by": "python -m tools.databricks.replica metadata",
        "libraries": _sha256(runtime["libraries"]),
        "requires": dict(sorted(requires.items())),
        "unavailable": unavailable,
    }
    path.write_text(json.dumps(content, indent=1) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", nargs="?", choices=("build", "lock", "metadata"), default="build")
    parser.add_argument("--project", type=Path, default=ROOT)
    parser.add_argument("--runtime", type=Path, default=DEFAULT_RUNTIME)
    parser.add_argument("--target", type=Path, default=DEFAULT_TARGET)
    args = parser.parse_args(argv)
    project, runtime_file = args.project.resolve(), args.runtime.resolve()
    try:
        if args.action == "metadata":
            print(refresh_metadata(runtime_file))
        elif args.action == "lock":
            print(write_lock(project, runtime_file))
        else:
            build(project, args.target.resolve(), runtime_file)
    except ReplicaError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
