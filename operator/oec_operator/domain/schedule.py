"""When an ``OdooBackupSchedule`` runs, for which environment, and which of its backups it keeps
(``docs/backups.md`` §2). Pure functions over times and names; knows nothing of Kubernetes.

* A schedule is a standard 5-field cron expression (minute hour day-of-month month day-of-week)
  read in an IANA time zone (:func:`parse`, :class:`Cron`, on ``croniter``). A wall-clock time
  that occurs twice when the clock goes back (the repeated hour) runs once, at its first
  occurrence; a time that does not exist when the clock goes forward runs at the first minute
  after the gap (as Vixie cron does).
* A *slot* is one scheduled time. Each environment's run of a slot is due at the slot plus the
  environment's fixed offset within the spread window (:func:`due_at`). :func:`plan` picks the
  one slot to work on now: only the most recent missed slot, and only while the spread window
  plus ``startingDeadlineSeconds`` after it has not passed; older slots are skipped and counted,
  never run (no burst after downtime).
* ``concurrencyPolicy: Forbid``: an environment whose previous backup from the schedule is not
  terminal is skipped for this slot (:func:`forbidden`).
* History: per environment, the newest ``successfulHistoryLimit`` Completed and
  ``failedHistoryLimit`` Failed/Expired backups are kept (:func:`to_collect`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from croniter.croniter import CroniterError

#: Phases of an ``OdooBackup`` after which nothing changes any more (``docs/backups.md`` §1).
TERMINAL_PHASES = frozenset({"Completed", "Failed", "Expired"})
#: Phases that count against ``failedHistoryLimit``.
FAILED_PHASES = frozenset({"Failed", "Expired"})
#: Default spread window (s) of a schedule with a ``selector``: 500 environments at one slot need
#: 500 writes, 25 minutes of the API's 20 writes a minute (``docs/oec-api.md`` §6); one hour puts
#: them at about 8 a minute, leaving more than half of the budget to everything else.
SELECTOR_SPREAD_SECONDS = 3600
#: Missed slots counted at most per look (a year of minutely slots would take seconds to count).
MAX_COUNTED = 1000
#: Longest Kubernetes name or label value the schedule builds (label values: 63 characters).
MAX_NAME = 63
_STAMP = "%Y%m%d%H%M"


class InvalidSchedule(ValueError):
    """The spec's ``schedule`` or ``timeZone`` cannot be used.

    Attributes:
        field: the spec field at fault (``schedule`` or ``timeZone``).
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"spec.{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class Cron:
    """A 5-field cron expression in a time zone."""

    expression: str
    zone: ZoneInfo

    def after(self, moment: datetime) -> datetime:
        """The first slot strictly after ``moment`` (UTC)."""
        it = croniter(self.expression, moment.astimezone(self.zone))
        while True:
            slot: datetime = it.get_next(datetime)
            if not _repeated(slot):
                return slot.astimezone(UTC)

    def latest(self, moment: datetime) -> datetime | None:
        """The last slot at or before ``moment`` (UTC), ``None`` if there is none in five years."""
        floor = moment - timedelta(days=5 * 366)
        it = croniter(self.expression, (moment + timedelta(microseconds=1)).astimezone(self.zone))
        while True:
            slot: datetime = it.get_prev(datetime)
            if slot.astimezone(UTC) < floor:
                return None
            if not _repeated(slot):
                return slot.astimezone(UTC)


def _repeated(slot: datetime) -> bool:
    """The second occurrence of a wall-clock time in the hour repeated when the clock goes back."""
    return slot.fold == 1 and slot.replace(fold=0).utcoffset() != slot.utcoffset()


def parse(schedule: str, time_zone: str | None) -> Cron:
    """The spec's ``schedule`` and ``timeZone`` (default UTC) as a :class:`Cron`.

    Raises:
        InvalidSchedule: not 5 fields, not a valid cron expression, or not an IANA zone name.
    """
    fields = schedule.split()
    if len(fields) != 5:
        raise InvalidSchedule("schedule", f"{schedule!r} is not a 5-field cron expression "
                                          "(minute hour day-of-month month day-of-week)")
    name = time_zone or "UTC"
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidSchedule("timeZone", f"{name!r} is not an IANA time zone name") from None
    expression = " ".join(fields)
    try:
        croniter(expression, datetime(2000, 1, 1, tzinfo=zone)).get_next(datetime)
    except (CroniterError, ValueError, KeyError) as exc:
        raise InvalidSchedule("schedule", f"{schedule!r} is not a valid cron expression ({exc})") from None
    return Cron(expression, zone)


@dataclass(frozen=True)
class Plan:
    """What a schedule does now.

    Attributes:
        slot: the slot to work on now (new, or the last one resumed), ``None`` for none.
        record: the newest slot since the last recorded one, run or skipped: record it (before
            acting), so that no slot is looked at, or counted, twice; ``None``: nothing new.
        skipped: slots missed since the last recorded one that are never run.
        next: the first slot after ``now``.
    """

    slot: datetime | None
    record: datetime | None
    skipped: int
    next: datetime

    @property
    def new(self) -> bool:
        """``slot`` is newer than the last recorded one."""
        return self.slot is not None and self.slot == self.record


def window(spread_seconds: float, deadline_seconds: float) -> timedelta:
    """How long after its slot a run may still start: the spread window plus the deadline."""
    return timedelta(seconds=spread_seconds + deadline_seconds)


