"""GitOps behaviour of docs/reconciliation.md, end to end: kubectl -> real apiserver -> operator
process -> simulator over HTTP. Each test watches what a user would notice: status and conditions,
Events, the requests the OEC.sh API received and the environments that exist there.

(Deleting the CRD orphans every environment: tested separately, it tears down the shared CRD.)
"""

from __future__ import annotations

import datetime
import hashlib
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .conftest import RO_KEY, RW_KEY, Cluster, OperatorProcess, Simulator, environment, wait_for

pytestmark = pytest.mark.integration

DEMO_PROJECT = "3f0c9a52-7a1e-4c1b-9d2e-5b8f6a4e2c10"
FINALIZER = "oec.sh/finalizer"
# kubectl and kopf bookkeeping, not user annotations.
BOOKKEEPING_ANNOTATIONS = {
    "kubectl.kubernetes.io/last-applied-configuration",
    "operator.oec.sh/last-handled-configuration",
}


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module", autouse=True)
def _roomy_simulator(simulator: Simulator) -> Iterator[None]:
    """One key serves every operator of the session and some tests present refused keys: lift the
    rate limits and the brute-force IP block for this module, then reset and restore."""
    saved = {k: simulator.config()[k] for k in ("read_limit", "write_limit", "brute_force_threshold")}
    simulator.configure(read_limit=100_000, write_limit=100_000, brute_force_threshold=100_000)
    yield
    simulator.admin.post("/_sim/reset").raise_for_status()  # rate-limit buckets, IP blocks, faults
    simulator.configure(**saved)


@pytest.fixture(autouse=True)
def _clean_simulator(simulator: Simulator) -> Iterator[None]:
    """A short request log per test (each test filters by its own ids anyway); no fault, latency
    or failing deploy outlives its test."""
    simulator.clear_requests()
    yield
    simulator.clear_faults()
    simulator.configure(latency={}, fail_next_deploys=0)


# ------------------------------------------------------------------------------------------ helpers
def manifest(name: str, project: str, /, annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    """``environment(...)`` with ``metadata.annotations``."""
    m = environment(name, project, **spec)
    if annotations:
        m["metadata"]["annotations"] = dict(annotations)
    return m


def new_key(tier: str = "rw") -> str:
    return f"oec_live_{tier}_it_{uuid.uuid4().hex}"


def secret(name: str, key: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": "Opaque",
            "stringData": {"apiKey": key}}


def env_requests(simulator: Simulator, env_id: str, since: int = 0, method: str | None = None) -> list[dict[str, Any]]:
    """Requests about one environment (``/environments/{id}`` and below)."""
    return simulator.requests(method, f"/environments/{env_id}", since=since)


def key_id(simulator: Simulator, key: str) -> str:
    """The simulator's id of an accepted key (a digest prefix, never the key)."""
    return str(next(k["key_id"] for k in simulator.admin.get("/_sim/keys").json()
                    if k["key_id"] == hashlib.sha256(key.encode()).hexdigest()[:16]))


def env_gets(simulator: Simulator, env_id: str, since: int = 0) -> list[dict[str, Any]]:
    """``GET /environments/{id}`` only (not ``/status``)."""
    return [r for r in simulator.requests("GET", f"/environments/{env_id}", since=since)
            if r["path"].endswith(f"/environments/{env_id}")]


def writes(simulator: Simulator, env_id: str, since: int = 0) -> list[dict[str, Any]]:
    return [r for r in env_requests(simulator, env_id, since) if r["method"] in ("POST", "PATCH", "PUT", "DELETE")]


def deploys(simulator: Simulator, env_id: str, since: int = 0) -> list[dict[str, Any]]:
    return simulator.requests("POST", f"/environments/{env_id}/deploy", since=since)


def creates(simulator: Simulator, project: str, since: int = 0) -> list[dict[str, Any]]:
    return simulator.requests("POST", f"/projects/{project}/environments", since=since)


def at(entry: dict[str, Any]) -> float:
    """Arrival time of a logged request, epoch seconds."""
    return datetime.datetime.fromisoformat(entry["time"].replace("Z", "+00:00")).timestamp()


def events(cluster: Cluster, name: str, reason: str) -> list[dict[str, Any]]:
    return [e for e in cluster.events(name) if e.get("reason") == reason]


def event_count(cluster: Cluster, name: str, reason: str) -> int:
    return sum(int(e.get("count") or 1) for e in events(cluster, name, reason))


def wait_event(cluster: Cluster, name: str, reason: str, timeout: float = 20,
               where: Callable[[dict[str, Any]], bool] = lambda e: True) -> dict[str, Any]:
    found = wait_for(lambda: next((e for e in reversed(events(cluster, name, reason)) if where(e)), None),
                     timeout=timeout, interval=0.3, what=f"Event {reason} on {name}")
    return dict(found)


def conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in obj.get("status", {}).get("conditions", [])}


def ready_for_generation(cluster: Cluster, name: str, generation: int, timeout: float = 30,
                         extra: Callable[[dict[str, Any]], bool] = lambda obj: True) -> dict[str, Any]:
    """Wait until Ready=True describes ``generation`` (condition and status.observedGeneration)."""
    def check() -> dict[str, Any] | None:
        obj = cluster.get(name) or {}
        ready = conditions(obj).get("Ready") or {}
        ok = (ready.get("status") == "True" and ready.get("observedGeneration") == generation
              and obj.get("status", {}).get("observedGeneration") == generation and extra(obj))
        return obj if ok else None
    return dict(wait_for(check, timeout=timeout, what=f"{name} Ready for generation {generation}"))


def deploy_tasks(simulator: Simulator, env_id: str) -> list[dict[str, Any]]:
    """Deploy tasks of an environment through the public API, newest first."""
    with simulator.api() as api:
        response = api.get(f"/environments/{env_id}/deployments", params={"limit": 100})
    response.raise_for_status()
    return [t for t in response.json()["data"] if t["type"] == "deploy"]


