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
                                    "deployPolicy", "credentialsSecretRef", "environmentId"]))
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


def dry_run_create(cluster: Cluster, manifest: dict[str, Any], dry_run: bool = True) -> tuple[int, str]:
    """Server-side dry-run (or, with ``dry_run=False``, real) create through the Python client
    (no YAML round trip); ``(HTTP status, message)``, 201 and "" when accepted."""
    from kubernetes import client

    with cluster.kube.api_client() as api:
        try:
            client.CustomObjectsApi(api).create_namespaced_custom_object(
                GROUP, VERSION, cluster.namespace, PLURAL, manifest, _request_timeout=30,
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
