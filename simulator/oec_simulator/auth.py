"""API-key authentication, key scopes and the brute-force IP block (docs/oec-api.md §4, §1 rows 9, 26, 29).

Keys are kept only as SHA-256 digests; the plain value is never stored, returned or logged. A
:class:`Principal` identifies a key by ``key_id`` (a digest prefix), which is what the rate limiter
and the request log may use.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from .clock import Clock
from .config import KEY_PATTERN, KeyConfig
from .errors import ApiError

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """An authenticated key: ``key_id`` (digest prefix), ``tier`` ro|rw, ``scope`` org|project."""

    key_id: str
    tier: Literal["ro", "rw"]
    scope: Literal["org", "project"]
    project_id: str | None

    def sees_project(self, project_id: str) -> bool:
        """Whether resources of ``project_id`` are visible to this key."""
        return self.scope == "org" or self.project_id == project_id


@dataclass
class _KeyRecord:
    principal: Principal
    expires_at: float | None
    revoked: bool = False


def extract_key(headers: Mapping[str, str]) -> str | None:
    """The presented key: ``Authorization: Bearer <key>`` wins over ``X-API-Key`` (§4).

    Returns ``None`` when neither header carries a value; a non-Bearer ``Authorization`` value is
    returned as is (it then fails the format check).
    """
    authorization = headers.get("Authorization", "").strip()
    if authorization:
        scheme, _, rest = authorization.partition(" ")
        if scheme.lower() == "bearer":
            return rest.strip()
        return authorization
    api_key = headers.get("X-API-Key", "").strip()
    return api_key or None


class KeyRing:
    """Accepted keys (by digest) with tier, scope and expiry."""

    def __init__(self, clock: Clock, keys: list[KeyConfig] | None = None) -> None:
        self._clock = clock
        self._keys: dict[str, _KeyRecord] = {}
        for key in keys or []:
            self.add(key)

    def add(self, key: KeyConfig) -> Principal:
        """Accept a key (replaces an earlier entry for the same value, un-revoking it)."""
        value = key.key.get_secret_value()
        digest = _digest(value)
        tier: Literal["ro", "rw"] = "ro" if value.startswith("oec_live_ro_") else "rw"
        principal = Principal(
            key_id=digest[:16],
            tier=tier,
            scope=key.scope,
            project_id=str(key.project_id) if key.project_id else None,
        )
        expires = key.expires_at.timestamp() if key.expires_at else None
        self._keys[digest] = _KeyRecord(principal, expires)
        return principal

    def revoke(self, value: str) -> bool:
        """Revoke a key (it then answers 401 ``invalid_key``); False if it was unknown."""
        record = self._keys.get(_digest(value))
        if record is None:
            return False
        record.revoked = True
        return True

    def summary(self) -> list[dict[str, object]]:
        """Key metadata without key values: ``[{key_id, tier, scope, project_id, revoked, expires_at}]``."""
        return [
            {
                "key_id": r.principal.key_id,
                "tier": r.principal.tier,
                "scope": r.principal.scope,
                "project_id": r.principal.project_id,
                "revoked": r.revoked,
                "expires_at": r.expires_at,
            }
            for r in self._keys.values()
        ]

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        """Principal for the request headers, or 401 ``missing_auth`` / ``invalid_key_format`` /
        ``invalid_key`` / ``key_expired`` (§4)."""
        value = extract_key(headers)
        if value is None:
            raise ApiError(
                401, "missing_auth", "Authentication required: send Authorization: Bearer <key> or X-API-Key."
            )
        if not KEY_PATTERN.match(value):
            raise ApiError(401, "invalid_key_format", "The API key is malformed.")
        record = self._keys.get(_digest(value))
        if record is None or record.revoked:
            raise ApiError(401, "invalid_key", "The API key is invalid or has been revoked.")
        if record.expires_at is not None and self._clock.now() >= record.expires_at:
            raise ApiError(401, "key_expired", "The API key has expired.")
        return record.principal


class BruteForceGuard:
    """Per client IP: ``threshold`` refused keys with < ``window`` s between refusals → blocked for
    ``block`` s; blocked IPs get 429 ``ip_blocked`` with ``Retry-After`` (§4). The parameters are
    passed per call so runtime config changes apply."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._refusals: dict[str, tuple[int, float]] = {}
        self._blocked_until: dict[str, float] = {}

    def reset(self) -> None:
        """Forget every refusal and block."""
        self._refusals.clear()
        self._blocked_until.clear()

    def check(self, ip: str) -> None:
        """Raise 429 ``ip_blocked`` (``Retry-After`` + body ``retry_after``, seconds) if ``ip`` is blocked."""
        until = self._blocked_until.get(ip)
        if until is None:
            return
        now = self._clock.now()
        if now >= until:
            del self._blocked_until[ip]
            return
        wait = max(1, math.ceil(until - now))
        raise ApiError(
            429,
            "ip_blocked",
            "Too many invalid API keys from this address; try again later.",
            extras={"retry_after": wait},
            headers={"Retry-After": str(wait)},
        )

    def record_refusal(self, ip: str, *, threshold: int, window: float, block: float) -> None:
        """Count a refused key from ``ip``; block it when ``threshold`` refusals came < ``window`` s apart."""
        now = self._clock.now()
        count, last = self._refusals.get(ip, (0, -math.inf))
        count = count + 1 if now - last < window else 1
        self._refusals[ip] = (count, now)
        if count >= threshold:
            self._blocked_until[ip] = now + block
            self._refusals.pop(ip, None)