def running_environment(simulator: Simulator, project: str, name: str, branch: str = "main") -> dict[str, Any]:
    """An environment created through the API outside Kubernetes, once it runs."""
    env = simulator.create_environment(project, name, branch=branch)
    return simulator.wait_environment_status(env["id"], "running")


# ============================================================ 1. conditions tell the truth
def test_permanent_error_is_stalled_for_the_current_generation_at_once(
    cluster: Cluster, simulator: Simulator, operator: OperatorProcess
) -> None:
    unknown = str(uuid.uuid4())  # every request naming it is this test's: no ``since`` needed
    started = time.monotonic()
    cluster.apply(environment("nowhere", unknown))

    def stalled_for(generation: int) -> dict[str, Any] | None:
        obj = cluster.get("nowhere") or {}
        stalled = conditions(obj).get("Stalled") or {}
        ok = (stalled.get("status") == "True" and stalled.get("observedGeneration") == generation
              and obj.get("status", {}).get("observedGeneration") == generation)
        return obj if ok else None

    obj = wait_for(lambda: stalled_for(1), timeout=20, what="Stalled for generation 1")
    by_type = conditions(obj)
    # kstatus (Flux, Argo CD): Stalled=True with observedGeneration == generation is "Failed".
    assert by_type["Stalled"]["reason"] == "InvalidSpec"
    assert by_type["Ready"]["status"] == "False" and by_type["Ready"]["reason"] == "InvalidSpec"
    assert by_type["Ready"]["observedGeneration"] == 1
    assert "Reconciling" not in by_type

    # A new generation of a stalled resource is judged again (its update handler runs). The bound
    # is roomy for a loaded machine; a wait shorter than the steady poll (3 s) would not be.
    cluster.apply(environment("nowhere", unknown, name="renamed"))
    obj = wait_for(lambda: stalled_for(2), timeout=15, what="Stalled for generation 2")
    assert obj["metadata"]["generation"] == 2

    # A stalled resource is looked at again only every steady poll (3 s), never at the fast pace
    # (0.5 s). Counted over the whole test and bounded by its measured length, not in a fixed
    # window: failed lists of the project back off (0.5 s doubling), so later looks may reuse the
    # kept failure and a short window late in a slow run could legitimately hold no request.
    time.sleep(6.5)
    looks = simulator.requests(path_contains=f"/projects/{unknown}")
    elapsed = time.monotonic() - started
    # One look each for the create and the update handler, one per steady poll, two to spare
    # (rounding, a handler kopf runs twice); a hot loop at the fast pace would make two a second.
    assert 2 <= len(looks) <= elapsed / 3.0 + 4, (elapsed, [(r["method"], r["time"]) for r in looks])
    assert simulator.environments(unknown) == []
    # The Warning is posted once per reason and message, not on every look.
    assert 1 <= event_count(cluster, "nowhere", "InvalidSpec") <= 2


# ============================================================ 2. errors by kind
def project_lists(simulator: Simulator, project: str, since: int = 0) -> list[dict[str, Any]]:
    """``GET /projects/{id}/environments``: the batched poll of every resource of the project."""
    return simulator.requests("GET", f"/projects/{project}/environments", since=since)


def test_rate_limited_read_waits_exactly_the_delay_the_api_asked_for(
    cluster: Cluster, simulator: Simulator, operator: OperatorProcess
) -> None:
    project = simulator.new_project("ratelimit")
    cluster.apply(environment("limited", project))
    env_id = cluster.wait_ready("limited")["status"]["environmentId"]
    since = simulator.last_seq()
    # 10 s: longer than the steady poll (3 s) and than the age at which cached data is no longer
    # trusted (two polls and a fast one, 6.5 s), so the resource must say it is rate limited.
    simulator.inject(status=429, code="rate_limit_exceeded", retry_after=10, route="list_environments", count=1)

    refused = wait_for(lambda: [r for r in project_lists(simulator, project, since) if r["status"] == 429],
                       timeout=10, interval=0.1, what="the 429")[0]
    reconciling = cluster.wait_condition("limited", "Reconciling", reason="RateLimited", timeout=12)
    assert reconciling["status"] == "True"
    following = wait_for(lambda: project_lists(simulator, project, refused["seq"]) + env_requests(
        simulator, env_id, refused["seq"]), timeout=15, interval=0.1, what="the request after the 429")
    first = min(following, key=lambda r: r["seq"])
    gap = at(first) - at(refused)
    assert gap >= 9.9, f"next request {gap:.2f}s after a 429 with Retry-After: 10"
    assert gap <= 13.0, f"next request only {gap:.2f}s after a 429 with Retry-After: 10"
    wait_for(lambda: (obj := cluster.get("limited")) and "Reconciling" not in conditions(obj)
             and conditions(obj)["Ready"]["status"] == "True", timeout=15, what="Ready again")


def test_a_short_rate_limit_on_the_shared_list_does_not_flap_the_status(
    cluster: Cluster, simulator: Simulator, operator: OperatorProcess
) -> None:
    project = simulator.new_project("ratelimit-short")
    cluster.apply(environment("steady", project))
    cluster.wait_ready("steady")
    since = simulator.last_seq()
    simulator.inject(status=429, code="rate_limit_exceeded", retry_after=2, route="list_environments", count=1)
    refused = wait_for(lambda: [r for r in project_lists(simulator, project, since) if r["status"] == 429],
                       timeout=10, interval=0.1, what="the 429")[0]
    following = wait_for(lambda: project_lists(simulator, project, refused["seq"]), timeout=10, interval=0.1,
                         what="the list after the 429")[0]
    assert at(following) - at(refused) >= 1.9
    obj = cluster.get("steady") or {}
    assert conditions(obj)["Ready"]["status"] == "True"
    assert "Reconciling" not in conditions(obj), "a 2 s wait within the data's shelf life is no news"


