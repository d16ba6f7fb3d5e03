"""Generated invalid and hostile OdooEnvironment manifests (hypothesis, derandomized).

Invalid ones go to the real apiserver as server-side dry-run creates: each must be refused with
a message naming the offending field. Valid-but-weird ones (unicode and maximal-length names and
branches, odd annotation values, unknown fields) are really created with the operator running:
it must set status conditions on each, stay alive, and not hot-loop (API calls per resource over
a 12 s window stay within what the steady poll interval allows).
"""

from __future__ import annotations

import json
import string
import time
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from oec_operator.oec.models import TRANSITIONAL_STATES

from .conftest import GROUP, PLURAL, VERSION, Cluster, OperatorProcess, Simulator, environment, wait_for

pytestmark = pytest.mark.integration

PROJECT = "3f0c9a52-7a1e-4c1b-9d2e-5b8f6a4e2c10"
# Any Unicode scalar value that UTF-8 can carry (no lone surrogates: JSON/UTF-8 cannot).
UNICODE = st.characters(codec="utf-8")
SETTINGS = settings(derandomize=True, database=None, deadline=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


DNS_CHARS = set(string.ascii_lowercase + string.digits + "-.")


def _not_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return True
    return False


WRONG_TYPES = st.one_of(st.integers(), st.booleans(), st.lists(st.integers(), max_size=3),
                        st.dictionaries(st.text(string.ascii_letters, min_size=1, max_size=5), st.integers(),
                                        min_size=1, max_size=2), st.floats(allow_nan=False, allow_infinity=False))


@st.composite
def invalid_manifest(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """A manifest with exactly one thing wrong, and the field path the refusal must name."""
    name = f"bad-{uuid.uuid4().hex[:8]}"
    spec: dict[str, Any] = {"projectId": PROJECT}
    case = draw(st.sampled_from([
        "type-enum", "name-long", "name-empty", "branch-huge", "branch-empty", "project-format",
        "wrong-type", "project-missing", "deletion-enum", "production-no-deletion", "observe-no-id",
        "secret-ref-no-name", "management-enum", "metadata-name",
    ]))
    field = "spec"
    if case == "type-enum":
        spec["environmentType"] = draw(st.text(UNICODE, max_size=40).filter(
            lambda t: t not in ("development", "staging", "production")))
        field = "spec.environmentType"
    elif case == "name-long":
        spec["name"] = draw(st.text(UNICODE, min_size=256, max_size=600))
        field = "spec.name"
    elif case == "name-empty":
        spec["name"] = ""
        field = "spec.name"
    elif case == "branch-huge":
        spec["branch"] = draw(st.sampled_from(["b", "ü", "🌿", "x/"])) * draw(st.integers(256, 200_000))
        field = "spec.branch"
    elif case == "branch-empty":
        spec["branch"] = ""
        field = "spec.branch"
    elif case == "project-format":
        spec["projectId"] = draw(st.text(UNICODE, min_size=1, max_size=80).filter(_not_uuid))
        field = "spec.projectId"
    elif case == "wrong-type":
        key = draw(st.sampled_from(["projectId", "name", "branch", "environmentType", "deletionPolicy",
                                    "deployPolicy", "credentialsSecretRef", "environmentId", "powerState",
                                    "resizePolicy", "domain"]))
        value: object = draw(WRONG_TYPES)
        if key == "credentialsSecretRef":
            value = draw(st.one_of(st.integers(), st.text(max_size=10), st.lists(st.integers(), max_size=2)))
        spec[key] = value
        field = f"spec.{key}"
    elif case == "project-missing":
        del spec["projectId"]
        spec["branch"] = draw(st.text(UNICODE, min_size=1, max_size=30))
        field = "spec.projectId"
    elif case == "deletion-enum":
        spec["deletionPolicy"] = draw(st.text(UNICODE, max_size=20).filter(lambda t: t not in ("Delete", "Orphan")))
        field = "spec.deletionPolicy"
    elif case == "production-no-deletion":
        spec["environmentType"] = "production"
        field = "spec.deletionPolicy"
    elif case == "observe-no-id":
        spec["managementPolicy"] = "Observe"
        field = "spec.environmentId"
    elif case == "secret-ref-no-name":
        spec["credentialsSecretRef"] = {"key": draw(st.text(string.ascii_letters, min_size=1, max_size=20))}
        field = "spec.credentialsSecretRef.name"
    elif case == "management-enum":
        spec["managementPolicy"] = draw(st.text(UNICODE, max_size=20).filter(lambda t: t not in ("Manage", "Observe")))
        field = "spec.managementPolicy"
    elif case == "metadata-name":
        name = draw(st.one_of(
            st.text(UNICODE, min_size=1, max_size=60).filter(lambda t: not set(t) <= DNS_CHARS),
            st.just("a" * 300),
        ))
        field = "metadata.name"
    manifest = environment(name, PROJECT)
    manifest["spec"] = spec
    return manifest, field


def dry_run_create(cluster: Cluster, manifest: dict[str, Any], dry_run: bool = True,
                   plural: str = PLURAL) -> tuple[int, str]:
    """Server-side dry-run (or, with ``dry_run=False``, real) create through the Python client
    (no YAML round trip) of an object of ``plural``; ``(HTTP status, message)``, 201 and "" when
    accepted."""
    from kubernetes import client

    with cluster.kube.api_client() as api:
        try:
            client.CustomObjectsApi(api).create_namespaced_custom_object(
                GROUP, VERSION, cluster.namespace, plural, manifest, _request_timeout=30,
                dry_run="All" if dry_run else None)
        except client.ApiException as exc:
            try:
                message = json.loads(exc.body or "")["message"]
            except (TypeError, ValueError, KeyError):
                message = str(exc.body)
            return int(exc.status), str(message)
    return 201, ""


def test_invalid_manifests_are_refused_naming_the_field(cluster: Cluster, simulator: Simulator) -> None:
    seen: set[str] = set()

    @settings(SETTINGS, max_examples=40)
    @given(invalid_manifest())
    def refused(case: tuple[dict[str, Any], str]) -> None:
        manifest, field = case
        status, message = dry_run_create(cluster, manifest)
        assert status in (400, 422), f"accepted (HTTP {status}): {json.dumps(manifest)[:300]}"
        assert field in message, f"refusal does not name {field}: {message[:500]}"
        seen.add(field)

    refused()
    assert cluster.kubectl("get", "odooenv", "-o", "name").stdout.strip() == ""  # dry-run only
    assert len(seen) >= 8, seen  # the examples covered most kinds of mistakes


ODD_INTERVALS = st.sampled_from(["nan", "inf", "-inf", "-5", "0", "1e308", "1e-9", "abc", "", " 7 ", "3.5",
                                 "99999999999999999999", "0x10", "\u0663"])  # ARABIC-INDIC DIGIT THREE


@st.composite
def weird_manifest(draw: st.DrawFn) -> dict[str, Any]:
    """A manifest the schema accepts but nobody would write: unicode everywhere, maximal sizes,
    odd annotation values, unknown fields (pruned by the apiserver)."""
    suffix = uuid.uuid4().hex[:6]
    prefix = draw(st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True))
    name = f"{prefix}-{suffix}"
    spec: dict[str, Any] = {
        "name": draw(st.one_of(st.text(UNICODE, min_size=1, max_size=255),
                               st.text(UNICODE, min_size=255, max_size=255))),
        "branch": draw(st.one_of(st.text(UNICODE, min_size=1, max_size=255), st.just("b" * 255),
                                 st.just(" main "), st.just("../../etc/passwd"), st.just("feature/ünïcødé-🌿"))),
        "environmentType": draw(st.sampled_from(["development", "staging", "production"])),
        "deployPolicy": draw(st.sampled_from(["OnChange", "Manual"])),
    }
    if spec["environmentType"] == "production" or draw(st.booleans()):
        spec["deletionPolicy"] = draw(st.sampled_from(["Delete", "Orphan"]))
    if draw(st.booleans()):
        spec["unknownField"] = draw(st.text(UNICODE, max_size=50))
    annotations = {}
    if draw(st.booleans()):
        annotations["oec.sh/poll-interval"] = draw(ODD_INTERVALS)
    if draw(st.booleans()):
        annotations["oec.sh/reconcile-requested-at"] = draw(st.text(UNICODE, max_size=300))
    if draw(st.booleans()):
        annotations["oec.sh/redeploy-requested-at"] = draw(st.text(UNICODE, min_size=1, max_size=50))
    if draw(st.booleans()):
        annotations["oec.sh/paused"] = draw(st.sampled_from(["TRUE", "yes", "1", "false", "", "🙃"]))
    manifest = environment(name, "")
    manifest["spec"] = spec
    if annotations:
        manifest["metadata"]["annotations"] = annotations
    return manifest


#: Observation window (s) and the steady poll interval the operator runs with in that test.
WINDOW, STEADY = 12.0, 3.0
#: Per resource in WINDOW: at most WINDOW/STEADY + 1 steady polls of at most 3 calls each (GET
#: environment, GET status, GET logs after a failed deploy). A hot loop on the 0.5 s fast tick
#: makes 24 polls, ~48 calls.
CALL_BOUND = int((WINDOW / STEADY + 1) * 3)


def test_weird_but_valid_manifests_get_conditions_without_crash_or_hot_loop(
    cluster: Cluster, simulator: Simulator, operator_factory: Any
) -> None:
    operator: OperatorProcess = operator_factory(OEC_POLL_INTERVAL=str(STEADY), OEC_MIN_POLL_INTERVAL=str(STEADY))
    created: dict[str, str] = {}  # resource name -> project id

    @settings(SETTINGS, max_examples=15)
    @given(weird_manifest())
    def survives(manifest: dict[str, Any]) -> None:
        project = simulator.new_project("weird")
        manifest["spec"]["projectId"] = project
        name = manifest["metadata"]["name"]
        status, message = dry_run_create(cluster, manifest)
        assert status == 201, f"schema refused a valid manifest: {message[:300]}"
        status, message = dry_run_create(cluster, manifest, dry_run=False)
        assert status == 201, message
        created[name] = project

        def has_conditions() -> list[dict[str, Any]] | None:
            conds = (cluster.get(name) or {}).get("status", {}).get("conditions", [])
            types = {c["type"] for c in conds}
            return conds if "Ready" in types or "Paused" in types else None

        wait_for(has_conditions, timeout=45, what=f"conditions on {name} ({json.dumps(manifest)[:200]})")
        assert operator.proc is not None and operator.proc.poll() is None, "the operator process exited"

    survives()
    assert operator.proc is not None and operator.proc.poll() is None, "the operator process exited"

    def deploys_done() -> bool:
        """No created resource has work in flight (it would poll at the fast pace, legitimately):
        a redeploy token set at creation deploys twice, which a fixed pause may not cover."""
        items = json.loads(cluster.kubectl("get", f"{PLURAL}.{GROUP}", "-o", "json").stdout)["items"]
        statuses = [o.get("status") or {} for o in items if o["metadata"]["name"] in created]
        return len(statuses) == len(created) and not any(
            s.get("phase") in TRANSITIONAL_STATES or s.get("pendingDeploy") for s in statuses)

    # Let deploys finish, then watch a window of steady state.
    wait_for(deploys_done, timeout=60, what="every deploy of the weird resources to finish")
    seq = simulator.last_seq()
    time.sleep(WINDOW)
    requests = simulator.requests(since=seq)
    env_project = {e["id"]: e["project_id"] for e in simulator.admin.get("/_sim/environments").json()}
    per_project: dict[str, int] = {}
    writes: list[str] = []
    for r in requests:
        project = next((p for p in created.values() if p in r["path"]), None)
        if project is None:
            env_id = next((i for i in env_project if i in r["path"]), None)
            project = env_project.get(env_id) if env_id else None
        if project is not None and project in created.values():
            per_project[project] = per_project.get(project, 0) + 1
            if r["method"] != "GET":
                writes.append(f"{r['method']} {r['path']} -> {r['status']}")
    by_name = {n: per_project.get(p, 0) for n, p in created.items()}
    hot = {n: c for n, c in by_name.items() if c > CALL_BOUND}
    assert not hot, f"more than {CALL_BOUND} API calls in {WINDOW:.0f}s: {hot} (writes: {writes[:10]})"
    assert operator.proc.poll() is None, "the operator process exited"
    # An unexpected exception in a handler shows up as a traceback in the log.
    assert "Traceback" not in operator.output(), operator.output()[-3000:]


@pytest.mark.parametrize("value", ["nan", "inf", "-5", "1e308"])
def test_odd_poll_interval_annotation_neither_crashes_nor_hot_loops(
    cluster: Cluster, simulator: Simulator, operator_factory: Any, value: str
) -> None:
    operator: OperatorProcess = operator_factory(OEC_POLL_INTERVAL=str(STEADY), OEC_MIN_POLL_INTERVAL=str(STEADY))
    project = simulator.new_project("interval")
    manifest = environment("odd-interval", project)
    manifest["metadata"]["annotations"] = {"oec.sh/poll-interval": value}
    status, message = dry_run_create(cluster, manifest, dry_run=False)  # no YAML: "1e308" stays a string
    assert status == 201, message
    cluster.wait_ready("odd-interval", timeout=45)
    env_id = (cluster.get("odd-interval") or {})["status"]["environmentId"]
    seq = simulator.last_seq()
    time.sleep(WINDOW)
    calls = [r for r in simulator.requests(since=seq) if env_id in r["path"]]
    assert len(calls) <= CALL_BOUND, f"{len(calls)} calls in {WINDOW:.0f}s with poll-interval {value!r}"
    assert operator.proc is not None and operator.proc.poll() is None


#: Day-2 fields (issue 12): one manifest per rule, with one thing wrong, the field path the refusal
#: must name and a phrase of its message (the CEL rule's own message, or the schema's).
DAY2_REFUSALS: dict[str, tuple[dict[str, Any], str, str]] = {
    "power-enum": ({"powerState": "Paused"}, "spec.powerState", "Unsupported value"),
    "modules-pattern": ({"deploy": {"updateModules": ["sale", "Web-Site"]}}, "spec.deploy.updateModules",
                        "deploy.updateModules items must be Odoo module names"),
    "modules-too-long": ({"deploy": {"updateModules": ["a" * 65]}}, "spec.deploy.updateModules[0]", "Too long"),
    "modules-too-many": ({"deploy": {"updateModules": [f"m{i}" for i in range(51)]}},
                         "spec.deploy.updateModules", "Too many"),
    "modules-all-not-alone": ({"deploy": {"updateModules": ["all", "sale"]}}, "spec.deploy.updateModules",
                              '"all" must be the only item'),
    "modules-empty": ({"deploy": {"updateModules": []}}, "spec.deploy.updateModules", "at least 1 item"),
    "modules-duplicate": ({"deploy": {"updateModules": ["sale", "sale"]}}, "spec.deploy.updateModules[1]",
                          "Duplicate value"),
    "request-modules-duplicate": ({"deploy": {"request": {"id": "r1", "updateModules": ["sale", "sale"]}}},
                                  "spec.deploy.request.updateModules[1]", "Duplicate value"),
    "request-no-id": ({"deploy": {"request": {"mode": "UpdateAll"}}}, "spec.deploy.request.id", "Required value"),
    "request-mode-enum": ({"deploy": {"request": {"id": "r1", "mode": "Upgrade"}}}, "spec.deploy.request.mode",
                          "Unsupported value"),
    "request-modules-pattern": ({"deploy": {"request": {"id": "r1", "updateModules": ["sale;rm"]}}},
                                "spec.deploy.request.updateModules", "request.updateModules items must be"),
    "update-specific-no-modules": ({"deploy": {"request": {"id": "r1", "mode": "UpdateSpecific"}}},
                                   "spec.deploy.request.updateModules", "request.updateModules is required"),
    "reinit-empty-modules": ({"deploy": {"request": {"id": "r1", "mode": "ReinitializeSpecific", "confirm": "x",
                                                     "updateModules": []}}},
                             "spec.deploy.request.updateModules", "request.updateModules is required"),
    "update-specific-all": ({"deploy": {"request": {"id": "r1", "mode": "UpdateSpecific", "updateModules": ["all"]}}},
                            "spec.deploy.request.updateModules", "use mode UpdateAll"),
    "pull-restart-modules": ({"deploy": {"request": {"id": "r1", "mode": "PullRestart", "updateModules": ["sale"]}}},
                             "spec.deploy.request.updateModules", "request.updateModules must be absent"),
    "update-all-modules": ({"deploy": {"request": {"id": "r1", "mode": "UpdateAll", "updateModules": ["sale"]}}},
                           "spec.deploy.request.updateModules", "request.updateModules must be absent"),
    "reinit-no-confirm": ({"deploy": {"request": {"id": "r1", "mode": "ReinitializeSpecific",
                                                  "updateModules": ["sale"]}}},
                          "spec.deploy.request.confirm", "request.confirm is required"),
    "cpu-too-small": ({"resources": {"cpuCores": 0.1}}, "spec.resources.cpuCores", "greater than or equal to 0.25"),
    "cpu-too-big": ({"resources": {"cpuCores": 33}}, "spec.resources.cpuCores", "less than or equal to 32"),
    "cpu-quantity": ({"resources": {"cpuCores": "500m"}}, "spec.resources.cpuCores", "must be of type number"),
    "ram-too-small": ({"resources": {"ramMb": 128}}, "spec.resources.ramMb", "greater than or equal to 256"),
    "ram-fraction": ({"resources": {"ramMb": 1024.5}}, "spec.resources.ramMb", "must be of type integer"),
    "disk-zero": ({"resources": {"diskGb": 0}}, "spec.resources.diskGb", "greater than or equal to 1"),
    "disk-too-big": ({"resources": {"diskGb": 1001}}, "spec.resources.diskGb", "less than or equal to 1000"),
    "resize-enum": ({"resizePolicy": "Now"}, "spec.resizePolicy", "Unsupported value"),
    "domain-url": ({"domain": "https://erp.example.com"}, "spec.domain", "domain must be a lowercase hostname"),
    "domain-upper": ({"domain": "ERP.example.com"}, "spec.domain", "domain must be a lowercase hostname"),
    "domain-no-dot": ({"domain": "localhost"}, "spec.domain", "domain must be a lowercase hostname"),
    "domain-inner-wildcard": ({"domain": "erp.*.example.com"}, "spec.domain", "domain must be a lowercase hostname"),
}

#: Day-2 specs the schema must accept (the boundaries of the rules above).
DAY2_ACCEPTED: dict[str, dict[str, Any]] = {
    "modules-all": {"deploy": {"updateModules": ["all"]}},
    "modules-fifty": {"deploy": {"updateModules": [f"m{i}" for i in range(50)]}},
    "request-deploy": {"deploy": {"request": {"id": "a" * 128, "updateModules": ["sale", "l10n_de"]}}},
    "request-deploy-all": {"deploy": {"request": {"id": "r1", "updateModules": ["all"]}}},
    "request-update-all": {"deploy": {"request": {"id": "r1", "mode": "UpdateAll"}}},
    "request-reinit": {"deploy": {"request": {"id": "r1", "mode": "ReinitializeSpecific", "updateModules": ["sale"],
                                              "confirm": "day2"}}},
    "sizes-at-bounds": {"resources": {"cpuCores": 0.25, "ramMb": 131072, "diskGb": 1000}, "resizePolicy": "NextDeploy"},
    "stopped": {"powerState": "Stopped"},
    "domain": {"domain": "erp.example.com"},
    "domain-wildcard": {"domain": "*.shop.example.co.uk"},
    "domain-platform": {"domain": ""},
}


def _day2_manifest(spec: dict[str, Any]) -> dict[str, Any]:
    manifest = environment(f"day2-{uuid.uuid4().hex[:8]}", PROJECT)
    manifest["spec"] = {"projectId": PROJECT, **spec}
    return manifest


@pytest.mark.parametrize("case", list(DAY2_REFUSALS))
def test_day2_fields_refused_naming_the_field(cluster: Cluster, case: str) -> None:
    spec, field, phrase = DAY2_REFUSALS[case]
    status, message = dry_run_create(cluster, _day2_manifest(spec))
    assert status in (400, 422), f"accepted: {spec}"
    assert f"{field}:" in message and phrase in message, message[:800]


@pytest.mark.parametrize("case", list(DAY2_ACCEPTED))
def test_day2_fields_accepted_at_their_bounds(cluster: Cluster, case: str) -> None:
    status, message = dry_run_create(cluster, _day2_manifest(DAY2_ACCEPTED[case]))
    assert status == 201, message[:800]


def test_day2_defaults_are_applied(cluster: Cluster) -> None:
    from kubernetes import client

    manifest = _day2_manifest({"deploy": {"request": {"id": "r1"}}})
    with cluster.kube.api_client() as api:
        created = client.CustomObjectsApi(api).create_namespaced_custom_object(
            GROUP, VERSION, cluster.namespace, PLURAL, manifest, dry_run="All", _request_timeout=30)
    assert isinstance(created, dict)
    spec = created["spec"]
    assert (spec["powerState"], spec["resizePolicy"], spec["deploy"]["request"]["mode"]) == (
        "Running", "Restart", "Deploy")
    assert "resources" not in spec and "domain" not in spec  # absent = not managed


def _dry_run_patch(cluster: Cluster, name: str, patch: dict[str, Any], plural: str = PLURAL) -> tuple[int, str]:
    """A server-side dry-run JSON merge patch of ``spec``: ``(HTTP status, message)``."""
    result = cluster.kubectl("patch", f"{plural}.{GROUP}", name, "--type", "merge", "--dry-run=server",
                             "-p", json.dumps({"spec": patch}), check=False)
    return (200, "") if result.returncode == 0 else (422, result.stderr)


def test_disk_never_shrinks_and_is_never_removed(cluster: Cluster) -> None:
    manifest = _day2_manifest({"resources": {"cpuCores": 1, "diskGb": 20}})
    name = manifest["metadata"]["name"]
    status, message = dry_run_create(cluster, manifest, dry_run=False)  # no operator runs: nothing else acts
    assert status == 201, message

    status, message = _dry_run_patch(cluster, name, {"resources": {"diskGb": 10}})
    assert status == 422 and "spec.resources.diskGb:" in message, message
    assert "resources.diskGb cannot shrink" in message, message
    for removal in ({"resources": {"diskGb": None}}, {"resources": None}):
        status, message = _dry_run_patch(cluster, name, removal)
        assert status == 422, f"removing diskGb accepted: {removal}"
        assert "spec.resources.diskGb:" in message and "cannot be removed once set" in message, message
    # Growing the disk, and changing or removing the other sizes, is fine.
    assert _dry_run_patch(cluster, name, {"resources": {"diskGb": 40, "cpuCores": None}}) == (200, "")
    assert _dry_run_patch(cluster, name, {"resources": {"cpuCores": 0.5, "ramMb": 2048}}) == (200, "")


def _unset(model: BaseModel, path: str = "status") -> list[str]:
    """The fields of ``model`` and of the models in it (lists included) that are not set."""
    missing = [f"{path}.{name}" for name in type(model).model_fields if name not in model.model_fields_set]
    for name in model.model_fields_set:
        value = getattr(model, name)
        for item in value if isinstance(value, tuple) else (value,):
            if isinstance(item, BaseModel):
                missing += _unset(item, f"{path}.{name}")
    return missing


def test_every_status_field_of_the_model_survives_the_structural_schema(cluster: Cluster) -> None:
    """The status schema is structural: a field the CRD does not list is silently pruned. Every
    field of :class:`Status` (the issue-12 and issue-13 ones included) written through the status
    subresource must read back unchanged."""
    from oec_operator.models.status import Status

    manifest = _day2_manifest({})
    name = manifest["metadata"]["name"]
    assert dry_run_create(cluster, manifest, dry_run=False)[0] == 201
    refused = {"request": "PATCH /environments/e1", "fingerprint": "f", "status": 402, "code": "plan_limit",
               "message": "plan allows 8 GB", "field": "ram_mb", "refusedAt": "2026-01-15T09:00:00Z"}
    full = {
        "observedGeneration": 1, "environmentId": "e1", "phase": "running", "url": "https://x", "odooVersion": "18.0",
        "branch": "main", "lastCommit": "abc", "cpuCores": 1.5, "ramMb": 4096, "diskGb": 20, "serverId": "s1",
        "createdAt": "2026-01-15T09:00:00Z", "updatedAt": "2026-01-15T09:00:00Z",
        "health": {"containerRunning": True, "dbReady": True, "httpOk": True, "phase": "running"},
        "lastDeploy": {"id": "t1", "status": "success", "startedAt": "2026-01-15T09:00:00Z",
                       "completedAt": "2026-01-15T09:01:00Z"},
        "createRequest": {"key": "k", "name": "n", "environmentType": "development", "branch": "main",
                          "requestedAt": "2026-01-15T09:00:00Z", "cpuCores": 2.0, "ramMb": 4096, "diskGb": 20},
        "pendingDeploy": {"key": "k2", "reason": "deploy request r1", "requestedAt": "2026-01-15T09:00:00Z",
                          "blockedBy": "t0", "updateModules": ["sale", "stock"], "mode": "update_specific",
                          "requestId": "r1"},
        "refusedWrite": refused, "refusedFields": [refused, {**refused, "field": "domain", "status": 422}],
        "powerState": "Stopping",
        "task": {"id": "t2", "action": "stop", "reason": "spec.powerState Stopped",
                 "requestedAt": "2026-01-15T09:00:00Z"},
        "pendingResources": {"cpuCores": 2.5, "ramMb": 8192, "diskGb": 40, "appliesOn": "NextDeploy",
                             "since": "2026-01-15T09:00:00Z", "afterDeploy": "t1", "unconfirmed": True},
        "customDomain": "erp.example.com", "customDomainVerified": False,
        "lastTaskKey": "oec-operator-stop-k",
        "lastHandledDeployRequest": "r0", "lastHandledRestartAt": "x1", "lastHandledReconcileAt": "x2",
        "lastHandledRedeployAt": "x3", "lastHandledRecreateAt": "x4", "lastSyncTime": "2026-01-15T09:00:00Z",
        "finalBackup": {"backupId": "b9", "phase": "Running", "requestedAt": "2026-01-15T09:00:00Z",
                        "completedAt": "2026-01-15T09:05:00Z", "message": "waiting for backup b9",
                        "token": "try-2"},
        "backups": {"latest": {"id": "b8", "type": "scheduled", "status": "completed",
                               "completedAt": "2026-01-15T02:10:00Z"}, "checkedAt": "2026-01-15T09:00:00Z"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "Stopped", "message": "stopped",
                        "observedGeneration": 1, "lastTransitionTime": "2026-01-15T09:00:00Z"}],
    }
    written = Status.model_validate(full)
    assert _unset(written) == [], "the test must set every Status field, nested ones included"
    cluster.kubectl("patch", f"{PLURAL}.{GROUP}", name, "--subresource=status", "--type", "merge",
                    "-p", json.dumps({"status": full}))
    stored = (cluster.get(name) or {}).get("status", {})
    assert Status.from_body(stored) == written
    assert stored == full  # nothing pruned, nothing added


