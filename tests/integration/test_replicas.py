"""Two operator processes at once (``replicas: 2``, a rolling update, a node drain): kopf peering lets
one act, the other waits and takes over when the active one dies (``docs/kopf.md`` §6).

Each operator process reaches the simulator through its own counting proxy, so the test knows
which process sent which API request. The active process is SIGKILLed while creates are in flight,
and in a second phase (a new standby started meanwhile) while deletions are in flight. Without
peering (both processes started with ``--standalone``) both act at once and the first assertion
fails: the standby's proxy counts requests while the active process still runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import Cluster, OperatorProcess, Simulator, environment, kubectl_run, wait_for

pytestmark = pytest.mark.integration

#: The operator's default peering lifetime (``OEC_PEERING_LIFETIME``), seconds.
LIFETIME = 15.0
#: The API holds each create this long, so that the kill falls while creates are in flight.
CREATE_HELD = 3.0
HOP_HEADERS = {"host", "content-length", "connection", "transfer-encoding", "keep-alive"}


class CountingProxy:
    """A reverse proxy on loopback in front of the simulator for one operator process: forwards
    every request and records ``(monotonic time of the answer, method, path, status)``."""

    def __init__(self, upstream: str) -> None:
        self.records: list[tuple[float, str, str, int]] = []
        lock, records, client = threading.Lock(), self.records, httpx.Client(base_url=upstream, timeout=60,
                                                                               trust_env=False)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                try:
                    answer = client.request(self.command, self.path, content=body, headers=headers)
                except (httpx.HTTPError, RuntimeError):  # RuntimeError: closed at the end of the test
                    with contextlib.suppress(OSError):
                        self.send_error(502)
                    return
                with lock:
                    records.append((time.monotonic(), self.command, self.path, answer.status_code))
                with contextlib.suppress(OSError):  # the operator process was killed meanwhile
                    self.send_response(answer.status_code)
                    for key, value in answer.headers.items():
                        if key.lower() not in HOP_HEADERS and key.lower() != "content-encoding":
                            self.send_header(key, value)
                    self.send_header("Content-Length", str(len(answer.content)))
                    self.end_headers()
                    self.wfile.write(answer.content)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = forward

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.client = client
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/public/v1"

    def since(self, t: float) -> list[tuple[float, str, str, int]]:
        """The requests answered after monotonic time ``t``."""
        return [r for r in list(self.records) if r[0] > t]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.client.close()


@pytest.fixture
def proxies(simulator: Simulator) -> Iterator[Callable[[], CountingProxy]]:
    made: list[CountingProxy] = []

    def make() -> CountingProxy:
        made.append(CountingProxy(simulator.base))
        return made[-1]

    yield make
    for proxy in made:
        proxy.close()


def peers(cluster: Cluster, name: str) -> dict[str, Any]:
    """The entries of the ClusterKopfPeering ``name`` (identity -> priority, lifetime, lastseen)."""
    proc = kubectl_run(cluster.kube, "get", "clusterkopfpeerings.kopf.dev", name, "-o", "json", check=False)
    return dict(json.loads(proc.stdout).get("status") or {}) if proc.returncode == 0 else {}


def test_two_replicas_never_act_twice_and_the_standby_takes_over(
    proxies: Callable[[], CountingProxy], cluster: Cluster, simulator: Simulator,
    operator_factory: Callable[..., OperatorProcess],
) -> None:
    project = simulator.new_project("replicas")
    peering = f"replicas-{cluster.namespace}"[:63]
    names = [f"env-{i}" for i in range(4)]

    def replica(proxy: CountingProxy) -> OperatorProcess:
        return operator_factory(OEC_API_URL=proxy.api_url, OEC_PEERING_NAME=peering)

    def ready(name: str) -> bool:
        obj = cluster.get(name) or {}
        return any(c["type"] == "Ready" and c["status"] == "True" for c in obj.get("status", {}).get("conditions", []))

    # The first replica is active; the second (younger: lower priority) joins as the standby.
    proxy_a, proxy_b = proxies(), proxies()
    a = replica(proxy_a)
    cluster.apply(environment("warm-up", project))
    wait_for(lambda: ready("warm-up"), timeout=60, what="warm-up Ready (served by the first replica)")
    b = replica(proxy_b)
    wait_for(lambda: b.extra_env["POD_ID"] in peers(cluster, peering), timeout=30, what="the standby in the peering")
    wait_for(lambda: f"standby: {a.extra_env['POD_ID']} with a higher priority is active" in b.output(), timeout=10,
             what="the standby saying so in its log")

    # Phase 1: creates in flight when the active replica dies.
    simulator.configure(latency={"create_environment": CREATE_HELD})
    try:
        for name in names:
            cluster.apply(environment(name, project))
        wait_for(lambda: all((cluster.get(n) or {}).get("status", {}).get("createRequest") for n in names),
                 timeout=30, what="every create request recorded (the POSTs are held)")
        assert not [n for n in names if "environmentId" in (cluster.get(n) or {}).get("status", {})]
        a.kill()
        killed = time.monotonic()
        assert proxy_b.records == [], f"the standby sent API requests while the active one ran: {proxy_b.records}"
        cluster.apply(environment("after-kill", project))
        wait_for(lambda: all(ready(n) for n in [*names, "after-kill"]), timeout=LIFETIME + 45,
                 what="every resource Ready (served by the standby)")
        all_ready = time.monotonic()
    finally:
        simulator.configure(latency={})
    takeover = proxy_b.records[0][0] - killed
    print(f"creates: standby's first API request {takeover:.1f} s after the kill, "
          f"every resource Ready {all_ready - killed:.1f} s after it")
    assert takeover <= LIFETIME + 5
    envs = simulator.environments(project, include_deleted=True)
    assert sorted(e["name"] for e in envs) == sorted(["warm-up", *names, "after-kill"]), "a duplicate environment"
    ids = {n: (cluster.get(n) or {})["status"]["environmentId"] for n in ["warm-up", *names, "after-kill"]}
    assert set(ids.values()) == {e["id"] for e in envs}

    # Phase 2: a new standby; the active one (b) dies while deletions are in flight.
    proxy_c = proxies()
    c = replica(proxy_c)
    wait_for(lambda: c.extra_env["POD_ID"] in peers(cluster, peering), timeout=30, what="the new standby")
    wait_for(lambda: any(b.extra_env["POD_ID"] in line for line in c.output().splitlines() if "standby: " in line),
             timeout=10, what="the new standby saying so in its log")
    seq = simulator.last_seq()
    for name in ids:
        cluster.delete(name)
    wait_for(lambda: simulator.requests("DELETE", "/environments/", since=seq), timeout=30, what="a DELETE sent")
    b.kill()
    killed = time.monotonic()
    assert proxy_c.records == [], f"the standby sent API requests while the active one ran: {proxy_c.records}"
    wait_for(lambda: all(cluster.get(n) is None for n in ids), timeout=LIFETIME + 45,
             what="every resource deleted (by the standby)")
    takeover = proxy_c.records[0][0] - killed
    print(f"deletes: standby's first API request {takeover:.1f} s after the kill, "
          f"every resource gone {time.monotonic() - killed:.1f} s after it")
    assert takeover <= LIFETIME + 5
    assert all(e["deleted"] for e in simulator.environments(project, include_deleted=True))
    for env_id in ids.values():
        accepted = [r for r in simulator.requests("DELETE", f"/environments/{env_id}", since=seq)
                    if r["status"] is not None and 200 <= r["status"] < 300]
        assert len(accepted) <= 1, f"{env_id}: {len(accepted)} accepted DELETEs"
    assert a.starts == b.starts == c.starts == 1


def test_a_paused_operator_sends_nothing_and_resumes(
    proxies: Callable[[], CountingProxy], cluster: Cluster, simulator: Simulator,
    operator_factory: Callable[..., OperatorProcess],
) -> None:
    """A peer with a higher priority pauses the active operator (here ``kopf freeze``, as for a
    maintenance; a ``kopf run --dev`` on a laptop does the same): its poll daemons and project
    watches stop, a change made meanwhile waits, and it is applied once the peer is gone."""
    project = simulator.new_project("frozen")
    peering = f"frozen-{cluster.namespace}"[:63]
    proxy = proxies()
    op = operator_factory(OEC_API_URL=proxy.api_url, OEC_PEERING_NAME=peering)
    cluster.apply(environment("frozen", project, branch="main"))
    cluster.wait_ready("frozen")
    kopf = str(Path(sys.executable).parent / "kopf")
    env = {**os.environ, "KUBECONFIG": str(cluster.kube.kubeconfig)}
    freeze = [kopf, "freeze", "-A", "-P", peering, "--id", "maintenance", "--lifetime", "600"]
    subprocess.run(freeze, env=env, check=True, capture_output=True, timeout=60)
    wait_for(lambda: "maintenance" in peers(cluster, peering), timeout=10, what="the freeze entry")
    time.sleep(2.0)  # in-flight work ends (the poll daemon's cancellation)
    paused = time.monotonic()
    cluster.apply(environment("frozen", project, branch="release"))
    time.sleep(8.0)  # more than two steady polls (3 s) of an active operator
    assert proxy.since(paused) == [], "the paused operator sent API requests"
    assert simulator.environments(project)[0]["branch"] == "main"

    resume = [kopf, "resume", "-A", "-P", peering, "--id", "maintenance"]
    resumed = time.monotonic()
    subprocess.run(resume, env=env, check=True, capture_output=True, timeout=60)
    wait_for(lambda: simulator.environments(project)[0]["branch"] == "release", timeout=30,
             what="the change applied after the resume")
    print(f"change applied {time.monotonic() - resumed:.1f} s after the resume")
    assert op.alive()