def test_server_errors_back_off_then_recover(
    cluster: Cluster, simulator: Simulator, operator: OperatorProcess
) -> None:
    project = simulator.new_project("backoff")
    cluster.apply(environment("flaky", project))
    cluster.wait_ready("flaky")
    since = simulator.last_seq()
    simulator.inject(status=500, route="list_environments", count=100_000)
    try:
        first = wait_for(lambda: [r for r in project_lists(simulator, project, since) if r["status"] == 500],
                         timeout=10, interval=0.1, what="the first 500")[0]
        # Said once the listed data is older than two steady polls and a fast one (6.5 s), at the
        # resource's next poll after that; the rest of the 15 s is for a loaded machine.
        retrying = cluster.wait_condition("flaky", "Reconciling", reason="ProgressingWithRetry", timeout=15)
        assert retrying["status"] == "True"
        time.sleep(max(0.0, at(first) + 16.0 - time.time()))
        window = [r for r in project_lists(simulator, project, since) if at(first) <= at(r) <= at(first) + 16.0]
    finally:
        simulator.clear_faults()
    # Backoff from 0.5 s doubling (+-20 %): attempts near 0, 0.5, 1.5, 3.5, 7.5, 15.5 s. A fixed
    # fast poll would make 32, a fixed steady poll 5.
    assert 4 <= len(window) <= 8, [r["time"] for r in window]
    assert all(r["status"] == 500 for r in window)
    wait_for(lambda: (obj := cluster.get("flaky")) and "Reconciling" not in conditions(obj)
             and conditions(obj)["Ready"]["status"] == "True", timeout=30, what="Ready after the faults cleared")


# ============================================================ 3. adoption
def test_adopts_an_existing_environment_by_id(
    cluster: Cluster, simulator: Simulator, operator: OperatorProcess
) -> None:
    project = simulator.new_project("adopt")
    env = running_environment(simulator, project, "legacy-shop")
    since = simulator.last_seq()
    cluster.apply(environment("legacy", project, name="legacy-shop", environmentId=env["id"]))

    obj = cluster.wait_ready("legacy", timeout=30)
    assert obj["status"]["environmentId"] == env["id"]
    assert obj["status"]["phase"] == "running"
    assert obj["status"]["url"] == env["url"]
    assert event_count(cluster, "legacy", "Created") == 0
    wait_event(cluster, "legacy", "Adopted")
    assert creates(simulator, project, since) == []
    assert writes(simulator, env["id"], since) == []  # name already matches, no branch set: nothing to change
    assert [e["id"] for e in simulator.environments(project)] == [env["id"]]


def test_same_name_environment_without_id_is_a_conflict_not_a_second_environment(
    cluster: Cluster, simulator: Simulator, operator: OperatorProcess
) -> None:
    project = simulator.new_project("conflict")
    env = running_environment(simulator, project, "shop")
    since = simulator.last_seq()
    cluster.apply(environment("shop", project))  # display name defaults to metadata.name: "shop"

    stalled = cluster.wait_condition("shop", "Stalled", reason="Conflict", timeout=20)
    assert "environmentId" in stalled["message"]
    ready = cluster.condition("shop", "Ready") or {}
    assert (ready.get("status"), ready.get("reason")) == ("False", "Conflict")
    warning = wait_event(cluster, "shop", "Conflict")
    assert warning["type"] == "Warning"
    time.sleep(3.5)  # one steady poll more: still nothing created
    assert creates(simulator, project, since) == []
    assert writes(simulator, env["id"], since) == []
    assert [e["id"] for e in simulator.environments(project)] == [env["id"]]
    assert "environmentId" not in (cluster.get("shop") or {}).get("status", {})


def test_adopting_an_environment_of_another_project_is_invalid(
    cluster: Cluster, simulator: Simulator, operator: OperatorProcess
) -> None:
    mine, theirs = simulator.new_project("adopt-mine"), simulator.new_project("adopt-theirs")
    env = running_environment(simulator, theirs, "theirs", branch="main")
    since = simulator.last_seq()
    # Name and branch differ from the environment: an adopter that went ahead would PATCH them.
    cluster.apply(environment("stray", mine, name="stray", branch="other", environmentId=env["id"]))

    stalled = cluster.wait_condition("stray", "Stalled", reason="InvalidSpec", timeout=20)
    assert stalled["status"] == "True"
    time.sleep(1.0)
    assert writes(simulator, env["id"], since) == []
    assert creates(simulator, mine, since) == []
    unchanged = simulator.environment(env["id"]) or {}
    assert (unchanged["name"], unchanged["branch"], unchanged["deleted"]) == ("theirs", "main", False)
    assert simulator.environments(mine) == []


def test_second_resource_for_the_same_environment_is_a_conflict_and_never_deletes_it(
    cluster: Cluster, simulator: Simulator, operator: OperatorProcess
) -> None:
    project = simulator.new_project("two-owners")
    env = running_environment(simulator, project, "shared", branch="main")
    cluster.apply(environment("owner", project, name="shared", environmentId=env["id"]))
    cluster.wait_ready("owner", timeout=30)
    since = simulator.last_seq()
    # Different name and branch: if the newcomer wrote to the environment it would show.
    cluster.apply(environment("intruder", project, branch="elsewhere", environmentId=env["id"]))

    stalled = cluster.wait_condition("intruder", "Stalled", reason="Conflict", timeout=20)
    assert stalled["status"] == "True"
    assert (cluster.condition("owner", "Ready") or {}).get("status") == "True"

    cluster.delete("intruder")
    wait_for(lambda: cluster.get("intruder") is None, timeout=20, what="intruder removed")
    assert writes(simulator, env["id"], since) == []  # no PATCH, no DELETE
    kept = simulator.environment(env["id"]) or {}
    assert (kept["deleted"], kept["name"], kept["branch"]) == (False, "shared", "main")
    owner = cluster.get("owner") or {}
    assert owner["status"]["environmentId"] == env["id"]
    assert conditions(owner)["Ready"]["status"] == "True"
    # Decisions, Delete: a Conflict newcomer releases its finalizer without DELETE, Event Orphaned
    # (kopf posts Events from its own queue, so it may land after the object is gone).
    wait_event(cluster, "intruder", "Orphaned")


