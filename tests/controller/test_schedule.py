"""The OdooBackupSchedule controller (``docs/backups.md`` §2) over the in-memory apiserver, on a
controlled clock: which OdooBackup objects it makes and when, what it skips, what it collects, and
what its status says."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from oec_operator import clock
from oec_operator.controller.schedule import (
    ENVIRONMENT_LABEL,
    SCHEDULE_LABEL,
    SCHEDULED_AT,
    ScheduleController,
    ScheduleState,
    owned_of,
    rfc3339,
    target_of,
)
from oec_operator.controller.sync import spread
from oec_operator.domain import schedule as sch
from oec_operator.domain.outcome import Event
from oec_operator.settings import BACKUP_PLURAL, RESTORE_PLURAL, SCHEDULE_PLURAL

from .conftest import FakeKube, Harness

NS = "team"
_uids = itertools.count(1)
LOG = logging.getLogger("tests.controller.schedule")


class Clock:
    """The schedule clock, set by the test."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at.timestamp()


@pytest.fixture
def now() -> Iterator[Clock]:
    fake = Clock(datetime(2026, 1, 1, 1, 0, tzinfo=UTC))
    saved = clock._source, clock.recheck_seconds
    clock.install(fake, recheck=0.05)
    yield fake
    clock.install(saved[0], recheck=saved[1])


class Schedules:
    """One schedule object in the fake apiserver and the controller that runs it."""

    def __init__(self, harness: Harness, **spec: Any) -> None:
        self.kube: FakeKube = harness.kube
        self.controller = ScheduleController(harness.runtime)
        self.state = ScheduleState()
        self.body: dict[str, Any] = {
            "metadata": {"namespace": NS, "name": "nightly", "uid": f"sched-{next(_uids)}", "generation": 1,
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"schedule": "0 2 * * *", **spec}, "status": {}}
        self.kube.kinds[SCHEDULE_PLURAL][(NS, "nightly")] = self.body

    def env(self, name: str, **labels: str) -> dict[str, Any]:
        body = {"metadata": {"namespace": NS, "name": name, "uid": f"env-{name}", "labels": labels},
                "spec": {}, "status": {}}
        self.kube.objects[(NS, name)] = body
        return body

    def backups(self) -> dict[str, dict[str, Any]]:
        return {name: obj for (_, name), obj in self.kube.kinds[BACKUP_PLURAL].items()}

    def owned(self) -> list[sch.Owned]:
        return [o for obj in self.backups().values() if (o := owned_of(obj)) is not None]

    async def turn(self) -> datetime:
        """One look, with the indexes as kopf would hand them over (every object, fresh)."""
        targets = [target_of(obj) for obj in self.kube.objects.values()]
        return await self.controller.turn(self.body, self.state, targets, self.owned(), LOG)

    @property
    def status(self) -> dict[str, Any]:
        return dict(self.body["status"])

    def ready(self) -> tuple[str, str, str]:
        found = next(c for c in self.body["status"]["conditions"] if c["type"] == "Ready")
        return found["status"], found["reason"], found["message"]

    def set_phase(self, name: str, phase: str, completed: str | None = None) -> None:
        self.backups()[name]["status"] = {"phase": phase, **({"completedAt": completed} if completed else {})}


@pytest.fixture
def schedules(harness: Harness) -> Callable[..., Schedules]:
    return lambda **spec: Schedules(harness, **spec)


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


