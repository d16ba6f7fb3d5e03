"""The Kubernetes Secret that holds the operator's webhook secrets (``OEC_WEBHOOK_SECRET``,
``docs/webhooks.md`` §5).

One Secret for the whole operator; per registered webhook (``name`` = the API key's id, or
``<key id>.<project id>`` for a project-scoped key) the data keys ``<name>.id`` (the webhook's
id), ``<name>.secret`` (its signing secret), ``<name>.scheme`` (the pinned signature scheme as
JSON, absent before calibration) and ``<name>.rotated-at`` (RFC 3339). The annotation
:data:`ROTATE_ANNOTATION` asks for a rotation now; ``rotation.handled`` keeps the last token
acted on. Values never leave this module except to the registrar and the receiver's book.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from oec_operator.kube.client import KubeClient, KubeError

#: Annotation on the webhook Secret: a new value (any token, e.g. a timestamp) asks for a rotation
#: of every webhook secret in it (``docs/webhooks.md`` §5).
ROTATE_ANNOTATION = "oec.sh/rotate-requested-at"
#: The data key holding the last :data:`ROTATE_ANNOTATION` token acted on.
HANDLED_KEY = "rotation.handled"
LABELS = {"app.kubernetes.io/name": "oec-operator", "app.kubernetes.io/component": "webhooks"}
_FIELDS = ("id", "secret", "scheme", "rotated-at")


@dataclass(frozen=True)
class StoredWebhook:
    """What the Secret holds for one webhook.

    Attributes:
        webhook_id: the OEC.sh webhook's id.
        secret: its signing secret.
        scheme: the pinned signature scheme as JSON, ``None`` before calibration.
        rotated_at: when the secret was created or last rotated (UTC).
    """

    webhook_id: str
    secret: str
    scheme: str | None = None
    rotated_at: datetime | None = None


@dataclass
class StoredState:
    """The Secret as read: ``exists`` (False: not created yet), the entries by name, the rotation
    token asked for and the one last handled."""

    exists: bool = False
    entries: dict[str, StoredWebhook] = field(default_factory=dict)
    rotate_token: str | None = None
    handled_token: str | None = None

    @property
    def rotation_requested(self) -> bool:
        """The annotation carries a token not acted on yet."""
        return bool(self.rotate_token) and self.rotate_token != self.handled_token


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def _text(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return base64.b64decode(value).decode()
    except ValueError:
        return None


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse(secret: Mapping[str, object] | None) -> StoredState:
    """The :class:`StoredState` of a Secret object (``None``: no Secret). Incomplete entries (no id or
    no secret) are left out: the registrar then rotates that webhook's secret."""
    if secret is None:
        return StoredState()
    raw = secret.get("data") or {}
    data = {str(k): _text(str(v)) for k, v in raw.items()} if isinstance(raw, Mapping) else {}
    metadata = secret.get("metadata") or {}
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    names = {key.rsplit(".", 1)[0] for key in data if key.rsplit(".", 1)[-1] in _FIELDS}
    entries: dict[str, StoredWebhook] = {}
    for name in names:
        webhook_id, value = data.get(f"{name}.id"), data.get(f"{name}.secret")
        if webhook_id and value:
            entries[name] = StoredWebhook(webhook_id, value, data.get(f"{name}.scheme"),
                                          _time(data.get(f"{name}.rotated-at")))
    token = annotations.get(ROTATE_ANNOTATION) if isinstance(annotations, Mapping) else None
    return StoredState(True, entries, str(token) if token else None, data.get(HANDLED_KEY))


class WebhookSecretStore:
    """Reads and writes the webhook Secret.

    Args:
        kube: the Kubernetes client (get, create and patch on that one Secret, ``deploy/rbac``).
        location: ``namespace/name`` (``OEC_WEBHOOK_SECRET``).
    """

    def __init__(self, kube: KubeClient, location: str) -> None:
        self._kube = kube
        self.namespace, self.name = location.split("/", 1)
        self._exists = False

    async def load(self) -> StoredState:
        """The Secret's entries (empty when the Secret does not exist).

        Raises:
            KubeError: the read failed (403: the RBAC of ``deploy/rbac`` is missing).
        """
        state = parse(await self._kube.read_secret(self.namespace, self.name))
        self._exists = state.exists
        return state

    async def _write(self, data: Mapping[str, str | None]) -> None:
        if not self._exists:
            try:
                await self._kube.create_secret(self.namespace, self.name,
                                               {k: v for k, v in data.items() if v is not None}, LABELS)
                self._exists = True
                return
            except KubeError as exc:
                if exc.status != 409:
                    raise
                self._exists = True
        try:
            await self._kube.patch_secret_data(self.namespace, self.name, data)
        except KubeError as exc:
            if exc.status != 404:
                raise
            self._exists = False  # deleted meanwhile: create it again
            await self._write(data)

    async def save(self, name: str, entry: StoredWebhook) -> None:
        """Write one webhook's entry (creating the Secret when it is missing).

        Raises:
            KubeError: the write failed.
        """
        rotated = entry.rotated_at.isoformat() if entry.rotated_at else None
        await self._write({f"{name}.id": _b64(entry.webhook_id), f"{name}.secret": _b64(entry.secret),
                           f"{name}.scheme": _b64(entry.scheme) if entry.scheme else None,
                           f"{name}.rotated-at": _b64(rotated) if rotated else None})

    async def drop(self, name: str) -> None:
        """Remove one webhook's entry.

        Raises:
            KubeError: the write failed.
        """
        await self._write(dict.fromkeys((f"{name}.{f}" for f in _FIELDS), None))

    async def handled(self, token: str) -> None:
        """Record that the rotation asked for with ``token`` is done.

        Raises:
            KubeError: the write failed.
        """
        await self._write({HANDLED_KEY: _b64(token)})