def test_apiserver_lets_environment_id_be_added_but_never_changed_or_removed(cluster: Cluster) -> None:
    first, other = str(uuid.uuid4()), str(uuid.uuid4())
    cluster.apply(environment("pinned", DEMO_PROJECT))
    cluster.apply(environment("pinned", DEMO_PROJECT, environmentId=first))  # adding is allowed
    assert (cluster.get("pinned") or {})["spec"]["environmentId"] == first

    changed = cluster.apply(environment("pinned", DEMO_PROJECT, environmentId=other), check=False)
    assert changed.returncode != 0
    assert "environmentId" in changed.stderr, changed.stderr
    removed = cluster.apply(environment("pinned", DEMO_PROJECT), check=False)
    assert removed.returncode != 0
    assert "environmentId" in removed.stderr, removed.stderr
    assert (cluster.get("pinned") or {})["spec"]["environmentId"] == first


# ============================================================ 4. observe-only
def test_observe_mirrors_status_with_a_read_only_key_and_never_writes(
    cluster: Cluster, simulator: Simulator, operator: OperatorProcess
) -> None:
    project = simulator.new_project("observe")
    env = running_environment(simulator, project, "prod-like", branch="main")
    cluster.apply(secret("ro-key", RO_KEY))
    since = simulator.last_seq()
    # Name and branch differ from the environment: a managing operator would PATCH (403 with this key).
    cluster.apply(environment("watcher", project, managementPolicy="Observe", environmentId=env["id"],
                              branch="feature-y", credentialsSecretRef={"name": "ro-key"}))

    obj = cluster.wait_ready("watcher", timeout=30)
    status = obj["status"]
    assert (status["environmentId"], status["phase"], status["branch"]) == (env["id"], "running", "main")
    assert status["url"] == env["url"]
    time.sleep(3.5)  # at least one steady poll more
    assert env_gets(simulator, env["id"], since), "the environment was never read"
    assert writes(simulator, env["id"], since) == []
    assert creates(simulator, project, since) == []
    seen = simulator.environment(env["id"]) or {}
    assert (seen["name"], seen["branch"]) == ("prod-like", "main")

    cluster.delete("watcher")
    wait_for(lambda: cluster.get("watcher") is None, timeout=20, what="watcher removed")
    wait_event(cluster, "watcher", "Orphaned")
    assert writes(simulator, env["id"], since) == []
    kept = simulator.environment(env["id"]) or {}
    assert kept["deleted"] is False and kept["status"] == "running"


def test_apiserver_refuses_observe_without_environment_id(cluster: Cluster) -> None:
    refused = cluster.apply(environment("observer", DEMO_PROJECT, managementPolicy="Observe"), check=False)
    assert refused.returncode != 0
    assert "environmentId" in refused.stderr, refused.stderr
    assert cluster.get("observer") is None
    cluster.apply(environment("observer", DEMO_PROJECT, managementPolicy="Observe", environmentId=str(uuid.uuid4())))
    assert (cluster.get("observer") or {})["spec"]["managementPolicy"] == "Observe"


# ============================================================ 5. deletion policy
def test_orphan_policy_releases_the_resource_and_keeps_the_environment(
    cluster: Cluster, simulator: Simulator, operator: OperatorProcess
) -> None:
    project = simulator.new_project("orphan")
    cluster.apply(environment("keep", project, deletionPolicy="Orphan"))
    env_id = cluster.wait_ready("keep")["status"]["environmentId"]
    since = simulator.last_seq()

    cluster.delete("keep")
    wait_for(lambda: cluster.get("keep") is None, timeout=20, what="resource removed")
    orphaned = wait_event(cluster, "keep", "Orphaned")
    assert orphaned["type"] == "Normal"
    assert simulator.requests("DELETE", env_id, since=since) == []
    kept = simulator.environment(env_id) or {}
    assert kept["deleted"] is False and kept["status"] == "running"
    assert [e["id"] for e in simulator.environments(project)] == [env_id]


def test_apiserver_requires_an_explicit_deletion_policy_for_production(cluster: Cluster) -> None:
    refused = cluster.apply(environment("prod", DEMO_PROJECT, environmentType="production"), check=False)
    assert refused.returncode != 0
    assert "deletionPolicy" in refused.stderr, refused.stderr
    assert cluster.get("prod") is None
    for policy in ("Orphan", "Delete"):
        name = f"prod-{policy.lower()}"
        cluster.apply(environment(name, DEMO_PROJECT, environmentType="production", deletionPolicy=policy))
        assert (cluster.get(name) or {})["spec"]["deletionPolicy"] == policy


@pytest.mark.parametrize(("field", "valid"), [("deletionPolicy", "Orphan"), ("managementPolicy", "Observe"),
                                             ("deployPolicy", "Manual")])
def test_apiserver_validates_the_policy_fields(cluster: Cluster, field: str, valid: str) -> None:
    extra = {"environmentId": str(uuid.uuid4())} if field == "managementPolicy" else {}
    cluster.apply(environment("good-policy", DEMO_PROJECT, **{field: valid}, **extra))
    assert (cluster.get("good-policy") or {})["spec"][field] == valid
    refused = cluster.apply(environment("bad-policy", DEMO_PROJECT, **{field: "Sometimes"}, **extra), check=False)
    assert refused.returncode != 0
    assert f"spec.{field}" in refused.stderr and "Unsupported value" in refused.stderr, refused.stderr
    assert cluster.get("bad-policy") is None


