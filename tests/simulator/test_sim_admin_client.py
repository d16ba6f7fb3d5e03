"""``SimulatorAdmin`` (``oec_simulator.admin_client``) and ``start_simulator`` (``oec_testkit``)
against a simulator process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from oec_simulator.admin_client import SimulatorAdmin
from oec_testkit.simulator import SimulatorProcess, start_simulator

from .sim_helpers import RO, RW, auth


@pytest.fixture(scope="module")
def process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorProcess]:
    work = tmp_path_factory.mktemp("admin-client")
    sim = start_simulator(["--key", RW, "--key", RO, "--read-limit", "100000", "--write-limit", "100000",
                           "--deploy-seconds", "60", "--log-level", "WARNING"],
                          port_file=work / "port", log=work / "simulator.log")
    yield sim
    sim.stop()
    assert sim.proc.returncode is not None


@pytest.fixture
def admin(process: SimulatorProcess) -> Iterator[SimulatorAdmin]:
    """A client on a freshly reset simulator (projects, keys, config and stats survive a reset)."""
    with SimulatorAdmin(process.base_url) as client:
        client.reset()
        yield client


@pytest.fixture
def api(process: SimulatorProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=process.api_url, headers=auth(RW), timeout=10, trust_env=False) as client:
        yield client


def test_start_simulator_waits_until_it_answers(process: SimulatorProcess, admin: SimulatorAdmin) -> None:
    assert process.base_url == f"http://127.0.0.1:{process.port}" and process.port > 0
    assert process.api_url == process.base_url + "/api/public/v1"
    assert admin.health() == {"status": "ok", "environments": 0, "requests": 0}


def test_start_simulator_raises_with_the_log_when_it_exits(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"(?s)did not start.*'chatty' is not a logging level"):
        start_simulator(["--log-level", "chatty"], port_file=tmp_path / "port", log=tmp_path / "sim.log")


def test_projects(admin: SimulatorAdmin) -> None:
    project_id = admin.new_project("client-a", default_branch="develop")
    project = next(p for p in admin.http.get("/_sim/projects").json() if p["id"] == project_id)
    assert (project["name"], project["default_branch"], project["odoo_version"]) == ("client-a", "develop", "17.0")
    assert project["server_id"]
    serverless = admin.create_project("client-b", server_id=None)
    assert serverless["server_id"] is None
    with pytest.raises(httpx.HTTPStatusError) as info:
        admin.create_project("again", id=project_id)
    assert info.value.response.status_code == 409


def test_request_log(admin: SimulatorAdmin, api: httpx.Client) -> None:
    assert admin.requests() == [] and admin.last_seq() == 0
    api.get("/projects")
    seq = admin.last_seq()
    api.get("/projects", params={"page": 1})
    later = admin.requests(since=seq)
    assert [(r["seq"], r["method"], r["query"]) for r in later] == [(seq + 1, "GET", {"page": "1"})]
    assert [r["seq"] for r in admin.requests()] == [seq, seq + 1]
    assert admin.clear_requests() == 2
    assert admin.requests() == [] and admin.last_seq() == 0
    api.get("/projects")
    assert [r["seq"] for r in admin.requests()] == [seq + 2]  # seq keeps counting


def test_environments_edit_and_delete(admin: SimulatorAdmin, api: httpx.Client) -> None:
    project_id = admin.new_project("client-envs")
    created = api.post(f"/projects/{project_id}/environments", json={"name": "edited"}).json()
    view = next(e for e in admin.environments() if e["id"] == created["id"])
    assert (view["project_id"], view["deleted"]) == (project_id, False)
    edited = admin.patch_environment(created["id"], status="stopped", branch="feature")
    assert (edited["status"], edited["branch"]) == ("stopped", "feature")
    assert api.get(f"/environments/{created['id']}").json()["status"] == "stopped"
    assert admin.delete_environment(created["id"])["deleted"] is True
    assert api.get(f"/environments/{created['id']}").status_code == 404
    assert next(e for e in admin.environments() if e["id"] == created["id"])["deleted"] is True
    with pytest.raises(httpx.HTTPStatusError) as info:
        admin.patch_environment("00000000-0000-4000-8000-000000000000", status="stopped")
    assert info.value.response.status_code == 404


def test_environment_tasks_and_sizes(admin: SimulatorAdmin, api: httpx.Client) -> None:
    project_id = admin.new_project("client-tasks")
    created = api.post(f"/projects/{project_id}/environments", json={"name": "sized", "ram_mb": 1024}).json()
    edited = admin.patch_environment(created["id"], ram_mb=4096, domain="erp.example.com")
    assert (edited["requested"]["ram_mb"], edited["applied"]["ram_mb"]) == (4096, 1024)
    assert admin.environment(created["id"])["custom_domain"] == "erp.example.com"
    [deploy] = admin.tasks(created["id"])
    assert (deploy["type"], deploy["update_modules"], deploy["applied_sizes"]) == ("deploy", None, None)
    with pytest.raises(KeyError):
        admin.environment("00000000-0000-4000-8000-000000000000")


def test_faults(admin: SimulatorAdmin, api: httpx.Client) -> None:
    rules = admin.inject(status=503, count=1, route="list_projects")
    assert [(r["status"], r["count"]) for r in rules] == [(503, 1)]
    assert api.get("/projects").status_code == 503
    assert api.get("/projects").status_code == 200
    admin.inject(status=500, count=5)
    assert admin.clear_faults() == 1
    assert api.get("/projects").status_code == 200
    with pytest.raises(httpx.HTTPStatusError) as info:
        admin.inject(kind="nonsense")
    assert info.value.response.status_code == 400


def test_keys(admin: SimulatorAdmin, process: SimulatorProcess) -> None:
    key = "oec_live_ro_" + "client_" * 6
    added = admin.add_key(key)
    assert (added["tier"], added["scope"], added["project_id"]) == ("ro", "org", None)
    assert added["key_id"] in {k["key_id"] for k in admin.list_keys()}
    assert key not in str(admin.list_keys())
    with httpx.Client(base_url=process.api_url, headers=auth(key), trust_env=False) as ro:
        assert ro.get("/projects").status_code == 200
        assert admin.revoke_key(key) is True
        assert ro.get("/projects").status_code == 401
    assert admin.revoke_key("oec_live_rw_" + "unknown_" * 5) is False


def test_config_and_stats(admin: SimulatorAdmin, api: httpx.Client) -> None:
    assert admin.configure(destroy_seconds=4.5)["destroy_seconds"] == 4.5
    assert admin.config()["destroy_seconds"] == 4.5
    with pytest.raises(httpx.HTTPStatusError) as info:
        admin.configure(no_such_field=1)
    assert info.value.response.status_code == 422
    before = admin.stats()
    api.get("/projects")
    admin.health()  # admin calls are never counted
    after = admin.stats()
    assert (after["requests"] - before["requests"], after["reads"] - before["reads"]) == (1, 1)
    assert set(after) >= {"requests", "reads", "writes", "rate_limited", "by_route", "by_key", "time"}


def test_reset_and_close(process: SimulatorProcess, api: httpx.Client) -> None:
    client = SimulatorAdmin(process.base_url + "/", timeout=5)
    project_id = client.new_project("client-reset")
    api.post(f"/projects/{project_id}/environments", json={"name": "gone"}).raise_for_status()
    assert client.health()["environments"] >= 1
    client.reset()
    assert client.environments() == [] and client.requests() == []
    assert project_id in {p["id"] for p in client.http.get("/_sim/projects").json()}
    client.close()
    assert client.http.is_closed


def test_backups(admin: SimulatorAdmin, api: httpx.Client) -> None:
    project_id = admin.new_project("client-backups")
    created = api.post(f"/projects/{project_id}/environments", json={"name": "backed-up"}).json()
    before = admin.clock()["now"]
    assert admin.advance_clock(61)["now"] >= before + 61  # the 60 s deploy is done
    admin.configure(backup_seconds=3600)
    first = api.post(f"/environments/{created['id']}/backups", json={}).json()
    assert admin.complete_backup(first["id"])["status"] == "completed"
    second = api.post(f"/environments/{created['id']}/backups", json={}).json()
    failed = admin.fail_backup(second["id"], "storage unreachable")
    assert (failed["status"], failed["error_message"]) == ("failed", "storage unreachable")
    assert admin.fail_next_backup(created["id"], "disk full")["fail_next_backup"] is True
    third = api.post(f"/environments/{created['id']}/backups", json={}).json()
    admin.configure(backup_seconds=3.0)
    assert admin.complete_backup(third["id"])["status"] == "completed"  # completing wins over a planned failure
    view = admin.backups(created["id"])
    assert view["counts"]["creates"] == 3
    assert [b["id"] for b in view["backups"] if b["backup_type"] == "manual"] == [third["id"], second["id"],
                                                                                    first["id"]]
    with pytest.raises(httpx.HTTPStatusError) as info:
        admin.complete_backup(first["id"])
    assert info.value.response.status_code == 409


def test_webhooks(admin: SimulatorAdmin, api: httpx.Client) -> None:
    created = api.post("/webhooks", json={"url": "https://hooks.example.com/oec", "events": ["deploy.failed"]}).json()
    overview = admin.webhooks()
    [hook] = overview["webhooks"]
    assert (hook["id"], hook["secret"], overview["deliveries_enabled"]) == (created["id"], created["secret"], True)
    assert admin.webhook_secret(created["id"]) == created["secret"]
    assert admin.webhook_deliveries(created["id"]) == []
    assert admin.set_deliveries(False)["deliveries_enabled"] is False
    admin.reset()  # a reset removes the webhooks and resumes sending
    assert admin.webhooks()["webhooks"] == [] and admin.webhooks()["deliveries_enabled"] is True
    with pytest.raises(KeyError):
        admin.webhook_secret(created["id"])
