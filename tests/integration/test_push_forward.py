"""A webhook hint that reaches a replica which does not run the object's loop (a standby, or a
loop not started yet) is forwarded to the replica that does through the annotation
``oec.sh/refresh-requested-at`` (docs/webhooks.md §2): the active operator process refreshes
the object at once, long before its steady poll would.

The forwarding replica is a :class:`PushHub` in the test process on the real apiserver (no poll
loop runs in it, as in a standby); the active one is a real operator process whose steady
interval is an hour, so only the forwarded hint can show the change within the test.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import kopf
import pytest
from kopf._cogs.clients import auth
from kopf._cogs.structs.credentials import Vault

from oec_operator.controller.push import PushHub
from oec_operator.kube.client import KubeClient
from oec_operator.models.requests import REFRESH_REQUESTED_AT
from oec_operator.oec.client import key_id_of
from oec_operator.runtime import Runtime
from oec_operator.settings import OperatorConfig

from .conftest import RW_KEY, Cluster, OperatorProcess, Simulator, environment, is_ready, wait_for

pytestmark = pytest.mark.integration


async def forward(kubeconfig: str, simulator: Simulator, env_id: str) -> tuple[bool, bool, int]:
    """Hint ``env_id`` twice to a hub on the real apiserver that runs no loop (a standby's);
    ``(first answer, answer for an unknown environment, objects lists sent)``."""
    monkey = pytest.MonkeyPatch()
    monkey.setenv("KUBECONFIG", kubeconfig)
    try:
        settings, vault = kopf.OperatorSettings(), Vault()
        await vault.populate({"test": kopf.login_with_kubeconfig(settings=settings, logger=logging.getLogger("test"))})
        auth.vault_var.set(vault)
        # The standby replica's configuration is the active one's (one Deployment): the same default key.
        config = OperatorConfig.model_validate({"api_url": simulator.api_url, "metrics_port": 0, "api_key": RW_KEY})
        runtime = Runtime(config=config, http=httpx.AsyncClient(), kube=KubeClient(settings))
        lists = 0
        real_list = runtime.kube.list_objects

        async def counted(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
            nonlocal lists
            lists += 1
            return await real_list(*args, **kwargs)

        runtime.kube.list_objects = counted  # type: ignore[method-assign]
        hub = runtime.push = PushHub(runtime)
        try:
            known = await hub.hint(key_id_of(RW_KEY), env_id, "environment.status_changed")
            unknown = await hub.hint(key_id_of(RW_KEY), "00000000-0000-4000-8000-000000000000", "environment.created")
        finally:
            await runtime.aclose()
        return known, unknown, lists
    finally:
        monkey.undo()


def test_a_hint_forwarded_by_another_replica_refreshes_the_object_in_the_active_one(
    cluster: Cluster, simulator: Simulator, operator_factory: Callable[..., OperatorProcess],
) -> None:
    project = simulator.new_project("push")
    operator_factory(OEC_POLL_INTERVAL="3600", OEC_MIN_POLL_INTERVAL="3600")
    cluster.apply(environment("pushed", project))

    def phase() -> str | None:
        return ((cluster.get("pushed") or {}).get("status") or {}).get("phase")

    wait_for(lambda: phase() == "running" and is_ready(cluster.get("pushed")), timeout=60, what="pushed Ready")
    time.sleep(2.0)  # steady now: the project's next list is an hour away
    env_id = (cluster.get("pushed") or {})["status"]["environmentId"]
    simulator.edit(env_id, status="stopped")  # in the dashboard
    time.sleep(2.0)
    assert phase() == "running"  # unseen: nothing polls within the hour
    started = time.monotonic()
    known, unknown, lists = asyncio.run(forward(str(cluster.kube.kubeconfig), simulator, env_id))
    assert (known, unknown, lists) == (True, False, 1)
    assert REFRESH_REQUESTED_AT in (cluster.get("pushed") or {})["metadata"]["annotations"]
    wait_for(lambda: phase() == "stopped", timeout=20, what="the active replica's status showing the stop")
    print(f"forwarded hint -> status shows the change in {time.monotonic() - started:.1f} s")
