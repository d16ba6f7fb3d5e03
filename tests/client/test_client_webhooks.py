"""The client's webhook calls against the simulator over real HTTP (docs/oec-api.md §11.6): create with
its idempotency key and secret, all pages of the list, get/update/delete, test ping, rotate-secret,
deliveries, and the 10/min webhook-mutation budget kept by the key's limiter."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from oec_operator.oec import client as client_module
from oec_operator.oec.client import OecClient, make_http_client
from oec_operator.oec.errors import OecNotFoundError, OecRateLimitError, OecValidationError
from oec_operator.oec.ratelimit import RateLimiter
from tests.client.helpers import requests_sent
from tests.simulator.sim_helpers import API, PROJECT_A, RW, SCOPED_A, Sim

URL = "https://hooks.example.com/oec"
EVENTS = ["environment.status_changed", "deploy.completed"]


@pytest.fixture
async def http(sim: Sim) -> AsyncIterator[httpx.AsyncClient]:
    client = make_http_client(sim.base_url + API, timeout=5)
    yield client
    await client.aclose()


def _mutations(entries: list[dict[str, object]]) -> list[str]:
    """The webhook create/update/delete requests the API received."""
    return [f"{e['method']} {e['path']}" for e in entries
            if client_module.is_webhook_mutation(str(e["method"]), str(e["path"]).removeprefix(API))]


async def test_create_get_update_rotate_delete(sim: Sim, http: httpx.AsyncClient) -> None:
    api = OecClient(http, RW)
    hook = await api.create_webhook(URL, EVENTS, idempotency_key="wh-1", description="oec-operator")
    assert hook.secret is not None and hook.secret.startswith("whsec_")
    assert hook.secret not in repr(hook)
    again = await api.create_webhook(URL, EVENTS, idempotency_key="wh-1", description="oec-operator")
    assert again.id == hook.id  # the retry of one logical create creates nothing
    [sent] = [e for e in await requests_sent(sim) if e["method"] == "POST"][:1]
    assert sent["body"] == {"url": URL, "events": EVENTS, "description": "oec-operator"}

    got = await api.get_webhook(hook.id)
    assert (got.secret, got.events, got.is_active, got.failure_count, got.project_id) == (None, EVENTS, True, 0, None)
    updated = await api.update_webhook(hook.id, is_active=False, events=["deploy.failed"])
    assert (updated.is_active, updated.events) == (False, ["deploy.failed"])
    with pytest.raises(ValueError, match="not a PATCH field: secret"):
        await api.update_webhook(hook.id, secret="x")
    with pytest.raises(ValueError, match="at least one field"):
        await api.update_webhook(hook.id)

    rotated = await api.rotate_webhook_secret(hook.id)
    assert rotated.startswith("whsec_") and rotated != hook.secret
    assert sim.state.webhooks.hooks[hook.id].secret == rotated
    assert await api.webhook_deliveries(hook.id) == []

    ping = await api.test_webhook(hook.id)  # hooks.example.com does not answer here
    assert ping.success is False and ping.message

    await api.delete_webhook(hook.id)
    with pytest.raises(OecNotFoundError):
        await api.get_webhook(hook.id)


async def test_list_reads_every_page(sim: Sim, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    api = OecClient(http, RW)
    ids = [(await api.create_webhook(URL, EVENTS, idempotency_key=f"wh-{n}")).id for n in range(5)]
    monkeypatch.setattr(client_module, "WEBHOOK_PAGE", 2)
    listed = await api.list_webhooks()
    assert [h.id for h in listed] == ids and all(h.secret is None for h in listed)
    pages = [e for e in await requests_sent(sim) if e["method"] == "GET"]
    assert len(pages) == 3


async def test_project_key_needs_its_project(sim: Sim, http: httpx.AsyncClient) -> None:
    api = OecClient(http, SCOPED_A)
    with pytest.raises(OecValidationError) as refused:
        await api.create_webhook(URL, EVENTS, idempotency_key="scoped-1")
    assert refused.value.field == "project_id"
    hook = await api.create_webhook(URL, EVENTS, idempotency_key="scoped-2", project_id=PROJECT_A)
    assert hook.project_id == PROJECT_A


async def test_the_limiter_holds_the_eleventh_mutation_but_not_other_requests(
    sim: Sim, http: httpx.AsyncClient
) -> None:
    api = OecClient(http, RW, limiter=RateLimiter())
    hook = await api.create_webhook(URL, EVENTS, idempotency_key="wh-a")
    for n in range(9):
        await api.update_webhook(hook.id, description=f"d{n}")
    eleventh = asyncio.create_task(api.update_webhook(hook.id, description="eleventh"))
    await api.get_webhook(hook.id)  # reads go on
    await api.rotate_webhook_secret(hook.id)  # a write that is not a webhook mutation goes on
    assert not eleventh.done()
    assert len(_mutations(await requests_sent(sim))) == 10  # the API never saw the eleventh
    eleventh.cancel()
    with pytest.raises(asyncio.CancelledError):
        await eleventh


async def test_a_webhook_mutation_429_closes_only_that_budget(sim: Sim, http: httpx.AsyncClient) -> None:
    limiter = RateLimiter(webhook_limit=50)  # a limiter that believes in more than the API allows
    api = OecClient(http, RW, limiter=limiter)
    hook = await api.create_webhook(URL, EVENTS, idempotency_key="wh-b")
    for n in range(9):
        await api.update_webhook(hook.id, description=f"d{n}")
    with pytest.raises(OecRateLimitError) as refused:
        await api.update_webhook(hook.id, description="refused")
    assert refused.value.code == "webhook_mutation_rate_limit" and 1 <= refused.value.retry_after <= 60
    assert limiter.seconds_until_free(write=True) == 0  # other writes are not held back
    await api.create_environment(PROJECT_A, name="shop", environment_type="development", idempotency_key="e1")
    held = asyncio.create_task(api.update_webhook(hook.id, description="held"))
    await api.get_webhook(hook.id)
    assert not held.done()
    assert len(_mutations(await requests_sent(sim))) == 11  # 10 accepted, 1 refused, none after it
    held.cancel()
    with pytest.raises(asyncio.CancelledError):
        await held



async def test_other_list_shapes_are_read(sim: Sim, http: httpx.AsyncClient) -> None:
    """The webhook list and the deliveries are read also as a plain array / a ``data`` or ``items`` list."""
    hook = await OecClient(http, RW).create_webhook(URL, EVENTS, idempotency_key="wh-shapes")
    shown = sim.state.webhooks.hooks[hook.id].view()
    assert [h.id for h in client_module._WebhookPage.model_validate([shown]).items] == [hook.id]
    assert [h.id for h in client_module._WebhookPage.model_validate({"data": [shown]}).items] == [hook.id]
    assert client_module._DeliveryList.model_validate({"items": []}).root == []
