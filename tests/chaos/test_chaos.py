"""The chaos suite, short form (``make chaos``; also part of ``make test``).

The scenarios live in ``oec_testkit.chaos`` and run here with a few trials each against the real
kube-apiserver of the session (plus a dedicated one for the apiserver restarts), a simulator
process per scenario and the operator as a real process. Every test asserts zero violations of
the promise: no duplicate environment, none destroyed that should be kept, none left behind,
no lost update, no leaked API key, recovery by itself once the fault clears. The long form
(``make chaos-long``) runs the same functions with many trials and prints the table.
"""

from __future__ import annotations

import httpx
import pytest

from oec_testkit import chaos

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def assert_clean(rows: list[chaos.Result]) -> None:
    """Every row ran at least one trial and broke no promise."""
    failed = [r for r in rows if not r.passed]
    assert not failed, "\n".join(
        f"{r.fault} ({r.trials} trials): " + "; ".join(r.violations[:10] or ["no trial ran"]) for r in failed
    )


def test_operator_sigkilled_mid_create_update_delete_keeps_every_promise(lab: chaos.Lab) -> None:
    rows = chaos.scenario_operator_kill(lab, rounds=4, seed=61)
    assert_clean(rows)
    assert all(r.trials == 4 for r in rows)


@pytest.mark.parametrize("form", ["503", "drop"])
def test_api_outage_converges_after_with_bounded_calls_and_held_finalizers(lab: chaos.Lab, form: str) -> None:
    rows = chaos.scenario_api_outage(lab, trials=1, form=form)
    assert_clean(rows)
    # The outage was real: the operator did try (and fail) during it (within the bound: above).
    notes = rows[0].notes
    assert all(c > 0 for c in notes["calls_during_outage"]), notes
    assert max(notes["most_calls_for_one_environment"]) <= notes["bound_per_resource"], notes


def test_each_429_form_is_waited_out_and_the_budget_kept(lab: chaos.Lab) -> None:
    rows = chaos.rate_limits_in_parallel(lab, windows=1)
    assert_clean(rows)
    assert [r.fault.rsplit(" ", 1)[1] for r in rows] == ["full", "body_only", "none"]


def test_watch_cut_and_apiserver_restart_are_caught_up(lab: chaos.Lab) -> None:
    rows = chaos.scenario_apiserver(lab, trials=2)
    assert_clean(rows)


def test_api_key_appears_nowhere_the_operator_writes_during_a_chaos_run(lab: chaos.Lab) -> None:
    row = chaos.scenario_secrets(lab)
    assert_clean([row])


def test_the_checks_catch_broken_promises(lab: chaos.Lab) -> None:
    """The harness is not vacuous: a duplicate, a wrongful destroy and a lost update made by hand
    (behind the operator's back) are each reported."""
    key = chaos.new_key("selftest")
    kube = lab.namespace("selftest")
    sim = lab.simulator([key])
    project = sim.new_project("selftest")
    ledger = chaos.Ledger(kube, sim, project)
    op = lab.operator(kube, sim.api_url, key)
    for name in ("dup", "victim", "stale"):
        ledger.create(name)
    assert ledger.wait_converged() == []
    assert ledger.safety_violations() == []
    op.stop()  # nobody repairs what follows
    with httpx.Client(base_url=sim.api_url, headers={"Authorization": f"Bearer {key}"}, trust_env=False) as api:
        api.post(f"/projects/{project}/environments", json={"name": "dup"}).raise_for_status()
    victim = (kube.get("victim") or {})["status"]["environmentId"]
    sim.admin.delete(f"/_sim/environments/{victim}").raise_for_status()
    kube.patch("stale", {"spec": {"branch": "never-applied"}})
    ledger.items["stale"].branch = "never-applied"

    found = ledger.safety_violations()
    assert any(v.startswith("dup: 2 environments") for v in found), found
    assert any(v.startswith("victim:") and "destroyed although its resource still exists" in v for v in found), found
    assert set(ledger.wait_converged(timeout=3)) == {"dup", "victim", "stale"}


def test_forged_replayed_and_unknown_webhooks_change_nothing_and_a_downed_receiver_loses_nothing(
        lab: chaos.Lab) -> None:
    rows = chaos.scenario_webhooks(lab, trials=1)
    assert_clean(rows)
    forged, replayed, flood, down = (r.notes for r in rows)
    assert forged["answers"] == {401: 4}, forged
    assert set(replayed["answers"]) == {202}, replayed  # duplicates are answered 202, not read again
    # The flood was one, and reached the routing (verified): answered unknown_environment.
    assert flood["deliveries"] > 50 and any(a.endswith(" unknown_environment") for a in flood["answers"]), flood
    assert all(n > 0 for n in down["failed_attempts_while_down"]), down
