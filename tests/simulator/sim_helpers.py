"""Shared constants and helpers of the simulator tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from oec_simulator import Simulator, SimulatorConfig
from oec_simulator.clock import Clock
from oec_simulator.config import KeyConfig, ProjectConfig

RW = "oec_live_rw_" + "A" * 43
RO = "oec_live_ro_" + "B" * 43
SCOPED_A = "oec_live_rw_" + "scopedA_" * 5
PROJECT_A = "11111111-1111-4111-8111-111111111111"
PROJECT_B = "22222222-2222-4222-8222-222222222222"
PROJECT_NOSERVER = "33333333-3333-4333-8333-333333333333"
SERVER_A = "aaaaaaaa-0000-4000-8000-000000000001"
API = "/api/public/v1"


def base_config(**overrides: Any) -> SimulatorConfig:
    """Three projects (A with server and default branch ``develop``, B, one without server), three keys."""
    data: dict[str, Any] = {
        "projects": [
            ProjectConfig.model_validate(
                {"id": PROJECT_A, "name": "alpha", "default_branch": "develop", "server_id": SERVER_A}
            ),
            ProjectConfig.model_validate({"id": PROJECT_B, "name": "beta"}),
            ProjectConfig.model_validate({"id": PROJECT_NOSERVER, "name": "serverless", "server_id": None}),
        ],
        "keys": [
            KeyConfig.model_validate({"key": RW}),
            KeyConfig.model_validate({"key": RO}),
            KeyConfig.model_validate({"key": SCOPED_A, "scope": "project", "project_id": PROJECT_A}),
        ],
        "deploy_seconds": 5.0,
        "destroy_seconds": 3.0,
        "action_seconds": 2.0,
    }
    data.update(overrides)
    return SimulatorConfig.model_validate(data)


def auth(key: str) -> dict[str, str]:
    """Authorization header for ``key``."""
    return {"Authorization": f"Bearer {key}"}


@dataclass
class Sim:
    """A running simulator: ``api`` (httpx client on /api/public/v1 with the rw key), ``admin``
    (client on /_sim), ``clock``, ``state`` (the Simulator object), ``base_url``."""

    base_url: str
    api: httpx.AsyncClient
    admin: httpx.AsyncClient
    clock: Clock
    state: Simulator

    async def create_env(self, project: str = PROJECT_A, **body: Any) -> dict[str, Any]:
        """Create an environment (default name ``env``) and return its JSON (asserts 201)."""
        body.setdefault("name", "env")
        response = await self.api.post(f"/projects/{project}/environments", json=body)
        assert response.status_code == 201, response.text
        data: dict[str, Any] = response.json()
        return data

    async def patch_config(self, **changes: Any) -> None:
        """Change runtime config through the admin API (asserts 200)."""
        response = await self.admin.patch("/config", json=changes)
        assert response.status_code == 200, response.text


StartSim = Callable[..., Awaitable[Sim]]
