"""The public API's endpoints as data (docs/oec-api.md §11): method, path and route name, no handlers.

A leaf module (no aiohttp, nothing of the simulator): the fault rules (``faultrules.py``) check
route names against it without importing the handlers, whose module imports the simulator state,
which imports the fault rules. ``api.py`` pairs each endpoint with its handler.

Route names ending in ``:alias…`` are the ``/actions/…`` aliases, answered only with
``config.action_aliases``; the part before ``:`` is the logical route name used for latency,
faults, stats and idempotency.
"""

from __future__ import annotations

from typing import NamedTuple


class Endpoint(NamedTuple):
    """One route: HTTP ``method``, ``path`` relative to ``API_PREFIX``, route ``name``."""

    method: str
    path: str
    name: str


API_PREFIX = "/api/public/v1"

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", "/projects", "list_projects"),
    Endpoint("POST", "/projects", "create_project"),
    Endpoint("GET", "/projects/{project_id}", "get_project"),
    Endpoint("PATCH", "/projects/{project_id}", "patch_project"),
    Endpoint("DELETE", "/projects/{project_id}", "delete_project"),
    Endpoint("GET", "/projects/{project_id}/environments", "list_environments"),
    Endpoint("POST", "/projects/{project_id}/environments", "create_environment"),
    Endpoint("GET", "/environments/{env_id}", "get_environment"),
    Endpoint("PATCH", "/environments/{env_id}", "patch_environment"),
    Endpoint("DELETE", "/environments/{env_id}", "delete_environment"),
    Endpoint("GET", "/environments/{env_id}/status", "environment_status"),
    Endpoint("GET", "/environments/{env_id}/logs", "environment_logs"),
    Endpoint("GET", "/environments/{env_id}/deployments", "list_deployments"),
    Endpoint("POST", "/environments/{env_id}/deploy", "deploy"),
    Endpoint("POST", "/environments/{env_id}/restart", "restart"),
    Endpoint("POST", "/environments/{env_id}/start", "start"),
    Endpoint("POST", "/environments/{env_id}/stop", "stop"),
    Endpoint("POST", "/environments/{env_id}/quick-update", "quick_update"),
    Endpoint("POST", "/environments/{env_id}/actions/deploy", "deploy:alias"),
    Endpoint("POST", "/environments/{env_id}/actions/redeploy", "deploy:alias-redeploy"),
    Endpoint("POST", "/environments/{env_id}/actions/restart", "restart:alias"),
    Endpoint("POST", "/environments/{env_id}/actions/start", "start:alias"),
    Endpoint("POST", "/environments/{env_id}/actions/stop", "stop:alias"),
    Endpoint("GET", "/deployments/{task_id}", "get_deployment"),
    Endpoint("GET", "/environments/{env_id}/backups", "list_backups"),
    Endpoint("POST", "/environments/{env_id}/backups", "create_backup"),
    Endpoint("GET", "/backups/{backup_id}", "get_backup"),
    Endpoint("GET", "/backups/{backup_id}/download", "backup_download"),
    Endpoint("POST", "/backups/{backup_id}/restore", "restore_backup"),
    Endpoint("GET", "/webhooks", "list_webhooks"),
    Endpoint("POST", "/webhooks", "create_webhook"),
    Endpoint("GET", "/webhooks/{webhook_id}", "get_webhook"),
    Endpoint("PATCH", "/webhooks/{webhook_id}", "update_webhook"),
    Endpoint("DELETE", "/webhooks/{webhook_id}", "delete_webhook"),
    Endpoint("POST", "/webhooks/{webhook_id}/test", "test_webhook"),
    Endpoint("POST", "/webhooks/{webhook_id}/rotate-secret", "rotate_webhook_secret"),
    Endpoint("GET", "/webhooks/{webhook_id}/deliveries", "list_webhook_deliveries"),
)

#: Logical route names of the actions (``POST /environments/{env_id}/<action>``, §9.4).
ACTIONS = frozenset({"deploy", "restart", "start", "stop", "quick_update"})

#: Logical route name → the idempotency header of that route (§7, §1 row 4).
IDEMPOTENCY_HEADERS: dict[str, str] = {
    "create_project": "X-Idempotency-Key",
    "create_environment": "X-Idempotency-Key",
    "create_webhook": "X-Idempotency-Key",
    **dict.fromkeys(sorted(ACTIONS), "Idempotency-Key"),
    "restore_backup": "Idempotency-Key",
}


def logical_route(name: str | None) -> str | None:
    """``deploy:alias`` → ``deploy``; plain names unchanged."""
    return name.split(":", 1)[0] if name else None


def is_alias(name: str | None) -> bool:
    """Whether a route name is one of the ``/actions/…`` aliases."""
    return bool(name) and ":" in (name or "")


#: Every logical route name (what a fault rule's ``route`` may be).
ROUTE_NAMES = frozenset(name for endpoint in ENDPOINTS if (name := logical_route(endpoint.name)))
