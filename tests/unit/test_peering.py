"""kopf peering settings for several operator processes (``docs/kopf.md`` §6): distinct
priorities, the oldest process first, and the command line's choices kept."""

from __future__ import annotations

import datetime

import kopf

from oec_operator.__main__ import kopf_args
from oec_operator.kube.peering import configure, outranking, start_priority
from oec_operator.settings import OperatorConfig


def configured(**config: object) -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    configure(settings, OperatorConfig(**config))  # type: ignore[arg-type]
    return settings


def test_peering_is_on_mandatory_cluster_wide_with_a_short_lifetime() -> None:
    peering = configured().peering
    assert (peering.standalone, peering.mandatory, peering.clusterwide) == (False, True, True)
    assert peering.name == "oec-operator" and peering.lifetime == 15 and peering.stealth
    assert "--standalone" not in kopf_args([])


def test_an_older_process_outranks_a_newer_one_and_two_never_tie() -> None:
    older, newer = configured().peering.priority, configured().peering.priority
    assert older > newer  # the active replica stays active when another one starts
    assert start_priority(1_000_000_000_000) > start_priority(1_000_000_001_000)


def test_explicit_choices_are_kept() -> None:
    assert configured(peering_priority=7, peering_name="other", peering_lifetime=30).peering.priority == 7
    settings = kopf.OperatorSettings()
    settings.peering.priority, settings.peering.name = 666, "laptop"  # kopf run --dev -P laptop
    configure(settings, OperatorConfig())
    assert (settings.peering.priority, settings.peering.name) == (666, "laptop")
    settings = kopf.OperatorSettings()
    settings.peering.standalone = True  # kopf run --standalone: no peering at all
    configure(settings, OperatorConfig())
    assert settings.peering.standalone and not settings.peering.mandatory


def test_a_standby_names_the_live_process_that_outranks_it() -> None:
    now = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)
    entries = {
        "old-pod": {"priority": 10, "lifetime": 15, "lastseen": (now - datetime.timedelta(seconds=5)).isoformat()},
        "dead-pod": {"priority": 20, "lifetime": 15, "lastseen": (now - datetime.timedelta(seconds=20)).isoformat()},
        "new-pod": {"priority": 1, "lifetime": 15, "lastseen": now.isoformat()},
        "me": {"priority": 5, "lifetime": 15, "lastseen": now.isoformat()},
    }
    assert outranking(entries, "me", 5, now) == ["old-pod"]
