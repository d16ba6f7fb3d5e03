"""``OdooRestore`` (``docs/backups.md`` §3): the real restore controller and OEC client against the
in-process simulator over HTTP, objects in the fake apiserver. What a user relies on: one restore
per object whatever is lost or repeated, never one after its notAfter or to the wrong environment,
the environment left alone while it runs, the way back recorded."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections.abc import Callable, Mapping
from typing import Any

from oec_operator.controller.restore import RestoreController, RestoreHandle
from oec_operator.controller.state import Handle
from oec_operator.domain.restore import idempotency_key, running_of
from oec_operator.models.backups import OdooRestoreStatus
from oec_operator.models.status import Status
from oec_operator.settings import RESTORE_PLURAL
from tests.simulator.sim_helpers import RW

from .conftest import Harness
from .test_not_found import inject

RESTORE = "/restore"


def _later(seconds: float) -> str:
    at = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds)
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


async def _running_env(h: Harness, name: str = "shop") -> tuple[dict[str, Any], str]:
    """An OdooEnvironment whose environment runs; returns it and the OEC id."""
    body = h.add(name)
    await h.change(body)
    h.sim.clock.advance(10)
    await h.list_project()
    await h.poll(body)
    status = Status.from_body(body["status"])
    assert status.phase == "running" and status.environment_id
    return body, status.environment_id


async def _completed_backup(h: Harness, environment_id: str) -> str:
    api = h.runtime.client(RW)
    backup = await api.create_backup(environment_id, retention_type="monthly")
    h.sim.clock.advance(10)
    assert (await api.get_backup(backup.id)).status == "completed"
    return backup.id


_uids = iter(range(1, 10_000))


def _add_restore(h: Harness, name: str, *, env: str = "shop", **spec: Any) -> dict[str, Any]:
    uid = f"00000000-0000-4000-9000-{next(_uids):012d}"
    body = {"metadata": {"namespace": "team", "name": name, "uid": uid, "generation": 1,
                         "creationTimestamp": "2026-12-01T00:00:00Z"},
            "spec": {"environmentRef": {"name": env}, "confirmEnvironmentName": env, "notAfter": _later(3600),
                     **spec},
            "status": {}}
    h.kube.kinds[RESTORE_PLURAL][("team", name)] = body
    return body


def _handle(h: Harness, body: Mapping[str, Any]) -> RestoreHandle:
    return RestoreHandle(body=body, events=h.sink(body), logger=logging.getLogger("tests.restore"))


def _status(body: Mapping[str, Any]) -> OdooRestoreStatus:
    return OdooRestoreStatus.from_body(body.get("status"))


def _condition(body: Mapping[str, Any], kind: str) -> tuple[str, str]:
    found = _status(body).condition(kind) or {}
    return found.get("status", ""), found.get("reason", "")


async def _restore_posts(h: Harness) -> list[dict[str, Any]]:
    entries = (await h.sim.admin.get("/requests")).json()
    return [e for e in entries if e["method"] == "POST" and e["path"].endswith(RESTORE)]


def _restore_tasks(h: Harness, environment_id: str) -> list[Any]:
    return [t for t in h.sim.state.store.tasks.values() if t.environment_id == environment_id and t.type == "restore"]


async def _until_terminal(h: Harness, ctl: RestoreController, obj: RestoreHandle, steps: int = 10) -> None:
    for _ in range(steps):
        if await ctl.step(obj) is None:
            return
        h.sim.clock.advance(5)
    raise AssertionError(f"not terminal: {obj.body['status']}")


async def test_a_lost_answer_starts_one_restore_and_records_the_safety_backup(harness: Harness) -> None:
    h = harness
    _, env_id = await _running_env(h)
    backup_id = await _completed_backup(h, env_id)
    body = _add_restore(h, "back", backupId=backup_id)
    ctl, obj = RestoreController(h.runtime), _handle(h, body)
    # The restore is accepted, but its answer never arrives (503 after the API acted).
    await inject(h, kind="error", status=503, route="restore_backup", when="after", count=1)

    await ctl.step(obj)
    assert _status(body).phase == "Running" and _status(body).started_at  # the intent, before the POST
    assert _status(body).task_id is None
    await ctl.step(obj)  # the same key again: the API replays the first answer
    assert _status(body).task_id is not None
    await _until_terminal(h, ctl, obj)

    tasks = _restore_tasks(h, env_id)
    assert len(tasks) == 1 and tasks[0].id == _status(body).task_id
    posts = await _restore_posts(h)
    assert len(posts) == 2 and {p["idempotency_key"] for p in posts} == {idempotency_key(body["metadata"]["uid"])}
    status = _status(body)
    assert status.phase == "Completed" and _condition(body, "Ready") == ("True", "Completed")
    safety = h.sim.state.store.safety_backup_of(tasks[0].id)
    assert safety is not None and status.safety_backup_id == safety.id
    completed = [e for n, e in h.events if n == "back" and e.reason == "Completed"]
    assert len(completed) == 1 and safety.id in completed[0].message


async def test_a_terminal_restore_never_sends_again(harness: Harness) -> None:
    h = harness
    _, env_id = await _running_env(h)
    backup_id = await _completed_backup(h, env_id)
    body = _add_restore(h, "once", backupId=backup_id)
    ctl = RestoreController(h.runtime)
    await _until_terminal(h, ctl, _handle(h, body))
    assert _status(body).phase == "Completed"
    seen = len((await h.sim.admin.get("/requests")).json())

    # A restarted operator (nothing in memory) and the same body: nothing is sent, nothing written.
    writes = h.kube.calls["patch_status"]
    for _ in range(3):
        assert await RestoreController(h.runtime).step(_handle(h, body)) is None
    assert len((await h.sim.admin.get("/requests")).json()) == seen
    assert h.kube.calls["patch_status"] == writes
    assert len(_restore_tasks(h, env_id)) == 1


async def test_a_restore_waits_while_another_task_runs_then_runs_once(harness: Harness) -> None:
    h = harness
    _, env_id = await _running_env(h)
    backup_id = await _completed_backup(h, env_id)
    other = await h.runtime.client(RW).restart(env_id, idempotency_key="someone-else-restarts")
    body = _add_restore(h, "later", backupId=backup_id)
    ctl, obj = RestoreController(h.runtime), _handle(h, body)

    await ctl.step(obj)
    assert _status(body).phase == "Running" and _status(body).task_id is None
    assert _condition(body, "Reconciling") == ("True", "TaskInProgress")
    assert other.task_id in (_status(body).condition("Reconciling") or {})["message"]
    assert _restore_tasks(h, env_id) == []

    h.sim.clock.advance(10)  # the restart ends
    await _until_terminal(h, ctl, obj)
    assert _status(body).phase == "Completed" and len(_restore_tasks(h, env_id)) == 1


async def test_checks_that_fail_refuse_the_restore_and_send_nothing(harness: Harness) -> None:
    h = harness
    _, env_id = await _running_env(h)
    _, other_env = await _running_env(h, "other")
    backup_id = await _completed_backup(h, env_id)
    foreign = await _completed_backup(h, other_env)
    await h.sim.admin.patch(f"/environments/{env_id}", json={"fail_next_backup": True})
    failed = (await h.runtime.client(RW).create_backup(env_id, retention_type="monthly")).id
    h.sim.clock.advance(10)

    cases = {
        "typo": ({"backupId": backup_id, "confirmEnvironmentName": "shopp"}, "ConfirmationMismatch"),
        "stale": ({"backupId": backup_id, "notAfter": _later(-60)}, "Expired"),
        "foreign": ({"backupId": foreign}, "ForeignBackup"),
        "broken": ({"backupId": failed}, "BackupNotCompleted"),
    }
    ctl = RestoreController(h.runtime)
    for name, (spec, reason) in cases.items():
        body = _add_restore(h, name, **spec)
        assert await ctl.step(_handle(h, body)) is None, name
        assert _status(body).phase == "Refused", name
        assert _condition(body, "Stalled") == ("True", reason), name
        assert "nothing was sent" in (_status(body).message or "")
        assert await ctl.step(_handle(h, body)) is None  # terminal
        assert reason in h.reasons(name)
    assert await _restore_posts(h) == []
    assert _restore_tasks(h, env_id) == [] and _restore_tasks(h, other_env) == []


async def test_a_failed_restore_task_is_reported_and_not_retried(harness: Harness) -> None:
    h = harness
    _, env_id = await _running_env(h)
    backup_id = await _completed_backup(h, env_id)
    await h.sim.patch_config(fail_next_restores=1, fail_restore_message="pg_restore: disk full")
    body = _add_restore(h, "doomed", backupId=backup_id)
    ctl, obj = RestoreController(h.runtime), _handle(h, body)
    await ctl.step(obj)

    await _until_terminal(h, ctl, obj)
    status = _status(body)
    assert status.phase == "Failed" and _condition(body, "Stalled") == ("True", "RestoreFailed")
    assert "pg_restore: disk full" in (status.message or "")
    assert "RestoreFailed" in h.reasons("doomed")
    assert await ctl.step(obj) is None and len(await _restore_posts(h)) == 1


async def test_the_environment_shows_restoring_and_sends_nothing_of_its_own_meanwhile(harness: Harness) -> None:
    h = harness
    env, env_id = await _running_env(h)
    backup_id = await _completed_backup(h, env_id)
    body = _add_restore(h, "back", backupId=backup_id)
    await RestoreController(h.runtime).step(_handle(h, body))
    index: dict[str, list[str]] = {}
    for key, what in running_of(body).items():
        index.setdefault(key, []).append(what)
    assert list(index) == ["team/shop"]

    # Meanwhile the user asks for a restart: not sent while the restore runs.
    env["metadata"]["annotations"]["oec.sh/restart-requested-at"] = "2026-12-04T12:00:00Z"
    handle = Handle(body=env, state=h.state(env), claims={}, events=h.sink(env),
                    logger=logging.getLogger("tests.restore"), restores=index)
    await h.sync.reconcile_now(handle)
    status = Status.from_body(env["status"])
    reconciling = status.condition("Reconciling") or {}
    assert (reconciling.get("status"), reconciling.get("reason")) == ("True", "Restoring")
    assert "OdooRestore back" in reconciling.get("message", "")
    assert [t for t in h.sim.state.store.tasks.values() if t.environment_id == env_id and t.type == "restart"] == []

    # The restore ended (the index is empty again): the restart goes out, once.
    await _until_terminal(h, RestoreController(h.runtime), _handle(h, body))
    await h.sync.reconcile_now(h.handle(env))
    assert Status.from_body(env["status"]).condition("Reconciling") is not None
    assert [t.type for t in h.sim.state.store.tasks.values() if t.environment_id == env_id and t.type == "restart"] == [
        "restart"]


async def _until(done: Callable[[], bool]) -> None:
    """Until ``done()``, 10 s at most."""
    for _ in range(1000):
        if done():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not within the timeout")


async def test_the_environment_reconciles_at_once_when_a_restore_of_it_changes_phase(
        make_harness: Callable[..., Harness]) -> None:
    h = make_harness(polling="direct")  # no project watch to wake it meanwhile
    env, _ = await _running_env(h)
    state, loop = h.state(env), asyncio.get_running_loop()
    loop_task = asyncio.create_task(h.sync.run(h.handle(env)))
    try:
        await _until(lambda: state.next_poll_at != 0.0)  # the poll loop's first turn
        far = state.next_poll_at = loop.time() + 3600  # nothing due for an hour
        await asyncio.sleep(0.2)
        assert state.next_poll_at == far
        h.runtime.wake("team/shop")  # what the OdooRestore's event handler does on a phase change
        await _until(lambda: state.next_poll_at != far)
    finally:
        loop_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop_task
    assert "team/shop" not in h.runtime.wakers  # a stopped loop is not woken


async def test_an_observed_environment_is_confirmed_by_its_name_in_oec(harness: Harness) -> None:
    h = harness
    created = await h.sim.create_env(name="Legacy ERP", environment_type="production")
    h.sim.clock.advance(10)
    env = h.add("legacy", managementPolicy="Observe", environmentId=created["id"])
    await h.change(env)
    backup_id = await _completed_backup(h, created["id"])
    ctl = RestoreController(h.runtime)

    wrong = _add_restore(h, "by-object-name", env="legacy", backupId=backup_id, confirmEnvironmentName="legacy")
    assert await ctl.step(_handle(h, wrong)) is None
    assert _condition(wrong, "Stalled") == ("True", "ConfirmationMismatch")
    assert "'Legacy ERP'" in (_status(wrong).message or "")
    right = _add_restore(h, "by-oec-name", env="legacy", backupId=backup_id, confirmEnvironmentName="Legacy ERP")
    await _until_terminal(h, ctl, _handle(h, right))
    assert _status(right).phase == "Completed" and len(_restore_tasks(h, created["id"])) == 1


async def test_with_the_reference_enums_a_restore_completes_and_names_its_safety_backup(harness: Harness) -> None:
    """The reference API's backup types have no ``pre_restore`` (``docs/oec-api.md`` §1 row 28):
    a list filtered on it is refused (422). The finished restore must still complete (it stayed
    Running for ever, its environment blocked as Restoring) and find the safety backup."""
    h = harness
    _, env_id = await _running_env(h)
    backup_id = await _completed_backup(h, env_id)
    await h.sim.patch_config(backup_enums="ref", backup_page_field="total_pages")
    body = _add_restore(h, "ref-api", backupId=backup_id)
    await _until_terminal(h, RestoreController(h.runtime), _handle(h, body))
    status = _status(body)
    assert status.phase == "Completed" and _condition(body, "Ready") == ("True", "Completed")
    [task] = _restore_tasks(h, env_id)
    safety = h.sim.state.store.safety_backup_of(task.id)
    assert safety is not None and status.safety_backup_id == safety.id


async def test_a_lost_answer_is_not_sent_again_once_the_replay_window_passed(harness: Harness) -> None:
    """The API replays a repeated ``Idempotency-Key`` for 24 h only (``docs/oec-api.md`` §1 row 5).
    A restore whose answer was lost and that is looked at again a day later (the operator was
    down) must not be sent again: the first one may have run, and a second would overwrite a
    day of data with the old backup again."""
    h = harness
    _, env_id = await _running_env(h)
    backup_id = await _completed_backup(h, env_id)
    body = _add_restore(h, "lost", backupId=backup_id)
    await inject(h, kind="error", status=503, route="restore_backup", when="after", count=1)
    await RestoreController(h.runtime).step(_handle(h, body))
    assert _status(body).phase == "Running" and _status(body).task_id is None
    # The operator comes back 25 h later: the first restore ran, its key is no longer replayed.
    h.sim.clock.advance(25 * 3600)
    day_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=25)
    body["status"]["startedAt"] = day_ago.strftime("%Y-%m-%dT%H:%M:%SZ")
    h.runtime.restore_status.forget(body["metadata"]["uid"])  # a new process: the body is the truth
    done = await RestoreController(h.runtime).step(_handle(h, body))
    assert len(_restore_tasks(h, env_id)) == 1 and len(await _restore_posts(h)) == 1  # not sent again
    status = _status(body)
    assert done is None  # terminal
    assert status.phase == "Failed" and _condition(body, "Stalled") == ("True", "RestoreUnconfirmed")
    assert "pre_restore" in (status.message or "")


async def test_a_restore_still_refused_by_another_task_after_its_not_after_is_never_sent(harness: Harness) -> None:
    """Another task kept the environment busy (409 ``task_in_progress``: this restore was not
    started) until after ``spec.notAfter``: the restore must not start hours later, when the
    other task finally ends, over the data written meanwhile. It is refused as expired."""
    h = harness
    _, env_id = await _running_env(h)
    backup_id = await _completed_backup(h, env_id)
    await h.sim.patch_config(action_seconds=7200.0)
    await h.runtime.client(RW).restart(env_id, idempotency_key="a-long-task")
    body = _add_restore(h, "late", backupId=backup_id)
    ctl, obj = RestoreController(h.runtime), _handle(h, body)
    await ctl.step(obj)
    assert _status(body).phase == "Running" and _condition(body, "Reconciling") == ("True", "TaskInProgress")
    body["spec"]["notAfter"] = _later(-60)  # time passes: notAfter is behind us, the task still runs
    assert await ctl.step(obj) is None  # terminal
    assert _status(body).phase == "Refused" and _condition(body, "Stalled") == ("True", "Expired")
    h.sim.clock.advance(7300)  # the other task ends
    assert await ctl.step(obj) is None
    assert _restore_tasks(h, env_id) == []
