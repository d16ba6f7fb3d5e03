"""Log redaction and metric labels."""

from __future__ import annotations

import logging

from oec_operator.metrics import endpoint_of
from oec_operator.redact import RedactingFilter, redact

KEY = "oec_live_rw_" + "k" * 43


def test_keys_and_bearer_tokens_are_redacted() -> None:
    assert KEY not in redact(f"calling with {KEY} now")
    assert "abc.def" not in redact("Authorization: Bearer abc.def")
    assert redact("nothing secret here") == "nothing secret here"


def test_filter_redacts_formatted_arguments() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "key=%s", (KEY,), None)
    assert RedactingFilter().filter(record)
    assert KEY not in record.getMessage() and "[REDACTED]" in record.getMessage()


def test_endpoint_labels_have_no_ids() -> None:
    path = "/environments/2bf30f5f-6ab0-4f5d-9037-e4e8f96821ed/status"
    assert endpoint_of(path) == "/environments/{id}/status"
    assert endpoint_of("projects/3f0c9a52-7a1e-4c1b-9d2e-5b8f6a4e2c10/environments") == "/projects/{id}/environments"
