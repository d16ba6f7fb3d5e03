"""Which ``OdooEnvironment`` owns an OEC.sh environment when several point at it.

The handlers keep a kopf index of claims (environment id -> claims); :func:`claimed_by` decides
for one resource. A resource that already manages the environment (``status.environmentId``)
owns it; when none does yet, or when two do (two adoptions raced before either saw the other),
the oldest (creation time, then UID) wins. ``Observe``
resources only watch and never claim.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from oec_operator.models.status import Status


class Claim(NamedTuple):
    """One resource's claim on an environment id."""

    name: str  # namespace/name
    uid: str
    owns: bool  # True: the id is in the resource's status
    created: str  # metadata.creationTimestamp (RFC 3339, sorts in time order)


#: Index keys of domain claims start with this (environment ids are UUIDs, never with it).
DOMAIN_PREFIX = "domain:"


def domain_key(domain: str) -> str:
    """The index key of a custom domain (DNS names are case-insensitive)."""
    return DOMAIN_PREFIX + domain.lower().rstrip(".")


def claims_of(body: Mapping[str, Any]) -> dict[str, Claim]:
    """The index entry of one ``OdooEnvironment`` body: ``{environment_id: Claim}`` and, when
    ``spec.domain`` names a custom domain, ``{domain_key(domain): Claim}`` (owned once the
    environment has the domain, ``status.customDomain``); ``{}`` for none."""
    spec, meta = body.get("spec") or {}, body.get("metadata") or {}
    if spec.get("managementPolicy") == "Observe":
        return {}
    status = Status.from_body(body.get("status"))
    owned, wanted = status.environment_id, spec.get("environmentId")
    target = owned or wanted
    name, uid, created = f"{meta.get('namespace')}/{meta.get('name')}", str(meta.get("uid")), str(
        meta.get("creationTimestamp", ""))
    entries: dict[str, Claim] = {}
    if target:
        entries[str(target)] = Claim(name, uid, bool(owned), created)
    domain = spec.get("domain")
    if domain:
        has_it = bool(status.custom_domain) and domain_key(status.custom_domain or "") == domain_key(domain)
        entries[domain_key(domain)] = Claim(name, uid, has_it, created)
    return entries


def claimed_by(claims: Iterable[Claim], mine: Claim) -> str | None:
    """The ``namespace/name`` of another resource that owns (or has precedence on) the environment
    ``mine`` points at, or ``None`` when ``mine`` may manage it."""
    others = [c for c in claims if c.uid != mine.uid]
    owners = sorted((c for c in [*others, mine] if c.owns), key=lambda c: (c.created, c.uid))
    if owners:  # two owners only after a race of two adoptions: the older one keeps it
        return None if owners[0].uid == mine.uid else owners[0].name
    older = sorted((c for c in others if (c.created, c.uid) < (mine.created, mine.uid)), key=lambda c: c.created)
    return older[0].name if older else None
