"""The webhook secrets this process verifies deliveries with, per API key (``docs/webhooks.md`` §3).

Filled by the registration (from the webhook Secret at start-up, after a create or a rotation)
and read by the receiver: a delivery is verified when it was signed by one of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from oec_operator.webhooks.scheme import SignatureScheme

#: Seconds the previous secret of a webhook is still accepted after a rotation: deliveries signed
#: just before it may still be on their way, or retried (``docs/webhooks.md`` §3).
ROTATION_GRACE = 300.0


@dataclass(frozen=True)
class KeySecrets:
    """One API key's webhook as the receiver needs it.

    Attributes:
        webhook_id: the OEC.sh webhook's id.
        secret: its current secret.
        previous: the secret before the last rotation, accepted until ``previous_until``.
        previous_until: Unix seconds after which ``previous`` is refused.
        scheme: the scheme pinned by calibration, ``None`` for the configured default.
    """

    webhook_id: str
    secret: str
    previous: str | None = None
    previous_until: float = 0.0
    scheme: SignatureScheme | None = None

    def __repr__(self) -> str:  # never the secrets (logs, tracebacks)
        return f"KeySecrets(webhook_id={self.webhook_id!r}, scheme={self.scheme!r})"


class SecretBook:
    """``key_id`` (:attr:`~oec_operator.oec.client.OecClient.key_id`) -> :class:`KeySecrets`.

    Args:
        default: the scheme of a key whose scheme is not pinned (the configured one).
        grace: seconds a replaced secret is still accepted (:data:`ROTATION_GRACE`).
    """

    def __init__(self, default: SignatureScheme, grace: float = ROTATION_GRACE) -> None:
        self.default = default
        self.grace = grace
        self._keys: dict[str, KeySecrets] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def get(self, key_id: str) -> KeySecrets | None:
        """The key's webhook, if it has one here."""
        return self._keys.get(key_id)

    def set(self, key_id: str, webhook_id: str, secret: str, now: float,
            scheme: SignatureScheme | None = None) -> None:
        """Verify the key's deliveries with ``secret`` from now on (``now``: Unix seconds). When the
        same webhook had another secret (a rotation), that one stays accepted for :attr:`grace`
        seconds. ``scheme`` pins the scheme; ``None`` keeps a pinned one of the same webhook."""
        old = self._keys.get(key_id)
        previous, until = None, 0.0
        if old is not None and old.webhook_id == webhook_id:
            scheme = scheme or old.scheme
            if old.secret != secret:
                previous, until = old.secret, now + self.grace
            elif old.previous is not None:
                previous, until = old.previous, old.previous_until
        self._keys[key_id] = KeySecrets(webhook_id, secret, previous, until, scheme)

    def pin(self, key_id: str, scheme: SignatureScheme | None) -> None:
        """Verify the key's deliveries with ``scheme`` (calibration), ``None``: the default."""
        old = self._keys.get(key_id)
        if old is not None:
            self._keys[key_id] = KeySecrets(old.webhook_id, old.secret, old.previous, old.previous_until, scheme)

    def drop(self, key_id: str) -> None:
        """Forget the key's webhook (deleted): its deliveries are refused from now on."""
        self._keys.pop(key_id, None)

    def match(self, headers: Mapping[str, str], body: bytes, now: float) -> str | None:
        """The ``key_id`` whose webhook signed this delivery (``headers``' names lower-case,
        ``now`` Unix seconds): its current secret, or its previous one within the grace period,
        with its pinned scheme or else the default one; ``None`` when none did."""
        for key_id, keys in list(self._keys.items()):
            scheme = keys.scheme or self.default
            if scheme.verify(keys.secret, headers, body, now):
                return key_id
            if keys.previous is not None and now <= keys.previous_until \
                    and scheme.verify(keys.previous, headers, body, now):
                return key_id
        return None

    def key_of(self, webhook_id: str) -> str | None:
        """The ``key_id`` whose webhook has this id (attributes a refused delivery that names it)."""
        return next((key_id for key_id, keys in self._keys.items() if keys.webhook_id == webhook_id), None)
