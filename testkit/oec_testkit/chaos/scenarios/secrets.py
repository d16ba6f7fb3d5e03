"""The API key leak scan: every error path, and no form of a key anywhere the operator writes."""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from collections.abc import Iterator

import httpx

from ...manifests import condition, environment
from ...waiting import WaitTimeout, wait_until
from ..kube import Kube
from ..lab import Lab, free_port, new_key
from ..ledger import Ledger, ready_pool
from ..results import Result

__all__ = ["leak_needles", "sampler", "scenario_secrets"]


def leak_needles(key: str) -> list[str]:
    """Forms of ``key`` that must never appear: the key, its secret part (after
    ``oec_live_rw_``), the first 16 characters of that part, and the key in base64 (a Secret)."""
    secret = key.split("_", 3)[3]
    return [key, secret, secret[:16], base64.b64encode(key.encode()).decode()]


@contextlib.contextmanager
def sampler(kube: Kube, period: float = 0.25) -> Iterator[list[str]]:
    """Collect the JSON of every OdooEnvironment (status, annotations including kopf's progress
    annotations ``operator.oec.sh/...``) every ``period`` s while the block runs."""
    samples: list[str] = []
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            with contextlib.suppress(Exception):
                samples.append(json.dumps(kube.items()))
            stop.wait(period)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join(5)


def scenario_secrets(lab: Lab) -> Result:
    """A chaos run with every error path, collecting everything the operator writes: its log at
    debug level (``--verbose``), Events, the objects (status, annotations, kopf progress
    annotations) sampled every 0.25 s, and its Prometheus page scraped throughout. Faults: a key
    revoked under a running resource (401), a key the API never knew (401), 5xx, timeouts
    (latency above ``OEC_REQUEST_TIMEOUT``), a SIGKILL mid-create. Checked: no form of either key
    (:func:`leak_needles`) appears anywhere, and the collection did see the errors (so the check
    is not vacuous)."""
    default_key, team_key, unknown_key = new_key("default"), new_key("team"), new_key("unknown")
    kube = lab.namespace("secrets")
    sim = lab.simulator([default_key, team_key])
    project = sim.new_project("secrets")
    ledger = Ledger(kube, sim, project)
    port = free_port()
    op = lab.operator(kube, sim.api_url, default_key, args=["--verbose"],
                      env={"OEC_METRICS_PORT": str(port), "OEC_METRICS_ADDRESS": "127.0.0.1",
                           "OEC_REQUEST_TIMEOUT": "1"})
    bad: list[str] = []
    scrapes: list[str] = []

    def scrape() -> None:
        with contextlib.suppress(httpx.HTTPError):
            scrapes.append(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5, trust_env=False).text)

    for name, key in (("team", team_key), ("stranger", unknown_key)):
        kube.core.create_namespaced_secret(kube.namespace, kube._client.V1Secret(
            metadata=kube._client.V1ObjectMeta(name=name), string_data={"apiKey": key}), _request_timeout=10)
    with sampler(kube) as samples:
        ledger.create("plain")
        ledger.create("teamed", credentialsSecretRef={"name": "team"})
        ready_pool(ledger, ["plain", "teamed"], bad, "setup")
        scrape()
        sim.revoke_key(team_key)  # 401 key_revoked on the next poll of "teamed"
        ledger.kube.create(environment("stranger", project, credentialsSecretRef={"name": "stranger"}))
        with contextlib.suppress(WaitTimeout):
            wait_until(lambda: (c := condition(kube.get("teamed"), "Stalled")) and c["reason"] == "AuthFailed",
                       30, what="teamed AuthFailed", ignore=(Exception,))
        for status in (503, 500, 502, 504):  # four failures in a row: backoff 0.5+1+2+4 s
            sim.inject(status=status, count=1)
        ledger.set_branch("plain", "after-5xx")
        ready_pool(ledger, ["plain"], bad, "after 5xx")
        scrape()
        sim.configure(latency={"get_environment": 2.5, "environment_status": 2.5})
        ledger.set_branch("plain", "after-timeouts")
        time.sleep(5)
        sim.configure(latency={"create_environment": 1.5})
        ledger.create("crashed")
        time.sleep(0.8)
        op.kill()
        sim.configure(latency={})
        op.start()
        ready_pool(ledger, ["plain", "crashed"], bad, "after timeouts and a kill")
        time.sleep(2)
        scrape()
    corpus = {
        "operator log (--verbose)": op.output(),
        "events": json.dumps(kube.events()),
        "objects (status, annotations)": "\n".join(samples),
        "metrics": "\n".join(scrapes),
    }
    for where, text in corpus.items():
        for key, label in ((default_key, "default key"), (team_key, "revoked key"), (unknown_key, "unknown key")):
            for needle in leak_needles(key):
                if needle in text:
                    at = text.index(needle)
                    bad.append(f"{label} ({'full' if needle == key else 'part'}) in {where}: "
                               f"...{text[max(0, at - 80):at].replace(needle, '<KEY>')}<KEY>...")
    everything = "\n".join(corpus.values())
    for evidence, meaning in (("AuthFailed", "a 401 stall"), ("503", "a 5xx"), ("Timeout", "a timeout"),
                              ("operator.oec.sh/", "kopf's annotations"),
                              ("oec_operator_api_requests_total", "metrics"), ("DEBUG", "debug-level log lines")):
        if evidence not in everything:
            bad.append(f"the collection shows no {meaning} ({evidence!r} missing): the scan would be vacuous")
    sizes = {k: len(v) for k, v in corpus.items()}
    return Result("API key leak scan: 401 (revoked, unknown key), 5xx, timeouts, SIGKILL; --verbose log", 1,
                  "no key (full, secret part, base64) in log, Events, status, annotations, metrics", bad,
                  {"collected_chars": sizes})