async def test_the_schedule_makes_one_backup_object_per_environment_when_its_time_comes(
        schedules: Callable[..., Schedules], now: Clock) -> None:
    s = schedules(environmentRef={"name": "shop"}, template={"retention": "daily", "notes": "nightly"})
    s.env("shop")
    assert await s.turn() == at(2026, 1, 1, 2)
    assert s.backups() == {}
    assert s.status["nextScheduleTime"] == "2026-01-01T02:00:00Z"
    assert s.ready()[:2] == ("True", "Scheduled")

    now.at = at(2026, 1, 1, 2, 0, 1)
    assert await s.turn() == at(2026, 1, 2, 2)
    made = s.backups()["nightly-shop-202601010200"]
    meta = made["metadata"]
    assert meta["labels"] == {SCHEDULE_LABEL: "nightly", ENVIRONMENT_LABEL: "shop"}
    assert meta["annotations"] == {SCHEDULED_AT: "2026-01-01T02:00:00Z",
                                   "argocd.argoproj.io/compare-options": "IgnoreExtraneous"}
    assert meta["ownerReferences"] == [{"apiVersion": "oec.sh/v1alpha1", "kind": "OdooBackupSchedule",
                                        "name": "nightly", "uid": s.body["metadata"]["uid"], "controller": True}]
    assert made["spec"] == {"environmentRef": {"name": "shop"}, "includeFilestore": True, "retention": "daily",
                            "notes": "nightly"}
    assert s.status["lastScheduleTime"] == "2026-01-01T02:00:00Z"
    assert s.status["active"] == ["nightly-shop-202601010200"]
    assert s.status["environments"] == 1

    # Looked at again (a spec change, a backup's event): nothing more.
    await s.turn()
    assert len(s.backups()) == 1

    s.set_phase("nightly-shop-202601010200", "Completed", "2026-01-01T02:03:00Z")
    await s.turn()
    assert s.status["active"] == []
    assert s.status["lastSuccessfulTime"] == "2026-01-01T02:03:00Z"


async def test_an_existing_object_of_that_name_means_the_run_was_made(
        schedules: Callable[..., Schedules], now: Clock) -> None:
    """A crash after the create, before anything else: the next process gets AlreadyExists."""
    s = schedules(environmentRef={"name": "shop"})
    s.env("shop")
    now.at = at(2026, 1, 1, 2, 0, 1)
    await s.turn()
    before = s.kube.calls["create_object"]
    s.state = ScheduleState()  # a new process: no memory
    body = s.backups()["nightly-shop-202601010200"]
    del s.kube.kinds[BACKUP_PLURAL][(NS, "nightly-shop-202601010200")]  # not in the index yet ...
    await s.kube.create_object(NS, body, plural=BACKUP_PLURAL)  # ... but in the apiserver
    owned_hidden: list[sch.Owned] = []
    targets = [target_of(obj) for obj in s.kube.objects.values()]
    await s.controller.turn(s.body, s.state, targets, owned_hidden, LOG)
    assert s.kube.calls["create_object"] == before + 2  # the test's one and the refused one
    assert len(s.backups()) == 1
    assert s.ready()[:2] == ("True", "Scheduled")


async def test_a_selector_spreads_the_runs_over_the_window_in_a_fixed_order(
        schedules: Callable[..., Schedules], now: Clock) -> None:
    s = schedules(selector={"matchLabels": {"tier": "prod"}}, spreadSeconds=600)
    names = [f"e{i}" for i in range(6)]
    for name in names:
        s.env(name, tier="prod")
    s.env("dev1", tier="dev")
    due = {n: sch.due_at(at(2026, 1, 1, 2), spread(f"env-{n}"), 600) for n in names}
    now.at = at(2026, 1, 1, 2)
    seen: list[str] = []
    for _ in range(20):
        until = await s.turn()
        made = sorted(b["spec"]["environmentRef"]["name"] for b in s.backups().values())
        assert all(due[n] <= now.at for n in made)  # nobody before its turn
        seen = made
        if until >= at(2026, 1, 2, 2):
            break
        assert until == min(d for n, d in due.items() if n not in made)
        now.at = until
    assert seen == names  # everyone once, dev1 not selected
    assert s.status["environments"] == 6
    assert max(due.values()) < at(2026, 1, 1, 2, 10)


async def test_a_selector_without_spreadseconds_spreads_over_an_hour(
        schedules: Callable[..., Schedules], now: Clock) -> None:
    s = schedules(selector={"matchLabels": {"tier": "prod"}})
    s.env("a", tier="prod")
    now.at = at(2026, 1, 1, 2)
    until = await s.turn()
    assert until == sch.due_at(at(2026, 1, 1, 2), spread("env-a"), 3600)
    assert until > at(2026, 1, 1, 2, 0, 1)


async def test_after_a_long_downtime_one_run_not_a_burst(schedules: Callable[..., Schedules], now: Clock) -> None:
    s = schedules(environmentRef={"name": "shop"})
    s.env("shop")
    now.at = at(2026, 1, 1, 2, 0, 1)
    await s.turn()
    s.set_phase("nightly-shop-202601010200", "Completed")
    now.at = at(2026, 1, 8, 2, 30)  # a week later, within the hour's deadline of the last slot
    await s.turn()
    assert sorted(s.backups()) == ["nightly-shop-202601010200", "nightly-shop-202601080200"]
    assert s.status["skipped"] == 6
    assert s.status["lastScheduleTime"] == "2026-01-08T02:00:00Z"


