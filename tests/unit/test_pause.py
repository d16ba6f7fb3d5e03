"""A process paused by a peer with a higher priority forgets what it remembered of each object
(``docs/kopf.md`` §6): when it resumes, another process may have written the status meanwhile."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

import kopf
from kopf._core.intents.stoppers import DaemonStopper

from oec_operator import handlers
from oec_operator.controller.state import ResourceState
from oec_operator.kube.status import StatusWriter
from oec_operator.models.status import Status


class Kube:
    async def patch_status(self, namespace: str, name: str, patch: dict[str, Any], **_: Any) -> dict[str, Any]:
        return {"status": patch}


class Sync:
    async def run(self, obj: Any) -> None:
        return None  # kopf stopped the daemon


class Runtime:
    def __init__(self) -> None:
        self.status = StatusWriter(Kube())  # type: ignore[call-overload]


async def stop_daemon(reason: kopf.DaemonStoppingReason) -> tuple[StatusWriter, ResourceState]:
    memo = kopf.Memo(runtime=Runtime(), sync=Sync())
    body = kopf.Body({"metadata": {"namespace": "ns", "name": "a", "uid": "u1"}, "status": {}})
    await memo.runtime.status.write("ns", "a", "u1", Status(phase="running", environment_id="env-1"))
    state = memo["resource_state"] = ResourceState(environment_id="env-1", failures=3)
    stopper = DaemonStopper()
    stopper.set(reason=reason)
    poll = cast(Callable[..., Awaitable[None]], handlers.poll)  # kopf's decorator types it as DaemonFn
    await poll(body=body, memo=memo, logger=logging.getLogger("t"), stopped=kopf.DaemonStopped(stopper),
                        claims={})
    return memo.runtime.status, state


async def test_a_paused_process_trusts_the_next_body_not_its_memory() -> None:
    # Meanwhile another process deleted and re-created the environment: the body says env-2.
    newer = {"phase": "running", "environmentId": "env-2"}
    status, state = await stop_daemon(kopf.DaemonStoppingReason.OPERATOR_PAUSING)
    assert status.view("u1", newer).environment_id == "env-2"
    assert (state.environment_id, state.failures) == (None, 0)


async def test_a_deletion_keeps_the_memory() -> None:
    status, state = await stop_daemon(kopf.DaemonStoppingReason.RESOURCE_DELETED)
    assert status.view("u1", {"environmentId": "env-2"}).environment_id == "env-1"
    assert state.environment_id == "env-1"
