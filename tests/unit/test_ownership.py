"""Who owns an environment that several OdooEnvironments point at (``oec_operator.ownership``)."""

from __future__ import annotations

from oec_operator.domain.ownership import Claim, claimed_by

OLD = Claim("ns/old", "uid-1", owns=False, created="2026-12-01T10:00:00Z")
NEW = Claim("ns/new", "uid-2", owns=False, created="2026-12-01T10:00:05Z")


def test_the_manager_keeps_it_whatever_the_age_of_a_newcomer() -> None:
    manager = NEW._replace(owns=True)
    assert claimed_by([OLD, manager], manager) is None
    assert claimed_by([OLD, manager], OLD) == "ns/new"


def test_without_a_manager_the_oldest_claimant_wins() -> None:
    assert claimed_by([OLD, NEW], OLD) is None
    assert claimed_by([OLD, NEW], NEW) == "ns/old"


def test_two_adoptions_that_raced_leave_one_owner_the_older() -> None:
    old, new = OLD._replace(owns=True), NEW._replace(owns=True)
    assert claimed_by([old, new], old) is None
    assert claimed_by([old, new], new) == "ns/old", "the newer must stall and never delete it"


def test_a_tie_in_creation_time_is_broken_by_uid() -> None:
    a = Claim("ns/a", "uid-a", owns=True, created="2026-12-01T10:00:00Z")
    b = Claim("ns/b", "uid-b", owns=True, created="2026-12-01T10:00:00Z")
    assert claimed_by([a, b], a) is None
    assert claimed_by([a, b], b) == "ns/a"
