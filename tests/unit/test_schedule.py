"""When an OdooBackupSchedule runs and what it keeps (``docs/backups.md`` §2): cron in a time zone
across DST, missed slots skipped (never a burst after downtime), the spread, Forbid, history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oec_operator.controller.sync import spread
from oec_operator.domain import schedule as sch


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def slots(cron: sch.Cron, start: datetime, count: int) -> list[datetime]:
    out, at = [], start
    for _ in range(count):
        at = cron.after(at)
        out.append(at)
    return out


# --- cron and time zone ------------------------------------------------------------------------

def test_a_nightly_schedule_runs_at_the_local_time_of_its_zone() -> None:
    cron = sch.parse("0 2 * * *", "Europe/Berlin")
    assert cron.after(utc(2026, 1, 5, 12)) == utc(2026, 1, 6, 1)  # 02:00 CET = 01:00 UTC
    assert cron.after(utc(2026, 7, 5, 12)) == utc(2026, 7, 6, 0)  # 02:00 CEST = 00:00 UTC


def test_utc_is_the_default_zone() -> None:
    assert sch.parse("30 4 * * *", None).after(utc(2026, 1, 1)) == utc(2026, 1, 1, 4, 30)


def test_a_time_skipped_by_the_clock_going_forward_runs_once_just_after_the_gap() -> None:
    # Europe/Berlin 2026-03-29: 02:00 CET -> 03:00 CEST; 02:30 does not exist that night.
    cron = sch.parse("30 2 * * *", "Europe/Berlin")
    got = slots(cron, utc(2026, 3, 27, 12), 3)
    assert got == [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30)]


def test_a_time_repeated_by_the_clock_going_back_runs_once() -> None:
    # Europe/Berlin 2026-10-25: 03:00 CEST -> 02:00 CET; 02:30 happens twice that night.
    cron = sch.parse("30 2 * * *", "Europe/Berlin")
    got = slots(cron, utc(2026, 10, 23, 12), 3)
    assert got == [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]
    assert cron.latest(utc(2026, 10, 25, 3)) == utc(2026, 10, 25, 0, 30)


def test_the_repeated_hour_runs_sub_hourly_schedules_once_too() -> None:
    cron = sch.parse("*/30 * * * *", "Europe/Berlin")
    got = slots(cron, utc(2026, 10, 24, 23, 45), 6)
    # local 02:00 and 02:30 CEST (00:00, 00:30 UTC), then 03:00 CET (02:00 UTC): the second pass
    # through 02:xx (01:00, 01:30 UTC) does not run again.
    assert got == [utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 2, 0),
                   utc(2026, 10, 25, 2, 30), utc(2026, 10, 25, 3, 0), utc(2026, 10, 25, 3, 30)]


@pytest.mark.parametrize(("schedule", "zone", "field"), [
    ("0 2 * *", "UTC", "schedule"),
    ("0 0 2 * * *", "UTC", "schedule"),
    ("@daily", "UTC", "schedule"),
    ("61 2 * * *", "UTC", "schedule"),
    ("0 2 * * mon-xyz", "UTC", "schedule"),
    ("TZ=UTC 0 2 * * *", "UTC", "schedule"),
    ("0 0 30 2 *", "UTC", "schedule"),  # February 30th: never
    ("0 2 * * *", "Mars/Olympus", "timeZone"),
    ("0 2 * * *", "../../etc/passwd", "timeZone"),
])
def test_an_unusable_schedule_or_zone_names_the_field(schedule: str, zone: str, field: str) -> None:
    with pytest.raises(sch.InvalidSchedule) as caught:
        sch.parse(schedule, zone)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"spec.{field}: ")


# --- missed slots, deadline, no burst ----------------------------------------------------------

DAILY = sch.parse("0 2 * * *", "UTC")
CREATED = utc(2026, 1, 1, 0, 0)


def test_a_slot_runs_when_it_comes() -> None:
    got = sch.plan(DAILY, last=None, created=CREATED, now=utc(2026, 1, 1, 2, 0, 1),
                   spread_seconds=0, deadline_seconds=3600)
    assert got == sch.Plan(utc(2026, 1, 1, 2), utc(2026, 1, 1, 2), 0, utc(2026, 1, 2, 2))


def test_slots_before_the_schedule_existed_never_run() -> None:
    got = sch.plan(DAILY, last=None, created=utc(2026, 1, 1, 3), now=utc(2026, 1, 1, 3, 0, 5),
                   spread_seconds=0, deadline_seconds=3600)
    assert got.slot is None and got.skipped == 0 and got.next == utc(2026, 1, 2, 2)


def test_after_a_week_of_downtime_only_the_most_recent_slot_runs_and_the_rest_are_counted() -> None:
    got = sch.plan(DAILY, last=utc(2026, 1, 1, 2), created=CREATED, now=utc(2026, 1, 8, 2, 30),
                   spread_seconds=0, deadline_seconds=3600)
    assert got.slot == utc(2026, 1, 8, 2) and got.new
    assert got.skipped == 6  # Jan 2..7


def test_a_slot_past_its_deadline_is_skipped_too() -> None:
    got = sch.plan(DAILY, last=utc(2026, 1, 1, 2), created=CREATED, now=utc(2026, 1, 8, 3, 0, 1),
                   spread_seconds=0, deadline_seconds=3600)
    assert got.slot is None and got.skipped == 7
    assert got.record == utc(2026, 1, 8, 2)  # recorded: never counted again


def test_the_deadline_counts_from_the_end_of_the_spread_window() -> None:
    got = sch.plan(DAILY, last=utc(2026, 1, 1, 2), created=CREATED, now=utc(2026, 1, 2, 3, 30),
                   spread_seconds=3600, deadline_seconds=3600)
    assert got.slot == utc(2026, 1, 2, 2)


def test_the_slot_in_progress_is_resumed_after_a_restart_until_its_window_ends() -> None:
    last = utc(2026, 1, 2, 2)
    during = sch.plan(DAILY, last=last, created=CREATED, now=utc(2026, 1, 2, 2, 40),
                      spread_seconds=3600, deadline_seconds=600)
    assert during == sch.Plan(last, None, 0, utc(2026, 1, 3, 2))
    after = sch.plan(DAILY, last=last, created=CREATED, now=utc(2026, 1, 2, 3, 11),
                     spread_seconds=3600, deadline_seconds=600)
    assert after.slot is None and after.skipped == 0 and after.record is None


def test_a_year_of_minutely_slots_missed_is_counted_in_bounded_time() -> None:
    cron = sch.parse("* * * * *", "UTC")
    got = sch.plan(cron, last=utc(2025, 1, 1), created=utc(2025, 1, 1), now=utc(2026, 1, 1, 0, 0, 30),
                   spread_seconds=0, deadline_seconds=60)
    assert got.slot == utc(2026, 1, 1) and got.skipped == sch.MAX_COUNTED - 1


@given(days=st.integers(min_value=0, max_value=60), minutes=st.integers(min_value=0, max_value=24 * 60 - 1),
       deadline=st.integers(min_value=60, max_value=86_400))
def test_whatever_the_downtime_at_most_one_slot_runs(days: int, minutes: int, deadline: int) -> None:
    last = utc(2026, 1, 1, 2)
    now = last + timedelta(days=days, minutes=minutes)
    got = sch.plan(DAILY, last=last, created=CREATED, now=now, spread_seconds=0, deadline_seconds=deadline)
    missed_slots = [s for s in slots(DAILY, last, days + 1) if s <= now]
    assert got.skipped + (1 if got.slot is not None and got.new else 0) == len(missed_slots)
    assert got.record == (max(missed_slots) if missed_slots else None)  # each slot looked at once
    if got.slot is not None:
        assert now - got.slot <= timedelta(seconds=deadline)
        assert got.slot == max([last, *missed_slots])
    assert got.next > now


# --- spread ----------------------------------------------------------------------------------

@given(uid=st.uuids(), spread_seconds=st.integers(min_value=0, max_value=86_400))
def test_the_spread_offset_is_fixed_per_environment_and_inside_the_window(uid: object, spread_seconds: int) -> None:
    fraction = spread(str(uid))
    slot = utc(2026, 1, 1, 2)
    due = sch.due_at(slot, fraction, spread_seconds)
    assert due == sch.due_at(slot, spread(str(uid)), spread_seconds)
    assert slot <= due < slot + timedelta(seconds=spread_seconds) or (spread_seconds == 0 and due == slot)


def test_the_spread_puts_500_environments_inside_the_write_budget() -> None:
    """500 environments over the default selector window: about 8 a minute on average, no
    minute above the API's 20 writes."""
    slot = utc(2026, 1, 1, 2)
    per_minute: dict[int, int] = {}
    for i in range(500):
        due = sch.due_at(slot, spread(f"uid-{i}"), sch.SELECTOR_SPREAD_SECONDS)
        minute = int((due - slot).total_seconds() // 60)
        per_minute[minute] = per_minute.get(minute, 0) + 1
    assert max(per_minute) < 60
    assert sum(per_minute.values()) / 60 < 20 / 2
    assert max(per_minute.values()) <= 20


def test_an_environment_run_past_its_own_deadline_is_missed() -> None:
    slot = utc(2026, 1, 1, 2)
    assert not sch.missed(slot, 0.5, 3600, 600, utc(2026, 1, 1, 2, 40))
    assert sch.missed(slot, 0.5, 3600, 600, utc(2026, 1, 1, 2, 40, 1))


# --- Forbid -----------------------------------------------------------------------------------

def test_forbid_skips_while_the_previous_backup_is_not_terminal() -> None:
    assert sch.forbidden(["Completed", "Running"])
    assert sch.forbidden([None])  # created, not picked up yet
    assert not sch.forbidden(["Completed", "Failed", "Expired"])
    assert not sch.forbidden([])


# --- names -------------------------------------------------------------------------------------

def test_the_backup_name_is_deterministic_and_fits_a_label_value() -> None:
    slot = utc(2026, 1, 1, 2, 5)
    assert sch.backup_name("nightly", "shop", slot) == "nightly-shop-202601010205"
    long = sch.backup_name("n" * 40, "e" * 40, slot)
    assert len(long) <= 63 and long.endswith("-202601010205")
    assert long == sch.backup_name("n" * 40, "e" * 40, slot)
    assert long != sch.backup_name("n" * 40, "e" * 39 + "f", slot)


def test_the_name_stamp_is_utc_whatever_the_zone() -> None:
    cron = sch.parse("0 2 * * *", "America/New_York")
    assert sch.backup_name("s", "e", cron.after(utc(2026, 1, 1))) == "s-e-202601010700"


# --- history ---------------------------------------------------------------------------------

def _owned(env: str, day: int, phase: str | None) -> sch.Owned:
    return sch.Owned(f"s-{env}-{day}", env, utc(2026, 1, day, 2), phase)


def test_history_keeps_the_newest_completed_and_failed_per_environment() -> None:
    owned = [_owned("a", d, "Completed") for d in range(1, 10)] + [
        _owned("a", 10, "Failed"), _owned("a", 11, "Expired"), _owned("a", 12, "Failed"), _owned("a", 13, "Running"),
        _owned("b", 1, "Completed"), _owned("b", 2, "Completed")]
    doomed = sch.to_collect(owned, successful_limit=7, failed_limit=1)
    assert sorted(doomed) == ["s-a-1", "s-a-10", "s-a-11", "s-a-2"]


def test_history_limit_zero_keeps_the_backup_of_the_slot_in_progress() -> None:
    owned = [_owned("a", 1, "Completed"), _owned("a", 2, "Completed"), _owned("a", 3, None)]
    assert sch.to_collect(owned, successful_limit=0, failed_limit=0, keep_slot=utc(2026, 1, 2, 2)) == ["s-a-1"]


def test_the_backup_of_the_slot_in_progress_counts_against_the_limit() -> None:
    owned = [_owned("a", 1, "Completed"), _owned("a", 2, "Completed"), _owned("a", 3, "Completed")]
    assert sch.to_collect(owned, successful_limit=2, failed_limit=0, keep_slot=utc(2026, 1, 3, 2)) == ["s-a-1"]


def test_status_summaries() -> None:
    done = sch.Owned("x", "a", utc(2026, 1, 1), "Completed", utc(2026, 1, 1, 0, 5))
    assert sch.active([done, _owned("a", 2, "Running"), _owned("b", 2, None)]) == ["s-a-2", "s-b-2"]
    assert sch.last_successful([done], utc(2025, 12, 1)) == utc(2026, 1, 1, 0, 5)
    assert sch.last_successful([], utc(2025, 12, 1)) == utc(2025, 12, 1)
