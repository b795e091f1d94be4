"""Fail early and by name where the project relies on a library's private internals.

Three modules patch or subclass what a library does not promise to keep: training/keras_compat.py
(Keras's trainer and TensorFlow's input pipeline), serving/guards.py (uvicorn's httptools
protocol) and registry/model_env.py (MLflow's environment naming and its pyfunc backend's predict
script). Each states the releases it was tested with, ``[lowest, highest)``, and calls
:func:`require` before it relies on them: outside that range the run stops with the range and
what to do, instead of failing deep inside with an ``AttributeError`` (or quietly behaving
differently).
"""

from __future__ import annotations

from packaging.version import Version


class UnsupportedVersionError(RuntimeError):
    """A library is outside the range of releases the project's patches of it were tested with."""


def require(
    package: str, installed: str, supported: tuple[str, str], *, user: str, note: str = ""
) -> None:
    """Refuse ``installed`` (``package``'s version) outside ``supported`` = [lowest, highest).

    Args:
        user: the module that relies on ``package``'s private internals (named in the error).
        note: what else the reader should know (e.g. the combination that was tested).

    Raises:
        UnsupportedVersionError: naming the package, its version, the range and the way out.
    """
    lowest, highest = supported
    if not Version(lowest).release <= Version(installed).release < Version(highest).release:
        raise UnsupportedVersionError(
            f"{package} {installed} is not supported by {user} (it relies on private "
            f"internals of {package} >={lowest}, <{highest}{': ' + note if note else ''}). "
            "Install a version in that range (requirements.lock pins the tested ones), or "
            "extend the range after running the module's tests with the new version"
        )
