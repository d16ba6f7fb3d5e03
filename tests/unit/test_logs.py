"""What the operator's log shows of a deletion that waits (:mod:`oec_operator.logs`): kopf logs
each retry of the delete handler as ``failed temporarily`` at ERROR; the filter keeps routine waits
at INFO and a stall, logged once at WARNING when it began, out of the log."""

from __future__ import annotations

import logging

import pytest

from oec_operator.logs import QuietRoutine


def kopf_retry(message: str) -> logging.LogRecord:
    """The record kopf writes when the delete handler raised ``TemporaryError(message)``."""
    return logging.LogRecord("kopf.objects", logging.ERROR, __file__, 1,
                             f"Handler 'delete' failed temporarily: {message}", None, None)


def test_a_healthy_final_backup_is_a_routine_wait_not_an_error() -> None:
    record = kopf_retry("taking the final backup 7d0b (pending); the environment is destroyed once it completed")
    assert QuietRoutine().filter(record) and record.levelname == "INFO"


@pytest.mark.parametrize("reason", ["failed: simulated failure", "timed out", "cannot be taken"])
def test_the_retries_of_a_stalled_final_backup_stay_out_of_the_log(reason: str) -> None:
    logging.getLogger("kopf.objects").setLevel(logging.INFO)
    record = kopf_retry(f"the final backup 7d0b {reason}; the environment is kept: set the annotation "
                        'oec.sh/final-backup-requested-at to a new value to try again, or oec.sh/skip-final-backup: '
                        '"true" to delete without it')
    assert not QuietRoutine().filter(record)


def test_other_failures_stay_errors() -> None:
    record = kopf_retry("deleting environment 7d0b: 500 Internal Server Error")
    assert QuietRoutine().filter(record) and record.levelname == "ERROR"
