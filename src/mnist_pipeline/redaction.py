"""What may be shown of a text that might hold a secret: the project's one redaction.

Credentials live in environment variables and credentials configuration, never in a URI or a
message; this removes the ones that got there anyway before anything is logged, reported,
raised or tagged: a password in a URI (``scheme://user:***@host``), the value of every storage
option whose name says it is a secret (an account key, a SAS token, a connection string), and
Azure's ``AccountKey=``, ``SharedAccessSignature=`` and ``sig=`` values wherever they appear.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# user:password@ of any URI in a text (a password may itself hold '@' or ':').
_USERINFO = re.compile(r"(://[^/:@\s]+):[^/\s]*@")
# Storage option names whose values are secrets.
_SECRET_OPTION = re.compile(r"key|secret|token|password|connection_string|sas|credential", re.I)
_AZURE_SECRET = re.compile(r"(AccountKey|SharedAccessSignature|sig)=[^;&\s'\"]+")


def redact(text: str | None, options: Mapping[str, Any] | None = None) -> str:
    """``text`` with every secret in it replaced by ``***`` (see the module's docstring).

    Args:
        text: a URI, a message, a repr; ``None`` gives ``""``.
        options: storage options that may have been used to make ``text`` (their secret
            values are removed, and each ``name=value`` part of one, as in a connection
            string).
    """
    text = _USERINFO.sub(r"\1:***@", text or "")
    for key, value in (options or {}).items():
        if _SECRET_OPTION.search(str(key)) and isinstance(value, str) and len(value) >= 4:
            text = text.replace(value, "***")
            for part in value.split(";"):
                if "=" in part and len(part.split("=", 1)[1]) >= 8:
                    text = text.replace(part.split("=", 1)[1], "***")
    return _AZURE_SECRET.sub(r"\1=***", text)


def redact_values(value: Any) -> Any:
    """A copy of ``value`` (nested dicts, lists, strings) with :func:`redact` applied to every
    string: what may be logged of parameters that hold URIs."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {key: redact_values(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_values(item) for item in value)
    return value


def first_line(exc: BaseException, options: Mapping[str, Any] | None = None) -> str:
    """What a one-line error may quote of another library's exception: the first line of its
    message (its type's name when it has none), redacted, at most 300 characters."""
    text = str(exc).strip()
    return redact(text.splitlines()[0] if text else type(exc).__name__, options)[:300]
