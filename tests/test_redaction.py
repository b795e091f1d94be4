"""The one redaction (redaction.py): passwords in URIs, secret storage options, Azure keys."""

from __future__ import annotations

from mnist_pipeline.redaction import redact, redact_values

URI = "http://bot:s3cr3t@127.0.0.1:5000"
SHOWN = "http://bot:***@127.0.0.1:5000"


def test_redact_uri_keeps_everything_but_the_password():
    assert redact(URI) == SHOWN
    assert redact("http://bot:p@ss:w@h/x@y") == "http://bot:***@h/x@y"
    assert redact(f"failed: {URI}/api and {URI}") == f"failed: {SHOWN}/api and {SHOWN}"
    for plain in ("sqlite:///mlruns/a.db", "databricks://scope:key", "http://h:5000/x"):
        assert redact(plain) == plain
    assert redact_values({"a": [URI, 1], "b": (URI,)}) == {"a": [SHOWN, 1], "b": (SHOWN,)}


def test_secret_storage_options_and_azure_keys_are_removed():
    key = "Zm9vYmFyYmF6cXV4cXV1eA=="
    options = {
        "connection_string": f"DefaultEndpointsProtocol=http;AccountName=dev;AccountKey={key}",
        "account_name": "devstoreaccount1",
    }
    text = f"failed with {options['connection_string']} for devstoreaccount1"
    shown = redact(text, options)
    assert key not in shown and "devstoreaccount1" in shown
    assert redact("https://a.blob/c?sv=2024&sig=abc%2Fdef&se=1") == (
        "https://a.blob/c?sv=2024&sig=***&se=1"
    )
    assert redact("AccountKey=secretvalue;EndpointSuffix=x") == "AccountKey=***;EndpointSuffix=x"
    assert redact(None) == ""