# ============================================================ 6. deploy on change
def test_branch_change_patches_then_deploys_once(
    cluster: Cluster, simulator: Simulator, operator: OperatorProcess
) -> None:
    project = simulator.new_project("deploy")
    cluster.apply(environment("dep", project, branch="main"))
    first = cluster.wait_ready("dep")
    env_id, initial_task = first["status"]["environmentId"], first["status"]["lastDeploy"]["id"]
    deployed_before = event_count(cluster, "dep", "Deployed")
    since = simulator.last_seq()

    cluster.apply(environment("dep", project, branch="release"))
    obj = ready_for_generation(
        cluster, "dep", 2, timeout=30,
        extra=lambda o: (o["status"].get("lastDeploy") or {}).get("id") not in (None, initial_task)
        and o["status"]["lastDeploy"]["status"] == "completed",
    )
    new_task = deploy_tasks(simulator, env_id)[0]
    assert obj["status"]["lastDeploy"]["id"] == new_task["id"] != initial_task
    assert obj["status"]["branch"] == "release"
    assert not obj["status"].get("pendingDeploy")
    started = wait_event(cluster, "dep", "DeployStarted")
    assert new_task["id"] in started["message"]
    wait_for(lambda: event_count(cluster, "dep", "Deployed") > deployed_before, timeout=10, what="Deployed")

    patches = simulator.requests("PATCH", f"/environments/{env_id}", since=since)
    posted = deploys(simulator, env_id, since)
    assert [p["body"] for p in patches] == [{"branch": "release"}]
    assert len(posted) == 1, posted
    assert posted[0]["idempotency_key"] and posted[0]["status"] == 202
    assert patches[0]["seq"] < posted[0]["seq"]
    assert (simulator.environment(env_id) or {})["branch"] == "release"


def test_manual_deploy_policy_patches_without_deploying(
    cluster: Cluster, simulator: Simulator, operator: OperatorProcess
) -> None:
    project = simulator.new_project("manual")
    cluster.apply(environment("manual", project, branch="main", deployPolicy="Manual"))
    first = cluster.wait_ready("manual")
    env_id, initial_task = first["status"]["environmentId"], first["status"]["lastDeploy"]["id"]
    since = simulator.last_seq()

    cluster.apply(environment("manual", project, branch="release", deployPolicy="Manual"))
    patch = wait_for(lambda: simulator.requests("PATCH", f"/environments/{env_id}", since=since),
                     timeout=10, what="the branch PATCH")
    assert [p["body"] for p in patch] == [{"branch": "release"}]
    obj = ready_for_generation(cluster, "manual", 2, timeout=15)
    time.sleep(3.5)  # a steady poll more
    assert deploys(simulator, env_id, since) == []
    assert (cluster.get("manual") or {})["status"]["lastDeploy"]["id"] == initial_task
    assert obj["status"]["branch"] == "release"
    assert event_count(cluster, "manual", "DeployStarted") == 0


def test_redeploy_token_deploys_once_per_new_token(
    cluster: Cluster, simulator: Simulator, operator: OperatorProcess
) -> None:
    project = simulator.new_project("redeploy")
    # Manual: only the tokens may deploy.
    cluster.apply(environment("redo", project, branch="main", deployPolicy="Manual"))
    first = cluster.wait_ready("redo")
    env_id, initial_task = first["status"]["environmentId"], first["status"]["lastDeploy"]["id"]
    since = simulator.last_seq()

    cluster.annotate("redo", "oec.sh/redeploy-requested-at", "t1")
    wait_for(lambda: (cluster.get("redo") or {}).get("status", {}).get("lastHandledRedeployAt") == "t1",
             timeout=15, what="lastHandledRedeployAt t1")
    wait_for(lambda: deploys(simulator, env_id, since), timeout=10, what="the t1 deploy")
    done = wait_for(lambda: (o := cluster.get("redo")) and conditions(o)["Ready"]["status"] == "True"
                    and (o["status"].get("lastDeploy") or {}).get("id") not in (None, initial_task)
                    and o["status"]["lastDeploy"]["status"] == "completed" and o,
                    timeout=20, what="the t1 deploy completed")
    assert done["status"]["lastDeploy"]["id"] == deploy_tasks(simulator, env_id)[0]["id"]

    # The same token again, on an object that did change: nothing more.
    cluster.annotate("redo", "example.com/touched", "yes")
    time.sleep(3.5)
    assert len(deploys(simulator, env_id, since)) == 1

    cluster.annotate("redo", "oec.sh/redeploy-requested-at", "t2")
    wait_for(lambda: (cluster.get("redo") or {}).get("status", {}).get("lastHandledRedeployAt") == "t2",
             timeout=15, what="lastHandledRedeployAt t2")
    posted = wait_for(lambda: d if len(d := deploys(simulator, env_id, since)) >= 2 else None,
                      timeout=10, what="the t2 deploy")
    assert len(posted) == 2
    assert all(p["status"] == 202 for p in posted)
    assert posted[0]["idempotency_key"] != posted[1]["idempotency_key"]


def test_failed_deploy_reports_the_log_and_stalls(
    cluster: Cluster, simulator: Simulator, operator: OperatorProcess
) -> None:
    project = simulator.new_project("deploy-fails")
    cluster.apply(environment("fragile", project, branch="main"))
    env_id = cluster.wait_ready("fragile")["status"]["environmentId"]
    simulator.edit(env_id, fail_next_deploy=True)
    since = simulator.last_seq()

    cluster.apply(environment("fragile", project, branch="broken"))
    failed = wait_event(cluster, "fragile", "DeployFailed", timeout=20)
    assert failed["type"] == "Warning"
    assert len(deploys(simulator, env_id, since)) == 1
    task = deploy_tasks(simulator, env_id)[0]
    assert task["status"] == "failed"
    with simulator.api() as api:
        log = api.get(f"/environments/{env_id}/logs", params={"task_id": task["id"], "lines": 50}).json()["log"]
    # Log lines are "<timestamp> [step] text"; the Event carries the last ones (with or without the time).
    tail = [line.split(" ", 1)[1] for line in log.splitlines() if " " in line][-3:]
    assert tail and any(text in failed["message"] for text in tail), (tail, failed["message"])

    stalled = cluster.wait_condition("fragile", "Stalled", reason="DeployFailed", timeout=10)
    assert stalled["observedGeneration"] == 2
    obj = cluster.get("fragile") or {}
    assert conditions(obj)["Ready"]["status"] == "False"
    assert obj["status"]["observedGeneration"] == 2


