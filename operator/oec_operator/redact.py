"""Defence in depth: no log line may carry an OEC.sh API key, whatever code produced it."""

from __future__ import annotations

import logging
import re

#: The documented key format (``docs/oec-api.md`` §4) and bearer headers.
_SECRET = re.compile(r"oec_live_(?:ro|rw)_[A-Za-z0-9_-]+|(?i:bearer)\s+[A-Za-z0-9._~+/=-]+")


def redact(text: str) -> str:
    """``text`` with every API key or bearer token replaced by ``[REDACTED]``."""
    return _SECRET.sub("[REDACTED]", text)


class RedactingFilter(logging.Filter):
    """A handler filter that redacts API keys from the formatted message of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def install() -> None:
    """Attach :class:`RedactingFilter` to every handler of the root logger (idempotent)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
