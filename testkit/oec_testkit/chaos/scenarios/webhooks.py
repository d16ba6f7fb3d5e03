"""OEC.sh webhooks under attack and failure (issue 14, ``docs/webhooks.md``): forged signatures,
replayed deliveries, a flood for unknown environments, the receiver down during a burst.

One operator with its receiver runs behind a recording :class:`~..relay.Relay` (the URL it
registers), so the simulator's real deliveries can be captured and re-sent. The promise checked:
a delivery is only a hint (``docs/webhooks.md`` §2): a forged or replayed one costs at most one
API read and never changes ``status``; a flood for environments nobody owns is answered without
API reads and with a bounded number of apiserver lists while real changes still show; changes
made while the receiver is down all show once it is back (polling covers what deliveries miss).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import math
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from oec_operator.settings import WEBHOOK_PATH

from ...waiting import WaitTimeout, wait_until
from ..kube import Kube
from ..lab import CONVERGE_TIMEOUT, POLL, Lab, Sim, free_port, new_key
from ..ledger import Ledger, ready_pool
from ..relay import Recorded, Relay
from ..results import Result

__all__ = ["PushLab", "push_lab", "scenario_webhooks"]

#: The operator's push stretch in these scenarios (``OEC_WEBHOOK_POLL_STRETCH``): its safety-net
#: poll runs every ``STRETCH * POLL`` s while push is healthy.
STRETCH = 6.0
#: How long a real change may take to show while push is healthy, at worst through the stretched
#: poll (seconds): one stretched interval, one normal one, and slack.
SAFETY_NET = (STRETCH + 2) * POLL
#: Seconds to wait after deliveries for anything they could cause (the debounce is 2 s).
SETTLE = 3.5


@dataclass
class PushLab:
    """An operator with its webhook receiver, its simulator, a project with ``names`` resources
    (all Ready), the relay in front of the receiver, and helpers to post and count."""

    kube: Kube
    sim: Sim
    ledger: Ledger
    op: Any  # OperatorProcess
    relay: Relay
    receiver: str  # the receiver's own URL (not through the relay)
    metrics: str  # the operator's metrics page
    key: str
    names: list[str]
    notes: dict[str, Any] = field(default_factory=dict)

    def webhook(self) -> dict[str, Any]:
        """The simulator's webhook of this operator (admin view, with its secret)."""
        hooks = [h for h in self.sim.webhooks()["webhooks"] if h.get("url") == self.relay.url]
        if not hooks:
            raise LookupError("no webhook registered for the relay's URL")
        return dict(hooks[0])

    def env_id(self, name: str) -> str:
        """The environment id in the resource's status."""
        return str(((self.kube.get(name) or {}).get("status") or {})["environmentId"])

    def phase(self, name: str) -> str | None:
        """The resource's ``status.phase``."""
        return ((self.kube.get(name) or {}).get("status") or {}).get("phase")

    def post(self, body: bytes, headers: dict[str, str]) -> int:
        """POST ``body`` straight to the receiver; its HTTP status (0: no answer)."""
        return self.answer(body, headers)[0]

    def answer(self, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        """POST ``body`` straight to the receiver; its HTTP status and the ``result`` of its JSON
        answer (``docs/webhooks.md`` §4; ``(0, "")``: no answer)."""
        try:
            response = httpx.post(self.receiver, content=body, headers={"Content-Type": "application/json", **headers},
                                  timeout=10, trust_env=False)
        except httpx.HTTPError:
            return 0, ""
        try:
            result = str(response.json().get("result", ""))
        except ValueError:
            result = ""
        return response.status_code, result

    def reads_of(self, ids: set[str], since: int) -> int:
        """API requests since log sequence ``since`` whose path names one of ``ids``."""
        return sum(1 for r in self.sim.requests(since) if any(i in r["path"] for i in ids))

    def quiesce(self, env_id: str, quiet: float = SETTLE, timeout: float = 60.0) -> bool:
        """Wait until no API request has named ``env_id`` for ``quiet`` s (the reads of an earlier
        change are done), so that later requests can only come from what follows; False after
        ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seq = self.sim.last_seq()
            time.sleep(quiet)
            if self.reads_of({env_id}, seq) == 0:
                return True
        return False

    def requests_of(self, env_id: str, since: int) -> list[str]:
        """``METHOD path status`` of the API requests naming ``env_id`` since ``since`` (for messages)."""
        return [f"{r['method']} {r['path']} {r['status']}" for r in self.sim.requests(since) if env_id in r["path"]]

    def events(self) -> Counter[str]:
        """``oec_operator_webhook_events_total`` by ``result`` (empty if the page does not answer)."""
        out: Counter[str] = Counter()
        with contextlib.suppress(httpx.HTTPError):
            text = httpx.get(self.metrics, timeout=5, trust_env=False).text
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name == "oec_operator_webhook_events_total":
                        out[sample.labels.get("result", "")] += int(sample.value)
        return out

    def wait_phase(self, name: str, phase: str, timeout: float) -> float | None:
        """Seconds until ``name``'s ``status.phase`` is ``phase`` (looked for every 0.1 s), None after ``timeout``."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            with contextlib.suppress(Exception):
                if self.phase(name) == phase:
                    return time.monotonic() - t0
            time.sleep(0.1)
        return None


def sign(secret: str, body: bytes) -> dict[str, str]:
    """The simulator's default signature headers for ``body`` (hex HMAC-SHA256 of the raw body in
    ``X-OEC-Signature``, ``docs/oec-api.md`` §11.6)."""
    return {"X-OEC-Signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


def event_body(env_id: str, project_id: str, status: str = "stopped", event_id: str | None = None) -> bytes:
    """A well-formed ``environment.status_changed`` delivery body naming ``env_id``."""
    return json.dumps({
        "id": event_id or str(uuid.uuid4()), "event": "environment.status_changed",
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "webhook_id": str(uuid.uuid4()),
        "attempt": 1, "data": {"environment_id": env_id, "project_id": project_id, "status": status,
                               "previous_status": "running"},
    }).encode()


def push_lab(lab: Lab, tag: str, resources: int = 3) -> PushLab:
    """Start a simulator (insecure webhook URLs allowed, retries after 1, 2, 4 s, deactivation only
    after 100 failed attempts: the receiver-down trials fail a dozen), a relay and an
    operator with its receiver (``OEC_WEBHOOK_URL`` = the relay), wait until it registered its
    webhook, create ``resources`` resources and wait until they are Ready."""
    key = new_key(tag)
    kube = lab.namespace(tag)
    sim = lab.simulator([key], variants=["webhook_allow_insecure_urls=true", "webhook_retry_delays=[1,2,4]",
                                         "webhook_deactivate_after=100"])
    project = sim.new_project(tag)
    ledger = Ledger(kube, sim, project)
    receiver, metrics = free_port(), free_port()
    relay = lab.relay(receiver)
    op = lab.operator(kube, sim.api_url, key, env={
        "OEC_WEBHOOK_URL": relay.url, "OEC_WEBHOOK_PORT": str(receiver), "OEC_WEBHOOK_ADDRESS": "127.0.0.1",
        "OEC_WEBHOOK_SECRET": f"{kube.namespace}/oec-webhooks", "OEC_WEBHOOK_POLL_STRETCH": str(STRETCH),
        "OEC_WEBHOOK_CHECK_INTERVAL": "10",
        "OEC_METRICS_PORT": str(metrics), "OEC_METRICS_ADDRESS": "127.0.0.1"})
    pl = PushLab(kube, sim, ledger, op, relay, f"http://127.0.0.1:{receiver}{WEBHOOK_PATH}",
                 f"http://127.0.0.1:{metrics}/metrics", key, [f"{tag}-{i}" for i in range(resources)])
    for name in pl.names:
        ledger.create(name)
    bad: list[str] = []
    ready_pool(ledger, pl.names, bad, "setup")
    if bad:
        raise RuntimeError("; ".join(bad))
    t0 = time.monotonic()
    wait_until(pl.webhook, 60, what="the operator's webhook registered", ignore=(LookupError, httpx.HTTPError))
    pl.notes["webhook_registered_after_ready_s"] = round(time.monotonic() - t0, 1)
    return pl


def forged(pl: PushLab, trials: int) -> Result:
    """Per trial, deliveries naming a real running environment as ``stopped``, each forged one way:
    no signature, a wrong secret, a tampered body under a real signature, a garbage signature.
    Checked (from a moment no request named that environment for :data:`SETTLE` s): each answered
    401, no API request names that environment afterwards, its phase stays ``running``, and the
    receiver counted them ``unverified``."""
    bad: list[str] = []
    answers: Counter[int] = Counter()
    secret = pl.webhook()["secret"]
    before = pl.events()
    sent = 0
    for t in range(trials):
        name = pl.names[t % len(pl.names)]
        env_id = pl.env_id(name)
        body = event_body(env_id, pl.ledger.project)
        honest = event_body(env_id, pl.ledger.project, status="running")
        if not pl.quiesce(env_id):
            bad.append(f"trial {t}: {env_id} never went 3.5 s without an API request before the trial")
        seq0 = pl.sim.last_seq()
        forms = {
            "no signature": {},
            "wrong secret": sign("whsec_" + "x" * 43, body),
            "tampered body": sign(secret, honest),
            "garbage signature": {"X-OEC-Signature": "sha256=" + "0" * 64},
        }
        for form, headers in forms.items():
            status = pl.post(body, headers)
            answers[status] += 1
            sent += 1
            if status != 401:
                bad.append(f"trial {t}: forged delivery ({form}) answered {status}, not 401")
        time.sleep(SETTLE)
        if (reads := pl.reads_of({env_id}, seq0)) != 0:
            bad.append(f"trial {t}: {reads} API request(s) for {env_id} after forged deliveries: "
                       f"{pl.requests_of(env_id, seq0)}")
        if (phase := pl.phase(name)) != "running":
            bad.append(f"trial {t}: {name} phase {phase!r} after forged deliveries (environment running)")
    counted = pl.events()["unverified"] - before["unverified"]
    if counted < sent:
        bad.append(f"receiver counted {counted} unverified deliveries of {sent} forged")
    return Result("webhook deliveries with forged signatures (none, wrong secret, tampered body, garbage)",
                  trials, "each answered 401 and counted; no API read of the named environment; phase unchanged",
                  bad, {"answers": dict(answers), "unverified_counted": counted})


def replayed(pl: PushLab, trials: int, copies: int = 5) -> Result:
    """Per trial: an environment stopped in the simulator (a real, signed delivery captured by the
    relay), then started again (shown ``running``); the captured ``stopped`` delivery is re-sent
    byte for byte ``copies`` times once no request named that environment for :data:`SETTLE` s.
    Checked: at most one API request for that environment after the replays began, and its phase
    stays ``running`` throughout (sampled) and after."""
    bad: list[str] = []
    answers: Counter[int] = Counter()
    reads: list[int] = []
    for t in range(trials):
        name = pl.names[t % len(pl.names)]
        env_id = pl.env_id(name)
        mark = len(pl.relay.records)
        pl.sim.patch_environment(env_id, status="stopped")

        def delivered(env_id: str = env_id, mark: int = mark) -> Recorded | None:
            return next((r for r in pl.relay.since(mark) if env_id.encode() in r.body and b'"stopped"' in r.body
                         and 200 <= r.status < 300), None)

        try:
            captured = wait_until(delivered, 30, what="the stop's delivery", ignore=(Exception,))
        except WaitTimeout:
            bad.append(f"trial {t}: no delivery of the stop of {env_id} reached the receiver within 30 s")
            continue
        if pl.wait_phase(name, "stopped", SAFETY_NET) is None:
            bad.append(f"trial {t}: {name} never showed stopped")
        pl.sim.patch_environment(env_id, status="running")
        if pl.wait_phase(name, "running", SAFETY_NET) is None:
            bad.append(f"trial {t}: {name} never showed running again")
            continue
        if not pl.quiesce(env_id):
            bad.append(f"trial {t}: {env_id} never went 3.5 s without an API request before the replays")
        seq0 = pl.sim.last_seq()
        phases: list[str | None] = []
        for _ in range(copies):
            answers[pl.post(captured.body, captured.headers)] += 1
            phases.append(pl.phase(name))
        deadline = time.monotonic() + SETTLE
        while time.monotonic() < deadline:
            phases.append(pl.phase(name))
            time.sleep(0.2)
        reads.append(pl.reads_of({env_id}, seq0))
        if reads[-1] > 1:
            bad.append(f"trial {t}: {reads[-1]} API requests for {env_id} after {copies} replays (at most 1): "
                       f"{pl.requests_of(env_id, seq0)}")
        if any(p != "running" for p in phases):
            bad.append(f"trial {t}: {name} showed {sorted({str(p) for p in phases})} during the replays "
                       "(the environment was running)")
    return Result(f"a captured real delivery (a stop, since undone) replayed {copies} times", trials,
                  "at most one API read for the environment; phase stays running", bad,
                  {"answers": dict(answers), "reads_after_replays": reads})


def apiserver_lists(kube: Kube) -> float:
    """The apiserver's count of LIST requests of OdooEnvironments so far (its ``/metrics``)."""
    text = kube.kubectl("get", "--raw", "/metrics", timeout=30).stdout
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (sample.name == "apiserver_request_total" and sample.labels.get("verb") == "LIST"
                    and sample.labels.get("resource") == "odooenvironments"):
                total += sample.value
    return total


def unknown_flood(pl: PushLab, seconds: float = 8.0, senders: int = 4) -> Result:
    """Correctly signed deliveries for random environment ids nobody owns, from ``senders``
    threads for ``seconds``; meanwhile a real environment is stopped in the simulator and a
    resource's branch is changed. Checked: every flood delivery answered ``unknown_environment``
    (202 by default, 404 with ``OEC_WEBHOOK_UNKNOWN_ENVIRONMENT_STATUS``) or 429 ``flooded``,
    no API request names a flooded id, the operator's LISTs of OdooEnvironments
    stay within one per 10 s (+2), the real stop shows within the stretched poll, the branch
    change converges."""
    bad: list[str] = []
    secret = pl.webhook()["secret"]
    sent_ids: set[str] = set()
    answers: Counter[str] = Counter()  # "status result"
    lock = threading.Lock()
    stop = threading.Event()
    seq0 = pl.sim.last_seq()
    lists0 = apiserver_lists(pl.kube)

    def flood() -> None:
        while not stop.is_set():
            env_id = str(uuid.uuid4())
            body = event_body(env_id, pl.ledger.project)
            status, result = pl.answer(body, sign(secret, body))
            with lock:
                sent_ids.add(env_id)
                answers[f"{status} {result}"] += 1

    threads = [threading.Thread(target=flood, daemon=True) for _ in range(senders)]
    t0 = time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(seconds / 4)
    real, branched = pl.names[0], pl.names[-1]
    env_id = pl.env_id(real)
    pl.sim.patch_environment(env_id, status="stopped")
    pl.ledger.set_branch(branched, "during-flood")
    shown = pl.wait_phase(real, "stopped", SAFETY_NET)
    time.sleep(max(0.0, t0 + seconds - time.monotonic()))
    stop.set()
    for thread in threads:
        thread.join()
    flood_seconds = time.monotonic() - t0
    lists = apiserver_lists(pl.kube) - lists0
    bound = math.ceil(flood_seconds / 10) + 2
    if lists > bound:
        bad.append(f"{lists:.0f} LISTs of OdooEnvironments during a {flood_seconds:.0f} s flood (bound {bound})")
    wrong = {a: n for a, n in answers.items() if a.split(" ", 1)[1:] not in (["unknown_environment"], ["flooded"])}
    if wrong:
        bad.append(f"flood deliveries answered {wrong} (expected unknown_environment, or flooded)")
    if (reads := pl.reads_of(sent_ids, seq0)) != 0:
        bad.append(f"{reads} API requests named a flooded (unknown) environment id")
    if shown is None:
        bad.append(f"a real stop during the flood did not show within {SAFETY_NET:.0f} s")
    for name in pl.ledger.wait_converged([branched]):
        bad.append(f"{name}: a branch change during the flood did not converge")
    pl.sim.patch_environment(env_id, status="running")
    if pl.wait_phase(real, "running", SAFETY_NET) is None:
        bad.append(f"{real} never showed running again after the flood")
    return Result(f"flood of signed deliveries for unknown environments ({senders} senders, {seconds:.0f} s)", 1,
                  "unknown_environment (or flooded), no API read for them, bounded apiserver lists; a real change "
                  "still shows, a spec change converges", bad,
                  {"deliveries": sum(answers.values()), "answers": dict(answers), "apiserver_lists": lists,
                   "real_change_shown_s": None if shown is None else round(shown, 1)})


def receiver_down(pl: PushLab, trials: int, down: float = 5.0) -> Result:
    """Per trial: the operator (and with it the receiver) stopped; meanwhile environments change
    in the simulator (one stopped, one stopped and started again, one started if stopped), their
    deliveries fail and are retried; the operator started again after ``down`` s. Checked: every
    resource's phase then matches the API's status (nothing lost, nothing stale from a late
    retry), and delivery attempts did fail meanwhile (the fault was real)."""
    bad: list[str] = []
    failed: list[int] = []
    caught_up: list[float] = []
    for t in range(trials):
        mark = len(pl.relay.records)
        pl.op.stop()
        first, second, third = (pl.names[(t + i) % len(pl.names)] for i in range(3))
        ids = {name: pl.env_id(name) for name in (first, second, third)}
        pl.sim.patch_environment(ids[first], status="stopped")
        pl.sim.patch_environment(ids[second], status="stopped")
        time.sleep(1.0)
        pl.sim.patch_environment(ids[second], status="running")
        now = pl.sim.environment(ids[third])["status"]
        pl.sim.patch_environment(ids[third], status="running" if now == "stopped" else "stopped")
        time.sleep(down)
        failed.append(sum(1 for r in pl.relay.since(mark) if r.status >= 500))
        pl.op.start()
        t0 = time.monotonic()

        def mismatched(ids: dict[str, str] = ids) -> list[str]:
            return [name for name, env_id in ids.items()
                    if pl.phase(name) != pl.sim.environment(env_id)["status"]]

        try:
            wait_until(lambda: not mismatched(), CONVERGE_TIMEOUT, what="every phase as in the API",
                       ignore=(Exception,))
            caught_up.append(round(time.monotonic() - t0, 1))
        except WaitTimeout:
            bad.append(f"trial {t}: after the restart {mismatched()} still differ from the API "
                       f"{CONVERGE_TIMEOUT:.0f} s later")
        if not failed[-1]:
            bad.append(f"trial {t}: no delivery attempt failed while the receiver was down (the fault was not real)")
        time.sleep(SETTLE)  # late retries land now: they must not turn a phase stale
        if late := mismatched():
            bad.append(f"trial {t}: {late} differ from the API after late deliveries")
    return Result(f"receiver down {down:.0f} s (operator stopped) while environments change", trials,
                  "every phase matches the API after the restart (nothing lost); deliveries did fail meanwhile",
                  bad, {"failed_attempts_while_down": failed, "caught_up_after_restart_s": caught_up})


def scenario_webhooks(lab: Lab, trials: int = 1) -> list[Result]:
    """The four webhook rows on one :func:`push_lab` (3 resources), ``trials`` each (the flood once)."""
    pl = push_lab(lab, "hooks")
    steps: list[tuple[str, Callable[[], Result]]] = [
        ("forged", lambda: forged(pl, trials)),
        ("replayed", lambda: replayed(pl, trials)),
        ("flood", lambda: unknown_flood(pl)),
        ("down", lambda: receiver_down(pl, trials)),
    ]
    rows = []
    for label, step in steps:
        try:
            rows.append(step())
        except Exception as exc:  # one crashed row does not hide the others
            rows.append(Result(f"webhooks: {label}", 0, "scenario ran to completion", [f"crashed: {exc!r}"]))
    rows[0].notes.update(pl.notes)
    return rows
