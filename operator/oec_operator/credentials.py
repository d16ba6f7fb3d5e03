"""Where an ``OdooEnvironment``'s OEC.sh API key comes from: its own Secret or the operator default.

Secrets are read through the official ``kubernetes`` client in a worker thread (the sync client
must not block kopf's event loop, ``kopf-notes.md`` §5), on every use, so a rotated Secret is
picked up without a restart.
"""

from __future__ import annotations

import asyncio
import base64
import binascii

import kubernetes
from kubernetes.client.exceptions import ApiException

from oec_operator.config import OperatorConfig
from oec_operator.oec.client import validate_api_key
from oec_operator.spec import SecretKeyRef


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


async def read_secret_key(core: kubernetes.client.CoreV1Api, namespace: str, name: str, key: str) -> str:
    """Read and check one API key from a Secret.

    Args:
        core: a configured ``CoreV1Api``.
        namespace: the Secret's namespace; name: its name; key: the data key.

    Returns:
        The API key (whitespace stripped).

    Raises:
        CredentialsError: the Secret or the key is missing, unreadable or malformed.
    """
    try:
        secret = await asyncio.to_thread(core.read_namespaced_secret, name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            raise CredentialsError(
                f"Secret {namespace}/{name} not found; create it with the OEC.sh API key under key {key}"
            ) from None
        raise CredentialsError(f"cannot read Secret {namespace}/{name} (HTTP {exc.status})") from None
    data = secret.data or {}
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


async def resolve_api_key(
    core: kubernetes.client.CoreV1Api, namespace: str, ref: SecretKeyRef | None, config: OperatorConfig
) -> str:
    """The API key for a resource: ``spec.credentialsSecretRef`` in its namespace, else the
    operator's default (``OEC_API_KEY`` or the Secret named by ``OEC_API_KEY_SECRET``).

    Raises:
        CredentialsError: no usable key.
    """
    if ref is not None:
        return await read_secret_key(core, namespace, ref.name, ref.key)
    if config.api_key_secret:
        secret_ns, secret_name = config.api_key_secret.split("/", 1)
        return await read_secret_key(core, secret_ns, secret_name, config.api_key_secret_key)
    if config.api_key is not None:
        return config.api_key.get_secret_value()
    raise CredentialsError(
        "no credentials: set spec.credentialsSecretRef or give the operator a default key "
        "(OEC_API_KEY or OEC_API_KEY_SECRET)"
    )