async def test_a_slot_past_its_deadline_is_skipped_and_counted(
        schedules: Callable[..., Schedules], now: Clock) -> None:
    s = schedules(environmentRef={"name": "shop"}, startingDeadlineSeconds=600)
    s.env("shop")
    now.at = at(2026, 1, 1, 2, 10, 1)
    await s.turn()
    assert s.backups() == {}
    assert s.status["skipped"] == 1
    s.state = ScheduleState()  # looked at again, by another process too: still counted once
    await s.turn()
    assert s.status["skipped"] == 1
    assert s.status["nextScheduleTime"] == "2026-01-02T02:00:00Z"


async def test_forbid_skips_an_environment_whose_previous_backup_still_runs(
        schedules: Callable[..., Schedules], now: Clock) -> None:
    s = schedules(selector={"matchLabels": {"tier": "prod"}}, spreadSeconds=0)
    s.env("slow", tier="prod")
    s.env("fast", tier="prod")
    now.at = at(2026, 1, 1, 2, 0, 1)
    await s.turn()
    s.set_phase("nightly-slow-202601010200", "Running")
    s.set_phase("nightly-fast-202601010200", "Completed")
    now.at = at(2026, 1, 2, 2, 0, 1)
    await s.turn()
    await s.turn()  # looked at again: counted once
    assert sorted(s.backups()) == ["nightly-fast-202601010200", "nightly-fast-202601020200",
                                   "nightly-slow-202601010200"]
    assert s.status["skipped"] == 1
    assert s.status["active"] == ["nightly-fast-202601020200", "nightly-slow-202601010200"]


async def test_history_limits_collect_the_oldest_backups(schedules: Callable[..., Schedules], now: Clock) -> None:
    s = schedules(environmentRef={"name": "shop"}, successfulHistoryLimit=2, failedHistoryLimit=1)
    s.env("shop")
    outcomes = ["Completed", "Failed", "Completed", "Failed", "Completed", "Completed"]
    for day, phase in enumerate(outcomes, start=1):
        now.at = at(2026, 1, day, 2, 0, 1)
        await s.turn()
        s.set_phase(f"nightly-shop-202601{day:02d}0200", phase)
    now.at = at(2026, 1, 6, 12)
    await s.turn()
    assert sorted(s.backups()) == ["nightly-shop-202601040200", "nightly-shop-202601050200",
                                   "nightly-shop-202601060200"]


async def test_history_limit_zero_never_runs_a_slot_twice(schedules: Callable[..., Schedules], now: Clock) -> None:
    s = schedules(environmentRef={"name": "shop"}, successfulHistoryLimit=0)
    s.env("shop")
    now.at = at(2026, 1, 1, 2, 0, 1)
    await s.turn()
    s.set_phase("nightly-shop-202601010200", "Completed")
    now.at = at(2026, 1, 1, 2, 30)
    s.state = ScheduleState()
    await s.turn()
    await s.turn()
    assert s.kube.calls["create_object"] == 1
    now.at = at(2026, 1, 1, 3, 0, 1)  # the slot's window is over: collected
    await s.turn()
    assert s.backups() == {}
    assert s.kube.calls["create_object"] == 1


async def test_a_run_carries_the_environments_credentials_for_after_it_is_gone(
        schedules: Callable[..., Schedules], now: Clock) -> None:
    """A scheduled OdooBackup is read daily after its environment object is gone (it stays until
    the history collects it): without the environment's ``credentialsSecretRef`` it is read with
    the operator's key, which may not see that project's backups (404 -> wrongly ``Expired``)."""
    s = schedules(environmentRef={"name": "shop"})
    s.env("shop")["spec"]["credentialsSecretRef"] = {"name": "team-key", "key": "apiKey"}
    now.at = at(2026, 1, 1, 2, 0, 1)
    await s.turn()
    made = s.backups()["nightly-shop-202601010200"]
    assert made["spec"]["credentialsSecretRef"] == {"name": "team-key", "key": "apiKey"}


