"""The redaction filter: a registered secret, URL credentials and key-like query values never reach a failure
line or the console, wherever they sit in the text (also across the 200-character cut of transport errors)."""

from __future__ import annotations

from robustgen.schemas import Failure
from robustgen.schemas.redaction import add_secret, add_url_secrets, redact


def test_registered_secrets_and_url_credentials_are_masked_everywhere_in_a_failure():
    key = "sk-redaction-test-7788990011"
    add_secret(key)
    add_url_secrets("https://bob:pa55-word-xyz@api.example.org/v1?api-key=qk-123456")
    text = (
        "x" * 195 + f" {key} then https://bob:pa55-word-xyz@api.example.org/v1?api-key=qk-123456 and "
        "pa55-word-xyz again, qk-123456 too, and an unknown http://eve:other-secret@h/?token=t0k3n"
    )
    f = Failure(id="a", stage="transport", reason=text)
    for leaked in (key, "pa55-word-xyz", "qk-123456", "other-secret", "t0k3n"):
        assert leaked not in f.reason and leaked not in f.model_dump_json()
    assert "***" in f.reason and f.reason.startswith("x" * 195)


def test_short_values_are_not_registered_so_ordinary_words_survive():
    add_secret("ab")
    assert redact("ab cd ab") == "ab cd ab"
