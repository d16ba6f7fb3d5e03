"""Where a webhook's hint goes (``docs/webhooks.md`` §2): to exactly the one ``OdooEnvironment``
that owns the environment it names, never to anyone else.

- The owner's poll loop runs here (it subscribed to its project's watch): one targeted read of
  the environment after ``OEC_WEBHOOK_DEBOUNCE`` seconds (every hint for it meanwhile joins that
  read), through the key's client and read budget; its loop wakes when the environment changed
  (:meth:`oec_operator.domain.polling.ProjectWatch.refresh_environment`).
- Otherwise (a standby replica, or a loop not started yet): the owner is found in a cached
  cluster-wide list of ``OdooEnvironment`` objects (by ``status.environmentId``) and gets the
  annotation ``oec.sh/refresh-requested-at``; in the replica that runs it, kopf's update handler
  sees the annotation change and reconciles it with a fresh read.

The payload is a hint only: nothing of it is ever written to a status (``docs/webhooks.md`` §1).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Callable

from pydantic import ValidationError

from oec_operator.domain.polling import ProjectWatch
from oec_operator.kube.client import KubeError
from oec_operator.kube.credentials import CredentialsError
from oec_operator.models.requests import REFRESH_REQUESTED_AT, Requests
from oec_operator.models.spec import SecretKeyRef
from oec_operator.oec.client import OecBudgetDeferred, key_id_of
from oec_operator.oec.errors import OecError
from oec_operator.runtime import Runtime

#: Seconds the cluster-wide list of owners is trusted, and the shortest time between two lists
#: (a flood of unknown environment ids costs at most one list per this many seconds).
OWNERS_TTL = 10.0

logger = logging.getLogger(__name__)


class PushHub:
    """Routes webhook hints (the receiver's ``Sink``, ``docs/webhooks.md`` §2).

    Args:
        runtime: the process's runtime (its fleet of project watches, the Kubernetes client, the
            push health of each key).
        clock: monotonic clock, seconds.
    """

    def __init__(self, runtime: Runtime, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.runtime = runtime
        self._clock = clock
        self._debounce = runtime.config.webhook_debounce
        self._owed: dict[str, asyncio.Task[None]] = {}  # environment id -> its refresh, not started yet
        self._read_at: dict[str, float] = {}  # environment id -> start of its last refresh
        self._running: set[asyncio.Task[None]] = set()
        self._owners: dict[str, tuple[str, str]] = {}  # environment id -> (namespace, name)
        self._paused: set[tuple[str, str]] = set()  # owners with oec.sh/paused: no refresh asked of them
        self._refs: dict[tuple[str, str], SecretKeyRef | None] = {}  # owner -> its spec.credentialsSecretRef
        self._listed_at: float | None = None
        self._listing = asyncio.Lock()
        self._forwarded: dict[tuple[str, str], float] = {}  # (namespace, name) -> last forward

    async def hint(self, key_id: str, env_id: str, event: str) -> bool:
        """A verified delivery of key ``key_id``'s webhook named ``env_id`` (``event`` is for the log).

        Returns:
            True when an ``OdooEnvironment`` owns the environment (here or in another replica);
            False when none does (the receiver answers 404).
        """
        watch = self.runtime.fleet.route(env_id)
        if watch is not None:
            if watch.key_id != key_id.split(".", 1)[0]:  # a project-scoped key's book name: <key id>.<project>
                # Another key's webhook: the owner's read budget and push health are not its to spend
                # or vouch for (the owner's key has its own webhook); owned, so not a 404.
                return True
            self.runtime.health(key_id).hinted(env_id)
            self._refresh_soon(watch, env_id)
            return True
        self.runtime.health(key_id).hinted(env_id)
        owner = await self._owner(env_id)
        if owner is None:
            return False
        if owner in self._paused or await self._key_of(owner) != key_id.split(".", 1)[0]:
            return True  # owned, but nothing is read on its behalf (paused; another key's webhook)
        return await self._forward(owner, env_id, event)

    async def _key_of(self, owner: tuple[str, str]) -> str | None:
        """The id of the API key the owner reads with (its ``spec.credentialsSecretRef`` or the
        default key; from the Secret cache), ``None`` when it has none."""
        if owner not in self._refs:
            return None  # its credentialsSecretRef is malformed: it reads nothing
        try:
            key, _ = await self.runtime.api_key(owner[0], self._refs[owner])
        except (CredentialsError, KubeError):
            return None
        return key_id_of(key)

    def delivered(self, key_id: str) -> None:
        """A delivery of the key's webhook passed verification (push health credit)."""
        self.runtime.health(key_id).delivered()

    # -- local: one debounced targeted read ------------------------------------------------
    def _refresh_soon(self, watch: ProjectWatch, env_id: str) -> None:
        """Read the environment at once, unless it was read less than the debounce period ago:
        then once at the end of that period (every hint until then joins that read), so a burst
        of deliveries costs at most one read per period and the first one waits for nothing."""
        if env_id in self._owed:
            return  # joins the read owed
        now = self._clock()
        self._read_at = {e: t for e, t in self._read_at.items() if now - t < self._debounce}
        delay = max(0.0, self._read_at.get(env_id, now - self._debounce) + self._debounce - now)
        task = asyncio.get_running_loop().create_task(self._refresh(watch, env_id, delay), name=f"refresh {env_id}")
        self._owed[env_id] = task
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _refresh(self, watch: ProjectWatch, env_id: str, delay: float) -> None:
        try:
            await asyncio.sleep(delay)
        finally:
            del self._owed[env_id]  # a hint from now on may announce a change after this read
            self._read_at[env_id] = self._clock()
        try:
            await watch.refresh_environment(env_id)
        except OecBudgetDeferred:  # no spare read budget: the project's next list shows the change
            logger.debug(f"webhook refresh of environment {env_id} skipped: no spare read budget")
        except OecError as exc:  # the project's own lists remain the safety net
            logger.info(f"webhook refresh of environment {env_id} failed: {exc}")

    # -- elsewhere: the annotation on the owner ---------------------------------------------
    async def _owner(self, env_id: str) -> tuple[str, str] | None:
        """``(namespace, name)`` of the object whose ``status.environmentId`` is ``env_id``, from
        a cluster-wide list at most :data:`OWNERS_TTL` seconds old (listed again on a miss, at most
        once per :data:`OWNERS_TTL`)."""
        owner = self._owners.get(env_id) if self._fresh() else None
        if owner is not None or (self._listed_at is not None and self._fresh()):
            return owner
        async with self._listing:
            if not self._fresh():  # nobody listed while this one waited
                try:
                    objects = await self.runtime.kube.list_objects()
                except KubeError as exc:
                    logger.warning(f"cannot list OdooEnvironments to route a webhook: {exc}")
                    return None
                finally:
                    self._listed_at = self._clock()
                self._owners, self._paused, self._refs = {}, set(), {}
                for obj in objects:
                    meta = obj["metadata"]
                    found = (obj.get("status") or {}).get("environmentId")
                    if found and not meta.get("deletionTimestamp"):
                        owner = self._owners.setdefault(str(found), (meta["namespace"], meta["name"]))
                        if Requests.from_annotations(meta.get("annotations")).paused:
                            self._paused.add(owner)
                        ref = (obj.get("spec") or {}).get("credentialsSecretRef")
                        if owner == (meta["namespace"], meta["name"]):  # not a second object naming it
                            with contextlib.suppress(ValidationError):  # malformed: no key, nothing read
                                self._refs[owner] = None if ref is None else SecretKeyRef.model_validate(ref)
        return self._owners.get(env_id)

    def _fresh(self) -> bool:
        return self._listed_at is not None and self._clock() - self._listed_at < OWNERS_TTL

    async def _forward(self, owner: tuple[str, str], env_id: str, event: str) -> bool:
        """Set ``oec.sh/refresh-requested-at`` on the owner (at most once per debounce period)."""
        now = self._clock()
        last = self._forwarded.get(owner)
        if last is not None and now - last < self._debounce:
            return True
        self._forwarded = {k: t for k, t in self._forwarded.items() if now - t < max(self._debounce, OWNERS_TTL)}
        self._forwarded[owner] = now
        stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        try:
            await self.runtime.kube.patch_metadata(owner[0], owner[1], {"annotations": {REFRESH_REQUESTED_AT: stamp}})
        except KubeError as exc:
            if exc.status == 404:
                self._owners.pop(env_id, None)
                return False
            logger.warning(f"cannot forward webhook {event} to {owner[0]}/{owner[1]}: {exc}")
        return True

    async def drain(self) -> None:
        """Wait until every refresh owed now is done (shutdown, tests)."""
        while self._running:
            await asyncio.wait(list(self._running))

    async def aclose(self) -> None:
        """Cancel the refreshes owed."""
        for task in list(self._running):
            task.cancel()
        for task in list(self._running):
            with contextlib.suppress(asyncio.CancelledError):
                await task