# --------------------------------------------------------------------------- the backup kinds (issue 13)

BACKUP_PLURAL, SCHEDULE_PLURAL, RESTORE_PLURAL = "odoobackups", "odoobackupschedules", "odoorestores"
#: The smallest valid spec of each kind.
BASE_SPECS: dict[str, dict[str, Any]] = {
    BACKUP_PLURAL: {"environmentRef": {"name": "shop"}},
    SCHEDULE_PLURAL: {"schedule": "0 2 * * *", "environmentRef": {"name": "shop"}},
    RESTORE_PLURAL: {"environmentRef": {"name": "shop"}, "backupId": "b1", "confirmEnvironmentName": "shop",
                     "notAfter": "2030-01-01T00:00:00Z"},
}
KIND_OF = {BACKUP_PLURAL: "OdooBackup", SCHEDULE_PLURAL: "OdooBackupSchedule", RESTORE_PLURAL: "OdooRestore"}


def kind_manifest(plural: str, changes: dict[str, Any]) -> dict[str, Any]:
    """A manifest of the kind: its base spec with ``changes`` merged in (``None`` removes a key)."""
    spec = {**BASE_SPECS[plural], **changes}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND_OF[plural],
            "metadata": {"name": f"{plural[4:10]}-{uuid.uuid4().hex[:8]}"},
            "spec": {k: v for k, v in spec.items() if v is not None}}