# ============================================================ 7. drift
def test_drift_made_in_the_dashboard_is_set_back(
    cluster: Cluster, simulator: Simulator, operator: OperatorProcess
) -> None:
    project = simulator.new_project("drift")
    cluster.apply(environment("drift", project, name="Shop", branch="main"))
    env_id = cluster.wait_ready("drift")["status"]["environmentId"]
    since = simulator.last_seq()

    simulator.edit(env_id, name="Renamed in dashboard", branch="hotfix")
    wait_for(lambda: (e := simulator.environment(env_id)) and (e["name"], e["branch"]) == ("Shop", "main"),
             timeout=20, what="name and branch set back")  # the next steady list (3 s) sees the drift
    patched: dict[str, Any] = {}
    for p in simulator.requests("PATCH", f"/environments/{env_id}", since=since):
        patched.update(p["body"] or {})
    assert patched == {"name": "Shop", "branch": "main"}

    def drift_messages() -> str | None:
        text = " | ".join(e.get("message", "") for e in events(cluster, "drift", "DriftCorrected"))
        return text if "branch" in text and "name" in text else None

    text = wait_for(drift_messages, timeout=10, what="DriftCorrected for branch and name")
    assert "hotfix" in text and "Renamed in dashboard" in text
    assert event_count(cluster, "drift", "Updated") == 0  # drift is not reported as a spec change
    # A branch PATCH under OnChange (spec change or drift) is followed by a deploy.
    wait_for(lambda: deploys(simulator, env_id, since), timeout=10, what="the deploy after the branch drift")


def test_environment_deleted_outside_is_not_recreated_until_asked(
    cluster: Cluster, simulator: Simulator, operator: OperatorProcess
) -> None:
    project = simulator.new_project("vanish")
    cluster.apply(environment("vanish", project))
    env_id = cluster.wait_ready("vanish")["status"]["environmentId"]
    first_key = creates(simulator, project)[0]["x_idempotency_key"]
    since = simulator.last_seq()

    simulator.delete_outside(env_id)
    # Seen by the next steady list (3 s) and confirmed by a GET; the rest is room for a loaded machine.
    stalled = cluster.wait_condition("vanish", "Stalled", reason="ExternallyDeleted", timeout=20)
    assert "oec.sh/recreate-requested-at" in stalled["message"]
    assert (cluster.condition("vanish", "Ready") or {}).get("status") == "False"
    assert wait_event(cluster, "vanish", "ExternallyDeleted")["type"] == "Warning"
    time.sleep(6.5)  # two steady polls
    assert creates(simulator, project, since) == []
    assert simulator.environments(project) == []

    cluster.annotate("vanish", "oec.sh/recreate-requested-at", "r1")
    obj = wait_for(lambda: (o := cluster.get("vanish")) and o["status"].get("lastHandledRecreateAt") == "r1"
                   and o["status"].get("environmentId") not in (None, env_id) and o,
                   timeout=15, what="a new environment for r1")
    envs = simulator.environments(project)
    assert [e["id"] for e in envs] == [obj["status"]["environmentId"]]
    posted = creates(simulator, project, since)
    assert len({p["x_idempotency_key"] for p in posted}) == 1
    # A new key (the first one would replay the deleted environment), derived from the first.
    assert posted[0]["x_idempotency_key"].startswith(f"{first_key}-")
    ready = cluster.wait_ready("vanish", timeout=20)
    assert "Stalled" not in conditions(ready)


# ============================================================ 8. pause and reconcile-now
def test_paused_resource_makes_no_calls_until_unpaused(
    cluster: Cluster, simulator: Simulator, operator: OperatorProcess
) -> None:
    project = simulator.new_project("paused")
    cluster.apply(environment("pausable", project, branch="main"))
    env_id = cluster.wait_ready("pausable")["status"]["environmentId"]

    cluster.annotate("pausable", "oec.sh/paused", "true")
    paused = cluster.wait_condition("pausable", "Paused", reason="Paused", timeout=10)
    assert paused["status"] == "True"
    since = simulator.last_seq()
    cluster.apply(environment("pausable", project, branch="release"))
    time.sleep(3.5)  # the spec change and a steady poll would both have called the API
    assert (cluster.get("pausable") or {})["metadata"]["generation"] == 2
    calls = env_requests(simulator, env_id, since) + simulator.requests(path_contains=project, since=since)
    assert calls == [], [(r["method"], r["path"]) for r in calls]

    cluster.annotate("pausable", "oec.sh/paused", None)
    patch = wait_for(lambda: simulator.requests("PATCH", f"/environments/{env_id}", since=since),
                     timeout=10, what="the held-back PATCH")
    assert [p["body"] for p in patch] == [{"branch": "release"}]
    obj = ready_for_generation(cluster, "pausable", 2, timeout=20,
                               extra=lambda o: "Paused" not in conditions(o))
    assert obj["status"]["branch"] == "release"