async def test_two_schedules_whose_names_collide_both_back_up(schedules: Callable[..., Schedules], now: Clock) -> None:
    """Schedule ``nightly`` of environment ``prod-shop`` and schedule ``nightly-prod`` of environment
    ``shop`` make the same ``<schedule>-<environment>-<slot>`` name. The second create's
    AlreadyExists is another schedule's object, not this run made earlier: each environment still
    gets its backup (it was skipped in silence)."""
    first = schedules(environmentRef={"name": "prod-shop"})
    second = schedules(environmentRef={"name": "shop"})
    del second.kube.kinds[SCHEDULE_PLURAL][(NS, "nightly")]
    second.kube.kinds[SCHEDULE_PLURAL][(NS, "nightly")] = first.body
    second.body["metadata"]["name"] = "nightly-prod"
    second.kube.kinds[SCHEDULE_PLURAL][(NS, "nightly-prod")] = second.body
    first.env("prod-shop")
    first.env("shop")
    now.at = at(2026, 1, 1, 2, 0, 1)

    async def turn(s: Schedules) -> None:
        label = s.body["metadata"]["name"]
        owned = [o for obj in s.backups().values() if obj["metadata"]["labels"][SCHEDULE_LABEL] == label
                 and (o := owned_of(obj)) is not None]
        targets = [target_of(obj) for obj in s.kube.objects.values()]
        await s.controller.turn(s.body, s.state, targets, owned, LOG)

    for _ in range(2):  # looked at twice: still one backup each
        await turn(first)
        await turn(second)
    made = {obj["spec"]["environmentRef"]["name"]: obj for obj in first.backups().values()}
    assert sorted(made) == ["prod-shop", "shop"] and len(first.backups()) == 2
    assert made["shop"]["metadata"]["ownerReferences"][0]["uid"] == second.body["metadata"]["uid"]
    assert made["prod-shop"]["metadata"]["ownerReferences"][0]["uid"] == first.body["metadata"]["uid"]
    assert second.status["active"] == [made["shop"]["metadata"]["name"]]
    second.state = ScheduleState()  # a restarted process: the create is still idempotent
    await turn(second)
    assert len(first.backups()) == 2


async def test_history_keeps_a_backup_a_pending_restore_names(schedules: Callable[..., Schedules], now: Clock) -> None:
    """An OdooRestore not finished yet names a schedule's backup (``backupRef``) that falls beyond
    the history limit: collecting it would leave the restore waiting for an object that never comes
    back (and refused at its notAfter). It is kept until the restore ended, then collected."""
    s = schedules(environmentRef={"name": "shop"}, successfulHistoryLimit=1)
    s.env("shop")
    now.at = at(2026, 1, 1, 2, 0, 1)
    await s.turn()
    s.set_phase("nightly-shop-202601010200", "Completed")
    restore: dict[str, Any] = {"metadata": {"namespace": NS, "name": "back", "uid": "r-1"},
               "spec": {"environmentRef": {"name": "shop"}, "backupRef": {"name": "nightly-shop-202601010200"}},
               "status": {"phase": "Pending"}}
    s.kube.kinds[RESTORE_PLURAL][(NS, "back")] = restore
    now.at = at(2026, 1, 2, 2, 0, 1)
    await s.turn()
    s.set_phase("nightly-shop-202601020200", "Completed")
    now.at = at(2026, 1, 2, 12)
    await s.turn()
    assert sorted(s.backups()) == ["nightly-shop-202601010200", "nightly-shop-202601020200"]
    restore["status"]["phase"] = "Completed"
    await s.turn()
    assert sorted(s.backups()) == ["nightly-shop-202601020200"]