#: One manifest per rule with one thing wrong: (plural, spec changes, the field path the refusal must
#: name, a phrase of its message).
BACKUP_KIND_REFUSALS: dict[str, tuple[str, dict[str, Any], str, str]] = {
    "backup-no-environment": (BACKUP_PLURAL, {"environmentRef": None}, "spec.environmentRef", "Required value"),
    "backup-environment-no-name": (BACKUP_PLURAL, {"environmentRef": {}}, "spec.environmentRef.name",
                                   "Required value"),
    "backup-retention-enum": (BACKUP_PLURAL, {"retention": "forever"}, "spec.retention", "Unsupported value"),
    "backup-notes-too-long": (BACKUP_PLURAL, {"notes": "n" * 401}, "spec.notes", "Too long"),
    "backup-filestore-type": (BACKUP_PLURAL, {"includeFilestore": "yes"}, "spec.includeFilestore",
                              "must be of type boolean"),
    "backup-id-empty": (BACKUP_PLURAL, {"backupId": ""}, "spec.backupId", "at least 1 chars long"),
    "backup-credentials-no-name": (BACKUP_PLURAL, {"credentialsSecretRef": {"key": "apiKey"}},
                                   "spec.credentialsSecretRef.name", "Required value"),
    "schedule-missing": (SCHEDULE_PLURAL, {"schedule": None}, "spec.schedule", "Required value"),
    "schedule-six-fields": (SCHEDULE_PLURAL, {"schedule": "0 0 2 * * *"}, "spec.schedule", "5-field cron"),
    "schedule-four-fields": (SCHEDULE_PLURAL, {"schedule": "0 2 * *"}, "spec.schedule", "5-field cron"),
    "schedule-macro": (SCHEDULE_PLURAL, {"schedule": "@daily"}, "spec.schedule", "5-field cron"),
    "schedule-tz-prefix": (SCHEDULE_PLURAL, {"schedule": "TZ=UTC 0 2 * * *"}, "spec.schedule", "5-field cron"),
    "schedule-both-targets": (SCHEDULE_PLURAL, {"selector": {"matchLabels": {"tier": "prod"}}}, "spec",
                              "exactly one of environmentRef or selector"),
    "schedule-no-target": (SCHEDULE_PLURAL, {"environmentRef": None}, "spec",
                           "exactly one of environmentRef or selector"),
    "schedule-time-zone-words": (SCHEDULE_PLURAL, {"timeZone": "Berlin time"}, "spec.timeZone", "IANA time zone"),
    "schedule-time-zone-path": (SCHEDULE_PLURAL, {"timeZone": "../../etc/passwd"}, "spec.timeZone",
                                "IANA time zone"),
    "schedule-concurrency": (SCHEDULE_PLURAL, {"concurrencyPolicy": "Allow"}, "spec.concurrencyPolicy",
                             "Unsupported value"),
    "schedule-deadline-small": (SCHEDULE_PLURAL, {"startingDeadlineSeconds": 10}, "spec.startingDeadlineSeconds",
                                "greater than or equal to 60"),
    "schedule-history-big": (SCHEDULE_PLURAL, {"successfulHistoryLimit": 101}, "spec.successfulHistoryLimit",
                             "less than or equal to 100"),
    "schedule-failed-negative": (SCHEDULE_PLURAL, {"failedHistoryLimit": -1}, "spec.failedHistoryLimit",
                                 "greater than or equal to 0"),
    "schedule-spread-big": (SCHEDULE_PLURAL, {"spreadSeconds": 86401}, "spec.spreadSeconds",
                            "less than or equal to 86400"),
    "schedule-template-retention": (SCHEDULE_PLURAL, {"template": {"retention": "forever"}},
                                    "spec.template.retention", "Unsupported value"),
    "schedule-template-notes": (SCHEDULE_PLURAL, {"template": {"notes": "n" * 401}}, "spec.template.notes",
                                "Too long"),
    "schedule-selector-in-without-values": (
        SCHEDULE_PLURAL,
        {"environmentRef": None, "selector": {"matchExpressions": [{"key": "tier", "operator": "In"}]}},
        "spec.selector.matchExpressions[0]", "values must be non-empty for In and NotIn"),
    "schedule-selector-operator": (
        SCHEDULE_PLURAL, {"environmentRef": None,
                          "selector": {"matchExpressions": [{"key": "tier", "operator": "Like", "values": ["p"]}]}},
        "spec.selector.matchExpressions[0].operator", "Unsupported value"),
    "restore-no-backup": (RESTORE_PLURAL, {"backupId": None}, "spec", "exactly one of backupRef or backupId"),
    "restore-two-backups": (RESTORE_PLURAL, {"backupRef": {"name": "nightly"}}, "spec",
                            "exactly one of backupRef or backupId"),
    "restore-no-environment": (RESTORE_PLURAL, {"environmentRef": None}, "spec.environmentRef", "Required value"),
    "restore-no-confirmation": (RESTORE_PLURAL, {"confirmEnvironmentName": None}, "spec.confirmEnvironmentName",
                                "Required value"),
    "restore-empty-confirmation": (RESTORE_PLURAL, {"confirmEnvironmentName": ""}, "spec.confirmEnvironmentName",
                                   "at least 1 chars long"),
    "restore-no-not-after": (RESTORE_PLURAL, {"notAfter": None}, "spec.notAfter", "Required value"),
    "restore-not-after-words": (RESTORE_PLURAL, {"notAfter": "tomorrow"}, "spec.notAfter", "date-time"),
}