def test_deleting_a_paused_resource_waits_for_unpause(
    cluster: Cluster, simulator: Simulator, operator: OperatorProcess
) -> None:
    project = simulator.new_project("paused-delete")
    cluster.apply(environment("held", project))
    env_id = cluster.wait_ready("held")["status"]["environmentId"]
    cluster.annotate("held", "oec.sh/paused", "true")
    cluster.wait_condition("held", "Paused", reason="Paused", timeout=10)
    since = simulator.last_seq()

    cluster.delete("held")
    time.sleep(3.5)
    held = cluster.get("held")
    assert held is not None and held["metadata"].get("deletionTimestamp")
    assert FINALIZER in held["metadata"].get("finalizers", [])
    assert env_requests(simulator, env_id, since) == []
    assert (simulator.environment(env_id) or {})["deleted"] is False

    cluster.annotate("held", "oec.sh/paused", None)
    wait_for(lambda: cluster.get("held") is None, timeout=20, what="resource removed after unpause")
    deletes = simulator.requests("DELETE", f"/environments/{env_id}", since=since)
    assert len(deletes) == 1 and deletes[0]["confirm_delete"] == "true"
    assert (simulator.environment(env_id) or {})["deleted"] is True


def test_reconcile_token_triggers_an_immediate_read_despite_a_long_poll_interval(
    cluster: Cluster, simulator: Simulator, operator: OperatorProcess
) -> None:
    project = simulator.new_project("reconcile-now")
    cluster.apply(manifest("lazy", project, annotations={"oec.sh/poll-interval": "300"}))
    env_id = cluster.wait_ready("lazy")["status"]["environmentId"]
    since = simulator.last_seq()
    time.sleep(4.0)  # longer than OEC_POLL_INTERVAL (3 s): the 300 s interval holds
    assert env_requests(simulator, env_id, since) == []

    since = simulator.last_seq()
    cluster.annotate("lazy", "oec.sh/reconcile-requested-at", "x")
    # With a 300 s interval nothing but the token makes this GET (steady reads are the project's
    # list, detail reads go to /status), so any bound far below 300 s proves "immediate"; 15 s
    # leaves room for a loaded machine.
    wait_for(lambda: env_gets(simulator, env_id, since), timeout=15, interval=0.1, what="an immediate GET")
    wait_for(lambda: (cluster.get("lazy") or {}).get("status", {}).get("lastHandledReconcileAt") == "x",
             timeout=15, what="lastHandledReconcileAt x")
    assert (cluster.condition("lazy", "Ready") or {}).get("status") == "True"


# ============================================================ 9. credentials
def test_rotated_secret_is_used_for_the_next_requests(
    cluster: Cluster, simulator: Simulator, operator: OperatorProcess
) -> None:
    old, new = new_key(), new_key()
    simulator.add_key(old)
    simulator.add_key(new)
    project = simulator.new_project("rotate")
    cluster.apply(secret("rotating", old))
    cluster.apply(environment("rotate", project, credentialsSecretRef={"name": "rotating"}))
    env_id = cluster.wait_ready("rotate")["status"]["environmentId"]

    cluster.apply(secret("rotating", new))
    new_id = key_id(simulator, new)
    # Let the operator use the new key (the next steady poll reads the Secret again), then make
    # the old key useless.
    wait_for(lambda: simulator.admin.get("/_sim/stats").json()["by_key"].get(new_id, {}).get("reads"),
             timeout=15, what="a request with the rotated key")
    time.sleep(0.5)
    simulator.revoke_key(old)
    since = simulator.last_seq()
    # The steady poll (3 s) reads again; with the old key the API would answer 401.
    def requests_since() -> list[dict[str, Any]] | None:
        r = project_lists(simulator, project, since) + env_requests(simulator, env_id, since)
        return r if len(r) >= 2 else None

    after = wait_for(requests_since, timeout=15, what="requests after the revocation")
    assert all(r["status"] == 200 for r in after), [(r["path"], r["status"]) for r in after]
    obj = cluster.get("rotate") or {}
    assert conditions(obj)["Ready"]["status"] == "True"
    assert "Stalled" not in conditions(obj)


def test_refused_key_stalls_with_auth_failed(
    cluster: Cluster, simulator: Simulator, operator: OperatorProcess
) -> None:
    project = simulator.new_project("refused")
    cluster.apply(secret("wrong-key", new_key()))  # well-formed, unknown to the API
    cluster.apply(environment("refused", project, credentialsSecretRef={"name": "wrong-key"}))

    stalled = cluster.wait_condition("refused", "Stalled", reason="AuthFailed", timeout=20)
    assert "wrong-key" in stalled["message"]
    obj = cluster.get("refused") or {}
    assert conditions(obj)["Ready"]["status"] == "False"
    assert obj["status"]["observedGeneration"] == 1
    assert simulator.environments(project) == []


def test_delete_uses_the_last_key_that_worked_when_the_secret_is_gone(
    cluster: Cluster, simulator: Simulator, operator_factory: Callable[..., OperatorProcess]
) -> None:
    key = new_key()
    simulator.add_key(key)
    project = simulator.new_project("secret-gone")
    cluster.apply(secret("team-key", key))
    # The operator's default key is read-only: only the Secret's key can delete.
    operator_factory(OEC_API_KEY=RO_KEY)
    cluster.apply(environment("team", project, credentialsSecretRef={"name": "team-key"}))
    env_id = cluster.wait_ready("team")["status"]["environmentId"]

    cluster.kubectl("delete", "secret", "team-key")
    since = simulator.last_seq()
    cluster.delete("team")
    wait_for(lambda: cluster.get("team") is None, timeout=25, what="resource removed")
    deletes = simulator.requests("DELETE", f"/environments/{env_id}", since=since)
    assert [d["status"] for d in deletes] == [202]
    assert (simulator.environment(env_id) or {})["deleted"] is True
    assert simulator.environments(project) == []


