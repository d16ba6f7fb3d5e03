"""The operator's logging set-up: API keys redacted from every line, routine waits of a
deletion at INFO, the retries of a stalled deletion (logged once at WARNING when it stalled) at
DEBUG, chatty libraries at WARNING."""

from __future__ import annotations

import logging

from oec_operator import redact

#: Messages of deletion steps that are expected waits, not failures.
ROUTINE_WAITS = ("is destroying environment", "to finish before destroying", "deletion waits",
                 "taking the final backup")
#: Messages of a stalled deletion step: said once at WARNING (with an Event) by the deletion
#: when it stalled (``oec_operator.controller.final_backup.KEPT``), not again at each retry.
LOGGED_STALLS = ("the environment is kept:",)


class QuietRoutine(logging.Filter):
    """Logs the expected waits of a deletion (kopf reports them as temporary failures) at INFO
    and the retries of a stall already logged at DEBUG, instead of ERROR."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "failed temporarily" not in message:
            return True
        if any(w in message for w in LOGGED_STALLS):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        if any(w in message for w in ROUTINE_WAITS):
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def configure() -> None:
    """Install the filters (idempotent) and quieten httpx (a line per request) and aiohttp's
    access log (liveness probes every few seconds)."""
    objects = logging.getLogger("kopf.objects")
    if not any(isinstance(f, QuietRoutine) for f in objects.filters):
        objects.addFilter(QuietRoutine())
    redact.install()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