#: Specs at the rules' boundaries that the schema must accept.
BACKUP_KIND_ACCEPTED: dict[str, tuple[str, dict[str, Any]]] = {
    "backup-full": (BACKUP_PLURAL, {"includeFilestore": False, "retention": "permanent", "notes": "ü" * 400,
                                    "backupId": "5f1c", "credentialsSecretRef": {"name": "team-key", "key": "k"}}),
    "schedule-selector": (SCHEDULE_PLURAL, {
        "environmentRef": None, "schedule": "*/15 1-5 1,15 JAN-DEC MON-FRI",
        "timeZone": "America/Argentina/Buenos_Aires",
        "selector": {"matchLabels": {"tier": "prod"},
                     "matchExpressions": [{"key": "team", "operator": "In", "values": ["a", "b"]},
                                          {"key": "legacy", "operator": "DoesNotExist"}]},
        "suspend": True, "startingDeadlineSeconds": 60, "successfulHistoryLimit": 0, "failedHistoryLimit": 100,
        "spreadSeconds": 86400, "template": {"includeFilestore": False, "retention": "daily", "notes": "n" * 400}}),
    "schedule-empty-selector": (SCHEDULE_PLURAL, {"environmentRef": None, "selector": {}, "timeZone": "Etc/GMT+5"}),
    "restore-backup-ref": (RESTORE_PLURAL, {"backupId": None, "backupRef": {"name": "nightly-shop-202612010200"},
                                            "notAfter": "2026-12-01T10:00:00.5+01:00"}),
}


