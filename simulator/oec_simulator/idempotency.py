"""Idempotency keys (docs/oec-api.md §7, §1 rows 4-5).

Scope = (organization, method, path, key). The first request with a scope is processed; a 2xx answer
is cached for ``ttl`` seconds and replayed (same status, same body, no marker header) to any later
request with that scope, whatever its body. Non-2xx answers are not cached. A duplicate arriving
while the first is still being processed waits for it and then replays (or, in the older-API variant,
gets 409 ``concurrent_action``). In ``strict`` mode a replay candidate whose body differs from the
original gets 422 ``idempotency_key_mismatch`` *(sim)*.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .clock import Clock
from .errors import ApiError, field_error

MAX_KEY_LENGTH = 255
Scope = tuple[str, str, str, str]


@dataclass(frozen=True)
class StoredResponse:
    """A response as cached and replayed: HTTP ``status``, raw ``body`` bytes, ``content_type``, and the
    handler's ``Retry-After`` header if it set one (e.g. a webhook-mutation 429)."""

    status: int
    body: bytes
    content_type: str | None
    retry_after: str | None = None


@dataclass
class _Entry:
    response: StoredResponse
    fingerprint: str
    expires_at: float


def check_key(value: str, header: str) -> None:
    """422 (pydantic shape, loc ``["header", header]``) unless 1 ≤ len(value) ≤ 255."""
    if len(value) < 1:
        raise field_error("header", header, "String should have at least 1 character", "string_too_short")
    if len(value) > MAX_KEY_LENGTH:
        raise field_error(
            "header", header, f"String should have at most {MAX_KEY_LENGTH} characters", "string_too_long"
        )


def fingerprint(body: bytes) -> str:
    """Digest of a request body; JSON bodies are canonicalised (key order and spacing ignored)."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, UnicodeDecodeError):
        canonical = body
    return hashlib.sha256(canonical).hexdigest()


class IdempotencyCache:
    """Cache of 2xx answers per scope plus one lock per scope for in-flight requests."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._entries: dict[Scope, _Entry] = {}
        self._locks: dict[Scope, tuple[asyncio.Lock, int]] = {}

    def reset(self) -> None:
        """Forget every cached answer (in-flight requests finish normally)."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def _lookup(self, scope: Scope) -> _Entry | None:
        entry = self._entries.get(scope)
        if entry is not None and self._clock.now() >= entry.expires_at:
            del self._entries[scope]
            return None
        return entry

    async def run(
        self,
        scope: Scope,
        body_fingerprint: str,
        compute: Callable[[], Awaitable[StoredResponse]],
        *,
        ttl: float,
        strict: bool,
        wait_inflight: bool,
    ) -> StoredResponse:
        """Replay the cached answer for ``scope`` or run ``compute`` (serialised per scope).

        ``ttl`` seconds; ``strict`` → 422 ``idempotency_key_mismatch`` on a different body;
        ``wait_inflight`` False → 409 ``concurrent_action`` while another request holds the scope.
        """
        lock, users = self._locks.get(scope, (asyncio.Lock(), 0))
        if lock.locked() and not wait_inflight:
            raise ApiError(
                409,
                "concurrent_action",
                "Another request with this idempotency key is being processed; retry in about 5 seconds.",
            )
        self._locks[scope] = (lock, users + 1)
        try:
            async with lock:
                entry = self._lookup(scope)
                if entry is not None:
                    if strict and entry.fingerprint != body_fingerprint:
                        raise ApiError(
                            422,
                            "idempotency_key_mismatch",
                            "This idempotency key was already used with a different request body.",
                        )
                    return entry.response
                response = await compute()
                if 200 <= response.status < 300:
                    self._entries[scope] = _Entry(response, body_fingerprint, self._clock.now() + ttl)
                return response
        finally:
            lock_now, count = self._locks[scope]
            if count <= 1:
                del self._locks[scope]
            else:
                self._locks[scope] = (lock_now, count - 1)
