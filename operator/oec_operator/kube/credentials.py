"""Where an ``OdooEnvironment``'s OEC.sh API key comes from: its own Secret or the operator default.

Secrets are read through a :data:`SecretReader`: in the operator the cached reader of
:mod:`oec_operator.kube.secrets` (a rotated key is picked up within its TTL), in ``kubectl oec``
a direct read.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Mapping

from oec_operator.kube.client import KubeError
from oec_operator.models.spec import SecretKeyRef
from oec_operator.oec.client import validate_api_key
from oec_operator.settings import OperatorConfig

#: ``read(namespace, name)`` -> the Secret's ``data`` (base64 values); raises :class:`KubeError`.
SecretReader = Callable[[str, str], Awaitable[Mapping[str, str]]]


class CredentialsError(Exception):
    """The API key cannot be found or is malformed. The message names the Secret and key and
    says what to do; it never contains the key."""


def describe(namespace: str, ref: SecretKeyRef | None, config: OperatorConfig) -> str:
    """Human description of where the key comes from, for condition messages."""
    if ref is not None:
        return f"Secret {namespace}/{ref.name} key {ref.key}"
    if config.api_key_secret:
        return f"the operator's default Secret {config.api_key_secret} key {config.api_key_secret_key}"
    return "the operator's default API key (OEC_API_KEY)"


def secret_of(namespace: str, ref: SecretKeyRef | None, config: OperatorConfig) -> tuple[str, str, str] | None:
    """``(namespace, name, key)`` of the Secret holding a resource's key, or ``None`` when the
    key comes from ``OEC_API_KEY``."""
    if ref is not None:
        return namespace, ref.name, ref.key
    if config.api_key_secret:
        secret_ns, secret_name = config.api_key_secret.split("/", 1)
        return secret_ns, secret_name, config.api_key_secret_key
    return None


async def read_secret_key(read: SecretReader, namespace: str, name: str, key: str) -> str:
    """Read and check one API key from a Secret.

    Returns:
        The API key (whitespace stripped).

    Raises:
        CredentialsError: the Secret or the key is missing, unreadable or malformed.
    """
    try:
        data = await read(namespace, name)
    except KubeError as exc:
        if exc.status == 404:
            raise CredentialsError(
                f"Secret {namespace}/{name} not found; create it with the OEC.sh API key under key {key}"
            ) from None
        what = f"HTTP {exc.status}" if exc.status else "the apiserver did not answer"
        raise CredentialsError(f"cannot read Secret {namespace}/{name} ({what})") from None
    if key not in data:
        raise CredentialsError(f"Secret {namespace}/{name} has no key {key}; add the OEC.sh API key under it")
    try:
        value = base64.b64decode(data[key]).decode("utf-8").strip()
        validate_api_key(value)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise CredentialsError(
            f"Secret {namespace}/{name} key {key} does not hold a valid OEC.sh API key "
            "(expected oec_live_ro_... or oec_live_rw_...)"
        ) from None
    return value


async def resolve_api_key(read: SecretReader, namespace: str, ref: SecretKeyRef | None,
                          config: OperatorConfig) -> str:
    """The API key for a resource: ``spec.credentialsSecretRef`` in its namespace, else the
    operator's default (``OEC_API_KEY`` or the Secret named by ``OEC_API_KEY_SECRET``).

    Raises:
        CredentialsError: no usable key.
    """
    secret = secret_of(namespace, ref, config)
    if secret is not None:
        return await read_secret_key(read, *secret)
    if config.api_key is not None:
        return config.api_key.get_secret_value()
    raise CredentialsError(
        "no credentials: set spec.credentialsSecretRef or give the operator a default key "
        "(OEC_API_KEY or OEC_API_KEY_SECRET)"
    )