@pytest.mark.parametrize(("spec", "field"), [
    ({"schedule": "0 2 * *"}, "spec.schedule"),
    ({"schedule": "0 2 * * * *"}, "spec.schedule"),
    ({"timeZone": "Europe/Nowhere"}, "spec.timeZone"),
    ({"schedule": "99 2 * * *"}, "spec.schedule"),
    ({"timeZone": "Mars/Olympus"}, "spec.timeZone"),
])
async def test_an_invalid_schedule_is_stalled_with_the_field_named(
        schedules: Callable[..., Schedules], now: Clock, spec: dict[str, Any], field: str) -> None:
    s = schedules(environmentRef={"name": "shop"}, **spec)
    s.env("shop")
    now.at = at(2026, 1, 1, 2, 0, 1)
    await s.turn()
    assert s.backups() == {}
    status, reason, message = s.ready()
    assert (status, reason) == ("False", "InvalidSpec") and message.startswith(field)
    stalled = next(c for c in s.status["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "True"
    assert s.status["observedGeneration"] == 1
    # fixed: Ready again, Stalled gone
    s.body["spec"] = {"schedule": "0 2 * * *", "environmentRef": {"name": "shop"}}
    s.body["metadata"]["generation"] = 2
    await s.turn()
    assert s.ready()[:2] == ("True", "Scheduled")
    assert [c["type"] for c in s.status["conditions"]] == ["Ready"]


async def test_an_invalid_schedule_posts_one_warning_naming_the_field(
        schedules: Callable[..., Schedules], now: Clock) -> None:
    s = schedules(environmentRef={"name": "shop"}, schedule="99 2 * * *")
    posted: list[Event] = []
    s.state.events = posted.append
    s.env("shop")
    now.at = at(2026, 1, 1, 2, 0, 1)
    for _ in range(3):  # the daemon looks again and again (IDLE, spec touches, backup events)
        await s.turn()
    assert [(e.type, e.reason) for e in posted] == [("Warning", "InvalidSpec")]
    assert posted[0].message.startswith("spec.schedule")


async def test_no_matching_environment_is_not_a_failure(schedules: Callable[..., Schedules], now: Clock) -> None:
    s = schedules(selector={"matchLabels": {"tier": "prod"}})
    s.env("dev", tier="dev")
    now.at = at(2026, 1, 1, 2, 0, 1)
    await s.turn()
    status, reason, message = s.ready()
    assert (status, reason) == ("True", "Scheduled")
    assert "no environment matches the selector" in message
    assert s.status["environments"] == 0


async def test_a_suspended_schedule_makes_nothing(schedules: Callable[..., Schedules], now: Clock) -> None:
    s = schedules(environmentRef={"name": "shop"}, suspend=True)
    s.env("shop")
    now.at = at(2026, 1, 1, 2, 0, 1)
    await s.turn()
    assert s.backups() == {}
    assert s.ready()[:2] == ("True", "Suspended")
    assert "nextScheduleTime" not in s.status


async def test_a_crash_after_recording_the_slot_resumes_it(schedules: Callable[..., Schedules], now: Clock) -> None:
    s = schedules(environmentRef={"name": "shop"})
    s.env("shop")
    s.body["status"] = {"lastScheduleTime": "2026-01-01T02:00:00Z"}  # recorded, then the process died
    now.at = at(2026, 1, 1, 2, 20)
    await s.turn()
    assert list(s.backups()) == ["nightly-shop-202601010200"]


async def test_the_daemon_sleeps_until_the_slot_and_wakes_on_a_change(
        schedules: Callable[..., Schedules], now: Clock) -> None:
    """run(): the loop the kopf daemon runs, on the controlled clock."""
    s = schedules(environmentRef={"name": "shop"})
    s.env("shop")
    targets = {NS: [target_of(s.kube.objects[(NS, "shop")])]}
    owned: dict[tuple[str, str], list[sch.Owned]] = {}
    task = asyncio.create_task(s.controller.run(s.body, s.state, targets, owned, LOG))
    try:
        for _ in range(100):
            await asyncio.sleep(0.01)
            if s.status.get("nextScheduleTime"):
                break
        assert s.backups() == {}
        now.at = at(2026, 1, 1, 2, 0, 1)
        for _ in range(100):
            await asyncio.sleep(0.02)
            if s.backups():
                break
        assert list(s.backups()) == ["nightly-shop-202601010200"]
        s.body["spec"]["suspend"] = True
        s.state.wake.set()
        for _ in range(100):
            await asyncio.sleep(0.01)
            if s.status.get("message", "").startswith("suspended"):
                break
        assert s.ready()[:2] == ("True", "Suspended")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_rfc3339() -> None:
    assert rfc3339(datetime(2026, 1, 1, 2, tzinfo=UTC) + timedelta(microseconds=5)) == "2026-01-01T02:00:00Z"
