"""A cache of the Secrets that hold API keys, so that thousands of resources sharing one Secret
do not read it on every reconcile.

Each Secret is read at most once per ``ttl`` seconds (``OEC_SECRET_CACHE_TTL``, 10 by default)
whatever the number of resources using it, and concurrent misses share one read; a failed read
(e.g. 404) is kept for the same time, so misconfigured resources cannot hammer the apiserver
either. A rotated key is therefore picked up within ``ttl`` seconds, and at once after the API
refused the old one (:meth:`SecretCache.invalidate`). Needs only ``get`` on Secrets (no list or
watch of every Secret in the cluster).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from oec_operator.kube.client import KubeError
from oec_operator.kube.credentials import SecretReader


@dataclass
class _Entry:
    read_at: float
    data: Mapping[str, str] | None = None
    error: KubeError | None = None


class SecretCache:
    """A :data:`~oec_operator.kube.credentials.SecretReader` in front of another one.

    Args:
        read: the uncached reader (the apiserver).
        ttl: seconds an answer is served from memory (0: no caching).
        clock: monotonic clock in seconds.
    """

    def __init__(self, read: SecretReader, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._read = read
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._inflight: dict[tuple[str, str], asyncio.Future[_Entry]] = {}

    async def __call__(self, namespace: str, name: str) -> Mapping[str, str]:
        """The Secret's ``data``, from memory when read less than ``ttl`` seconds ago.

        Raises:
            KubeError: the (possibly cached) read failed.
        """
        key = (namespace, name)
        entry = self._entries.get(key)
        if entry is None or self._clock() - entry.read_at >= self._ttl:
            entry = await self._refresh(key)
        if entry.error is not None:
            raise KubeError(str(entry.error), entry.error.status)
        return entry.data or {}

    async def _refresh(self, key: tuple[str, str]) -> _Entry:
        inflight = self._inflight.get(key)
        if inflight is not None:
            return await asyncio.shield(inflight)
        future: asyncio.Future[_Entry] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        started = self._clock()
        try:
            try:
                entry = _Entry(started, data=await self._read(*key))
            except KubeError as exc:
                entry = _Entry(started, error=exc)
        except BaseException:  # cancelled: the waiters see a failed read, nothing is kept
            future.set_result(_Entry(started, error=KubeError(f"read of Secret {key[0]}/{key[1]} interrupted")))
            raise
        finally:
            del self._inflight[key]
        self._entries[key] = entry
        future.set_result(entry)
        return entry

    def invalidate(self, namespace: str, name: str) -> None:
        """Forget one Secret (its key was refused: read it again on next use)."""
        self._entries.pop((namespace, name), None)