def plan(cron: Cron, *, last: datetime | None, created: datetime, now: datetime,
         spread_seconds: float, deadline_seconds: float) -> Plan:
    """The slot to work on at ``now``.

    Args:
        last: the last slot recorded (``status.lastScheduleTime``), ``None`` before the first.
        created: when the schedule was created: slots before it never run.
        spread_seconds, deadline_seconds: a slot is worked on until both have passed after it.
    """
    since = last or created
    latest, count = None, 0
    slot = cron.after(since)
    while slot <= now:
        latest, count = slot, count + 1
        if count >= MAX_COUNTED:
            latest = cron.latest(now)
            break
        slot = cron.after(slot)
    late = window(spread_seconds, deadline_seconds)
    following = cron.after(now)
    if latest is not None:
        if now - latest <= late:
            return Plan(latest, latest, count - 1, following)
        return Plan(None, latest, count, following)
    if last is not None and now - last <= late:
        return Plan(last, None, 0, following)
    return Plan(None, None, 0, following)


def offset_seconds(fraction: float, spread_seconds: float) -> float:
    """An environment's offset (s) in the spread window, from its fixed ``fraction`` in [0, 1)."""
    return fraction * spread_seconds


def due_at(slot: datetime, fraction: float, spread_seconds: float) -> datetime:
    """When the environment's run of ``slot`` is due."""
    return slot + timedelta(seconds=offset_seconds(fraction, spread_seconds))


def missed(slot: datetime, fraction: float, spread_seconds: float, deadline_seconds: float,
           now: datetime) -> bool:
    """The environment's run of ``slot`` is past its ``startingDeadlineSeconds``: skip it."""
    return now - due_at(slot, fraction, spread_seconds) > timedelta(seconds=deadline_seconds)


def forbidden(phases: Iterable[str | None]) -> bool:
    """``concurrencyPolicy: Forbid``: a previous backup (its phase; ``None`` = not set yet) of
    the environment from this schedule is not terminal."""
    return any(phase not in TERMINAL_PHASES for phase in phases)


def short(name: str, limit: int = MAX_NAME) -> str:
    """``name`` if it fits ``limit`` characters, else its head and a short hash of the whole."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[:limit - len(digest) - 1].rstrip('-.')}-{digest}"


def backup_name(schedule: str, environment: str, slot: datetime) -> str:
    """The ``OdooBackup`` of ``environment``'s run of ``slot``: ``<schedule>-<environment>-<YYYYMMDDHHMM>``
    (UTC), the head shortened with a hash when longer than 63 characters. Deterministic, so that
    creating it twice is one backup."""
    stamp = slot.astimezone(UTC).strftime(_STAMP)
    return f"{short(f'{schedule}-{environment}', MAX_NAME - len(stamp) - 1)}-{stamp}"


def alternate_name(schedule: str, environment: str, slot: datetime, schedule_uid: str) -> str:
    """The name used when :func:`backup_name` is taken by another schedule's object (``nightly`` of
    ``prod-shop`` and ``nightly-prod`` of ``shop`` make the same one): the head, an 8-character
    hash of this schedule's UID and the environment, and the slot. Deterministic too."""
    stamp = slot.astimezone(UTC).strftime(_STAMP)
    digest = hashlib.sha256(f"{schedule_uid}/{environment}".encode()).hexdigest()[:8]
    head = short(f"{schedule}-{environment}", MAX_NAME - len(stamp) - len(digest) - 2)
    return f"{head}-{digest}-{stamp}"


@dataclass(frozen=True)
class Owned:
    """An ``OdooBackup`` made by the schedule, as far as history and status need it."""

    name: str
    environment: str
    slot: datetime
    phase: str | None = None
    completed_at: datetime | None = None
    uid: str = ""


def to_collect(owned: Iterable[Owned], *, successful_limit: int, failed_limit: int,
               keep_slot: datetime | None = None) -> list[str]:
    """Names of the backups to delete: per environment all but the newest ``successful_limit``
    Completed and the newest ``failed_limit`` Failed/Expired ones. Running ones, and those of
    ``keep_slot`` (the slot still being worked on: deleting its backup would let it run
    again), are kept; the latter still count against the limit."""
    by_env: dict[tuple[str, bool], list[Owned]] = {}
    for item in owned:
        if item.phase in TERMINAL_PHASES:
            by_env.setdefault((item.environment, item.phase in FAILED_PHASES), []).append(item)
    doomed: list[str] = []
    for (_, failed), items in sorted(by_env.items()):
        items.sort(key=lambda o: (o.slot, o.name), reverse=True)
        doomed += [o.name for o in items[failed_limit if failed else successful_limit:] if o.slot != keep_slot]
    return doomed


def active(owned: Iterable[Owned]) -> list[str]:
    """Names of the backups that are not terminal yet, sorted."""
    return sorted(o.name for o in owned if o.phase not in TERMINAL_PHASES)


def last_successful(owned: Iterable[Owned], before: datetime | None) -> datetime | None:
    """The latest completion among the Completed backups and ``before`` (the status's value:
    the backup may have been collected since)."""
    times = [o.completed_at for o in owned if o.phase == "Completed" and o.completed_at is not None]
    if before is not None:
        times.append(before)
    return max(times, default=None)