# ============================================================ 10. no key in Events or logs
def test_api_keys_never_appear_in_events_status_or_the_operator_log(
    cluster: Cluster, simulator: Simulator, operator: OperatorProcess
) -> None:
    good, bad = new_key(), new_key()
    simulator.add_key(good)
    project = simulator.new_project("no-leak")
    cluster.apply(secret("leak-key", good))
    cluster.apply(environment("leaky", project, branch="main", credentialsSecretRef={"name": "leak-key"}))
    cluster.wait_ready("leaky")
    cluster.apply(environment("leaky", project, branch="release", credentialsSecretRef={"name": "leak-key"}))
    ready_for_generation(cluster, "leaky", 2, timeout=30)

    cluster.apply(secret("leak-key", bad))  # refused by the API
    cluster.wait_condition("leaky", "Stalled", reason="AuthFailed", timeout=15)
    cluster.apply(secret("leak-key", good))
    cluster.wait_ready("leaky", timeout=20)
    described = cluster.kubectl("describe", "odooenv", "leaky").stdout
    status = str((cluster.get("leaky") or {}).get("status"))
    cluster.delete("leaky")
    wait_for(lambda: cluster.get("leaky") is None, timeout=20, what="resource removed")

    # kopf posts Events from its own queue: "Deleted" may land just after the object is gone.
    wait_for(lambda: {"Created", "Updated", "AuthFailed", "Deleted"} <= {e["reason"] for e in cluster.events("leaky")},
             timeout=20, what="the Events of the whole lifecycle")
    all_events = cluster.kubectl("get", "events", "-o", "json").stdout
    for where, text in [("events", all_events), ("describe", described), ("status", status),
                        ("operator log", operator.output())]:
        for key in (good, bad, RW_KEY, RO_KEY):
            assert key not in text, f"an API key appears in the {where}"
        for key in (good, bad):  # their random part, in case only a prefix is masked
            assert key.rsplit("_", 1)[1][:12] not in text, f"part of an API key appears in the {where}"


# ============================================================ 11. the operator never writes spec or user annotations
def test_operator_never_writes_spec_or_user_annotations(
    cluster: Cluster, simulator: Simulator, operator: OperatorProcess
) -> None:
    project = simulator.new_project("hands-off")
    user_annotations = {
        "example.com/owner": "team-shop",
        "oec.sh/poll-interval": "5",
        "oec.sh/reconcile-requested-at": "first",
    }
    spec: dict[str, Any] = {"name": "Hands Off", "branch": "main", "environmentType": "staging"}
    cluster.apply(manifest("hands-off", project, annotations=user_annotations, **spec))
    cluster.wait_ready("hands-off")

    spec["branch"] = "release"
    user_annotations["oec.sh/redeploy-requested-at"] = "t1"
    cluster.apply(manifest("hands-off", project, annotations=user_annotations, **spec))
    applied = cluster.get("hands-off") or {}
    ready_for_generation(cluster, "hands-off", 2, timeout=30)
    time.sleep(3.5)  # the deploy and a steady poll more
    obj = cluster.get("hands-off") or {}

    # Two applies, two generations: nothing else changed spec.
    assert obj["metadata"]["generation"] == 2
    assert obj["spec"] == applied["spec"]
    expected = {"projectId": project, **spec}
    assert {k: obj["spec"].get(k) for k in expected} == expected
    schema_defaults = {"managementPolicy": "Manage", "deployPolicy": "OnChange", "powerState": "Running",
                       "resizePolicy": "Restart"}
    assert {k: v for k, v in obj["spec"].items() if k not in expected}.items() <= schema_defaults.items()
    annotations = obj["metadata"].get("annotations", {})
    assert {k: annotations.get(k) for k in user_annotations} == user_annotations
    added = set(annotations) - set(user_annotations) - BOOKKEEPING_ANNOTATIONS
    # Anything else the operator adds is kopf bookkeeping in the operator's own domain (oec.sh/…,
    # or a subdomain such as kopf.oec.sh/…), never in the user's.
    assert all(k.split("/", 1)[0].endswith("oec.sh") for k in added), added
    # Field ownership: only kubectl owns spec and the user's annotations.
    for entry in obj["metadata"].get("managedFields", []):
        if entry["manager"].startswith("kubectl"):
            continue
        fields = entry.get("fieldsV1", {})
        assert "f:spec" not in fields, entry["manager"]
        owned = fields.get("f:metadata", {}).get("f:annotations", {})
        assert not {f"f:{k}" for k in user_annotations} & set(owned), (entry["manager"], owned)
    assert RW_KEY not in str(obj)


def test_two_resources_adopting_one_environment_at_once_leave_one_owner_and_deleting_the_other_keeps_it(
    cluster: Cluster, simulator: Simulator, operator: OperatorProcess
) -> None:
    project = simulator.new_project("adopt-race")
    env = running_environment(simulator, project, "contested")
    both = {"apiVersion": "v1", "kind": "List", "items": [
        environment(name, project, name="contested", branch=branch, environmentId=env["id"])
        for name, branch in (("race-a", "br-a"), ("race-b", "br-b"))]}
    cluster.apply(both)  # one apply: both are created in the same second

    def settled() -> dict[str, str] | None:
        reasons = {n: (cluster.condition(n, "Ready") or {}).get("reason", "") for n in ("race-a", "race-b")}
        return reasons if sorted(reasons.values()) == ["Available", "Conflict"] else None

    reasons = wait_for(settled, timeout=60, what="one owner and one Conflict")
    loser = next(n for n, r in reasons.items() if r == "Conflict")
    time.sleep(4)  # a couple of steady polls: the loser must not fight over the branch
    drift = [e for e in cluster.events() if e.get("reason") == "DriftCorrected"]
    assert drift == [], [e["message"] for e in drift]
    cluster.delete(loser)
    wait_for(lambda: cluster.get(loser) is None, timeout=30, what=f"{loser} gone")
    assert (simulator.environment(env["id"]) or {}).get("deleted") is not True, "the owner's environment was destroyed"
