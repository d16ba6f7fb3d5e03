"""The status writer's memory: newer than a lagging body, dropped once the body shows the write."""

from __future__ import annotations

import pytest

from oec_operator.kube.client import KubeError
from oec_operator.kube.status import StatusWriter
from oec_operator.models.status import Status
from tests.controller.conftest import FakeKube


async def test_a_lagging_body_does_not_hide_the_last_write_and_a_later_edit_is_seen() -> None:
    kube = FakeKube()
    body = {"metadata": {"namespace": "team", "name": "shop", "uid": "u1"}, "status": {"phase": "pending"}}
    kube.objects[("team", "shop")] = body
    writer = StatusWriter(kube)
    stale = {"phase": "pending"}  # the watch event of the write has not arrived yet
    await writer.write("team", "shop", "u1", Status(phase="running", url="https://shop.example"))
    assert writer.view("u1", stale).phase == "running"
    caught_up = {"phase": "running", "url": "https://shop.example"}
    assert writer.view("u1", caught_up).url == "https://shop.example"
    edited = {"phase": "failed", "url": "https://evil.example"}  # someone else wrote the status
    assert writer.view("u1", edited) == Status.from_body(edited)


async def test_a_failed_write_forgets_the_memory() -> None:
    kube = FakeKube()
    kube.objects[("team", "shop")] = {"metadata": {"namespace": "team", "name": "shop"}, "status": {}}
    writer = StatusWriter(kube)
    await writer.write("team", "shop", "u1", Status(phase="running"))
    kube.fail_status_writes = 500
    with pytest.raises(KubeError):
        await writer.write("team", "shop", "u1", Status(phase="failed"))
    assert writer.view("u1", {"phase": "pending"}).phase == "pending"
