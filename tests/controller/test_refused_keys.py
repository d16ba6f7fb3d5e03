"""Refused API keys never get the operator's address blocked (issue 11 follow-up): the API blocks an
address for 15 minutes after 10 refused keys (401) less than a minute apart, and the block stops
every resource on every key (``docs/oec-api.md`` §4)."""

from __future__ import annotations

import contextlib
import datetime
import itertools
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from oec_operator.models.status import Status
from oec_operator.oec.errors import OecError
from oec_operator.oec.keygate import KeyGate
from tests.controller.conftest import Harness
from tests.simulator.sim_helpers import PROJECT_A, RW

BAD_KEYS = ["oec_live_rw_" + c * 43 for c in "XYZ"]
THRESHOLD = 10  # the simulator's brute_force_threshold (docs/oec-api.md §4)


def status(h: Harness, name: str) -> Status:
    return Status.from_body(h.kube.objects[("team", name)].get("status"))


async def public_requests(h: Harness) -> list[dict[str, Any]]:
    response = await h.sim.admin.get("/requests")
    assert response.status_code == 200
    return [r for r in response.json() if r["path"].startswith("/api/public/v1/")]


@pytest.mark.parametrize("polling", ["batched", "direct"])
async def test_revoked_keys_polled_for_ten_minutes_never_get_the_address_blocked(
        make_harness: Callable[..., Harness], polling: str) -> None:
    h = make_harness(polling=polling)
    h.runtime.keys = KeyGate(clock=h.sim.clock.now)  # the operator's clock follows the simulated one
    good = h.add("shop")
    good["metadata"]["annotations"]["oec.sh/poll-interval"] = "15"
    bad = []
    for i, key in enumerate(BAD_KEYS):
        assert (await h.sim.admin.post("/keys", json={"key": key, "scope": "org"})).status_code == 201
        assert (await h.sim.admin.post("/keys/revoke", json={"key": key})).json() == {"revoked": True}
        h.kube.set_key(key, ("team", f"bad-{i}"))
        body = h.add(f"bad-{i}", credentialsSecretRef={"name": f"bad-{i}"})
        body["metadata"]["annotations"]["oec.sh/poll-interval"] = "15"
        bad.append(body)
    for key in [RW, *BAD_KEYS]:  # the project lists' failure backoff follows the simulated clock too
        h.runtime.fleet.watch(key, PROJECT_A)._clock = h.sim.clock.now
    for body in [good, *bad]:
        await h.change(body)
    for _ in range(40):  # ten simulated minutes, a list and a poll of every resource every 15 s
        h.sim.clock.advance(15)
        for key in [RW, *BAD_KEYS]:
            with contextlib.suppress(OecError):  # the watch's failure is what the resources see
                await h.list_project(key)
        for body in [good, *bad]:
            await h.poll(body)
    log = await public_requests(h)
    assert not [r for r in log if r["status"] == 429], Counter(r["status"] for r in log)
    refusals = [r for r in log if r["status"] == 401]
    assert refusals  # the revoked keys were tried
    times = sorted(datetime.datetime.fromisoformat(r["time"]).timestamp() for r in refusals)
    chain = longest = 1  # the API's count: refusals with less than a minute between them (§4)
    for before, after in itertools.pairwise(times):
        chain = chain + 1 if after - before < 60 else 1
        longest = max(longest, chain)
    assert longest < THRESHOLD, times
    per_minute = Counter(int(t // 60) for t in times)
    assert max(per_minute.values()) < THRESHOLD, per_minute
    assert len(times) > len(BAD_KEYS)  # every key once, then refused keys are looked at again now and then
    ready = status(h, "shop").condition("Ready")
    assert ready is not None and ready["status"] == "True", ready  # the healthy key's resource works
    for i in range(len(BAD_KEYS)):
        stalled = status(h, f"bad-{i}").condition("Stalled")
        assert stalled is not None and stalled["reason"] == "AuthFailed", stalled
        assert h.reasons(f"bad-{i}").count("AuthFailed") == 1  # one Warning, not one per held request
    assert not any(re.search("|".join(BAD_KEYS), str(p)) for p in h.kube.status_patches)