@pytest.mark.parametrize("case", list(BACKUP_KIND_REFUSALS))
def test_backup_kinds_refused_naming_the_field(cluster: Cluster, case: str) -> None:
    plural, changes, field, phrase = BACKUP_KIND_REFUSALS[case]
    status, message = dry_run_create(cluster, kind_manifest(plural, changes), plural=plural)
    assert status in (400, 422), f"accepted: {changes}"
    assert f"{field}:" in message and phrase in message, message[:800]


@pytest.mark.parametrize("case", list(BACKUP_KIND_ACCEPTED))
def test_backup_kinds_accepted_at_their_bounds(cluster: Cluster, case: str) -> None:
    plural, changes = BACKUP_KIND_ACCEPTED[case]
    status, message = dry_run_create(cluster, kind_manifest(plural, changes), plural=plural)
    assert status == 201, message[:800]


def _created(cluster: Cluster, plural: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """Create for real (no operator runs in these tests: nothing acts on it) and return the object."""
    from kubernetes import client

    with cluster.kube.api_client() as api:
        created = client.CustomObjectsApi(api).create_namespaced_custom_object(
            GROUP, VERSION, cluster.namespace, plural, manifest, _request_timeout=30)
    assert isinstance(created, dict)
    return created


def test_backup_kinds_defaults_are_applied(cluster: Cluster) -> None:
    backup = _created(cluster, BACKUP_PLURAL, kind_manifest(BACKUP_PLURAL, {}))["spec"]
    assert (backup["retention"], backup["includeFilestore"]) == ("monthly", True)  # never silently permanent
    schedule = _created(cluster, SCHEDULE_PLURAL, kind_manifest(SCHEDULE_PLURAL, {}))["spec"]
    assert {k: v for k, v in schedule.items() if k not in ("schedule", "environmentRef")} == {
        "timeZone": "UTC", "suspend": False, "concurrencyPolicy": "Forbid", "startingDeadlineSeconds": 3600,
        "successfulHistoryLimit": 7, "failedHistoryLimit": 3,
        "template": {"includeFilestore": True, "retention": "weekly"}}
    env = _created(cluster, PLURAL, _day2_manifest({"finalBackup": {}}))["spec"]
    assert env["finalBackup"] == {"retention": "monthly", "timeoutSeconds": 3600}  # enabled: by environmentType
    assert "finalBackup" not in _created(cluster, PLURAL, _day2_manifest({}))["spec"]


@pytest.mark.parametrize("plural", [BACKUP_PLURAL, RESTORE_PLURAL])
def test_a_backup_or_restore_spec_cannot_change(cluster: Cluster, plural: str) -> None:
    name = _created(cluster, plural, kind_manifest(plural, {}))["metadata"]["name"]
    change = {"notes": "other"} if plural == BACKUP_PLURAL else {"confirmEnvironmentName": "other"}
    status, message = _dry_run_patch(cluster, name, change, plural)
    assert status == 422 and "spec: Invalid value" in message, message
    assert f"spec is immutable; create a new {KIND_OF[plural]}" in message, message


def test_a_schedule_can_change(cluster: Cluster) -> None:
    name = _created(cluster, SCHEDULE_PLURAL, kind_manifest(SCHEDULE_PLURAL, {}))["metadata"]["name"]
    assert _dry_run_patch(cluster, name, {"schedule": "30 3 * * 0", "suspend": True}, SCHEDULE_PLURAL) == (200, "")
    status, message = _dry_run_patch(cluster, name, {"environmentRef": None}, SCHEDULE_PLURAL)
    assert status == 422 and "exactly one of environmentRef or selector" in message, message


#: spec.finalBackup of OdooEnvironment: (spec, field, phrase).
FINAL_BACKUP_REFUSALS: dict[str, tuple[dict[str, Any], str, str]] = {
    "retention-enum": ({"finalBackup": {"retention": "forever"}}, "spec.finalBackup.retention", "Unsupported value"),
    "timeout-small": ({"finalBackup": {"timeoutSeconds": 30}}, "spec.finalBackup.timeoutSeconds",
                      "greater than or equal to 60"),
    "timeout-big": ({"finalBackup": {"timeoutSeconds": 86401}}, "spec.finalBackup.timeoutSeconds",
                    "less than or equal to 86400"),
    "enabled-type": ({"finalBackup": {"enabled": "yes"}}, "spec.finalBackup.enabled", "must be of type boolean"),
    "enabled-with-observe": ({"managementPolicy": "Observe", "environmentId": "0b7e4b8e-3c1d-4a55-9b1a-1c2d3e4f5a6b",
                              "finalBackup": {"enabled": True}}, "spec.finalBackup.enabled",
                             "finalBackup.enabled needs managementPolicy Manage"),
}


@pytest.mark.parametrize("case", list(FINAL_BACKUP_REFUSALS))
def test_final_backup_refused_naming_the_field(cluster: Cluster, case: str) -> None:
    spec, field, phrase = FINAL_BACKUP_REFUSALS[case]
    status, message = dry_run_create(cluster, _day2_manifest(spec))
    assert status in (400, 422), f"accepted: {spec}"
    assert f"{field}:" in message and phrase in message, message[:800]


def test_final_backup_accepted(cluster: Cluster) -> None:
    spec = {"environmentType": "production", "deletionPolicy": "Delete",
            "finalBackup": {"enabled": True, "retention": "yearly", "timeoutSeconds": 60}}
    assert dry_run_create(cluster, _day2_manifest(spec)) == (201, "")
    observe_off = {"managementPolicy": "Observe", "environmentId": "0b7e4b8e-3c1d-4a55-9b1a-1c2d3e4f5a6b",
                   "finalBackup": {"enabled": False}}
    assert dry_run_create(cluster, _day2_manifest(observe_off)) == (201, "")


#: A status with every field of each kind's model set (read back through the structural schema).
FULL_STATUS: dict[str, dict[str, Any]] = {
    BACKUP_PLURAL: {
        "observedGeneration": 1, "phase": "Completed", "backupId": "b1", "taskId": "t1", "environmentId": "e1",
        "oecStatus": "completed", "backupType": "manual", "databaseSize": 2**33, "filestoreSize": 2**34,
        "totalSize": 2**35, "compressedSize": 2**32, "startedAt": "2026-01-15T09:00:00Z",
        "completedAt": "2026-01-15T09:05:00.123456+00:00", "expiresAt": "2026-02-14T09:05:00Z", "verified": True,
        "createRequestedAt": "2026-01-15T08:59:59Z", "message": "backup b1 completed",
    },
    SCHEDULE_PLURAL: {
        "observedGeneration": 2, "lastScheduleTime": "2026-01-15T02:00:00Z",
        "nextScheduleTime": "2026-01-16T02:00:00Z", "lastSuccessfulTime": "2026-01-14T02:00:00Z",
        "active": ["nightly-shop-202601150200"], "environments": 12, "skipped": 3, "message": "12 environments",
    },
    RESTORE_PLURAL: {
        "observedGeneration": 1, "phase": "Running", "backupId": "b1", "environmentId": "e1", "taskId": "t2",
        "safetyBackupId": "b2", "requestedAt": "2026-01-15T09:00:00Z", "startedAt": "2026-01-15T09:00:01Z",
        "completedAt": "2026-01-15T09:10:00Z", "message": "restoring b1",
    },
}


@pytest.mark.parametrize("plural", list(FULL_STATUS))
def test_every_status_field_of_the_backup_kinds_survives_the_structural_schema(cluster: Cluster, plural: str) -> None:
    """As for OdooEnvironment: a status field the CRD does not list would be silently pruned."""
    from oec_operator.models.backups import OdooBackupScheduleStatus, OdooBackupStatus, OdooRestoreStatus
    from oec_operator.models.status import StatusBase

    models: dict[str, type[StatusBase]] = {BACKUP_PLURAL: OdooBackupStatus, SCHEDULE_PLURAL: OdooBackupScheduleStatus,
                                           RESTORE_PLURAL: OdooRestoreStatus}
    model = models[plural]
    full = {**FULL_STATUS[plural], "conditions": [
        {"type": "Ready", "status": "True", "reason": "Completed", "message": "done", "observedGeneration": 1,
         "lastTransitionTime": "2026-01-15T09:00:00Z"}]}
    written = model.model_validate(full)
    assert _unset(written) == [], f"the test must set every {model.__name__} field"
    name = _created(cluster, plural, kind_manifest(plural, {}))["metadata"]["name"]
    cluster.kubectl("patch", f"{plural}.{GROUP}", name, "--subresource=status", "--type", "merge",
                    "-p", json.dumps({"status": full}))
    stored = json.loads(cluster.kubectl("get", f"{plural}.{GROUP}", name, "-o", "json").stdout).get("status", {})
    assert model.from_body(stored) == written
    assert stored == full  # nothing pruned, nothing added


def test_a_schedule_selector_lists_on_the_apiserver_what_the_operator_matches(cluster: Cluster) -> None:
    """``LabelSelector.query()`` (the list query the operator sends) selects on the real apiserver
    exactly the objects ``LabelSelector.matches`` (the operator's own reading) selects."""
    from oec_operator.models.backups import LabelSelector

    run = uuid.uuid4().hex[:6]
    labelled = {"a": {"tier": "prod", "team": "x", "backup": "y"}, "b": {"tier": "prod", "team": "z", "backup": "y"},
                "c": {"tier": "prod", "team": "x"}, "d": {"tier": "prod", "team": "x", "backup": "y", "legacy": "1"},
                "e": {"tier": "dev", "team": "x", "backup": "y"}}
    for name, labels in labelled.items():
        manifest = _day2_manifest({})
        manifest["metadata"].update(name=f"sel-{run}-{name}", labels={**labels, "run": run})
        assert dry_run_create(cluster, manifest, dry_run=False)[0] == 201
    selector = LabelSelector.model_validate({
        "matchLabels": {"tier": "prod", "run": run},
        "matchExpressions": [{"key": "team", "operator": "In", "values": ["x", "y"]},
                             {"key": "backup", "operator": "Exists"},
                             {"key": "legacy", "operator": "DoesNotExist"},
                             {"key": "zone", "operator": "NotIn", "values": ["eu"]}]})
    listed = cluster.kubectl("get", f"{PLURAL}.{GROUP}", "-l", selector.query(), "-o", "name").stdout.split()
    expected = [n for n, labels in labelled.items() if selector.matches({**labels, "run": run})]
    assert expected == ["a"]
    assert sorted(listed) == [f"{PLURAL[:-1]}.{GROUP}/sel-{run}-{n}" for n in expected]
