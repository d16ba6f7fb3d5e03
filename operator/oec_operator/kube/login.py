"""The operator's login to the apiserver (kopf's login handler), kubeconfig users with an
``exec`` credential plugin included.

:func:`login`: the in-cluster service account first, then the kubeconfig, through an HTTP
session that opens at most :data:`KUBE_CONNECTIONS` connections (kopf's documented custom-session
login, ``docs/kopf.md`` §2). kopf and the operator's own calls (:mod:`oec_operator.kube.client`)
share that session.

An ``exec`` user (``client.authentication.k8s.io`` ``ExecCredential``) gets its credential by
running a command: ``aws eks get-token`` (EKS), ``gke-gcloud-auth-plugin`` (GKE), ``kubelogin``
(AKS), ... kopf's :func:`kopf.login_with_kubeconfig` reads static credentials only (token,
client certificate, basic auth), so with such a user kopf would talk to the apiserver
anonymously. :func:`with_exec_credential` runs the plugin and adds its credential to kopf's
:class:`kopf.ConnectionInfo`, with the credential's ``expirationTimestamp`` as
``ConnectionInfo.expiration``: kopf checks it before every API request and, once it has passed,
runs the login again (as it does on an HTTP 401).

The plugin is run by the official ``kubernetes`` client's ``ExecProvider`` (a dependency
already): it builds the ``KUBERNETES_EXEC_INFO`` request (``provideClusterInfo`` included),
passes ``args`` and ``env``, checks the answer's ``apiVersion`` and, when the operator runs in a
terminal, lets the plugin prompt there. Not ``kopf.login_via_client``: it keeps no expiry (the
token would be refreshed only after a 401), it turns a failing plugin into a logged line and a
login without credentials, and it rewrites the client library's process-wide default
configuration.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import os
import time
from typing import Any

import aiohttp
import kopf
import yaml
from kubernetes.config.config_exception import ConfigException
from kubernetes.config.exec_provider import ExecProvider
from kubernetes.config.kube_config import ConfigNode

logger = logging.getLogger(__name__)

#: A login this soon (seconds) after the plugin's last credential means the apiserver refused
#: that credential at once (kopf logs in again on every HTTP 401): the plugin is not run again
#: then, or a plugin with a refused token would run many times a second.
RELOGIN_AFTER = 3.0
#: Connections kopf may hold open to the apiserver at once (watch streams included).
KUBE_CONNECTIONS = 200
#: Seconds between login attempts while a kubeconfig user's exec credential plugin fails (e.g.
#: until ``aws sso login`` is done).
EXEC_RETRY_DELAY = 15.0
_last_credential_at: float | None = None  # time.monotonic() of the plugin's last credential


class ExecPluginError(Exception):
    """The exec plugin of a kubeconfig user gave no usable credential. The message names the
    kubeconfig user and the command, and quotes the plugin's stderr (never its stdout, which may
    hold a token)."""


@dataclasses.dataclass(frozen=True)
class ExecUser:
    """The current context's kubeconfig user, when it authenticates with an ``exec`` plugin.

    Attributes:
        name: the user's name in the kubeconfig (``users[].name``).
        exec: the user's ``exec`` block (``apiVersion``, ``command``, ``args``, ``env``, ...).
        cluster: the context's ``cluster`` block (sent to the plugin with ``provideClusterInfo``).
        base_dir: directory of the kubeconfig file that defines the user; the plugin runs there,
            so a relative ``command`` is found next to that file.
    """

    name: str
    exec: dict[str, Any]
    cluster: dict[str, Any]
    base_dir: str

    @property
    def command(self) -> str:
        """The plugin's command as written in the kubeconfig."""
        return str(self.exec.get("command", ""))


@dataclasses.dataclass(frozen=True)
class ExecCredential:
    """What an exec plugin returned (``ExecCredential.status``).

    Attributes:
        token: the bearer token, or None when the plugin returned a client certificate.
        client_certificate: the client certificate (PEM), or None.
        client_key: the client certificate's private key (PEM), or None.
        expiration: ``status.expirationTimestamp`` as a UTC-aware datetime, or None when the
            plugin set none (the credential is then used until the apiserver answers 401).
    """

    token: str | None = dataclasses.field(default=None, repr=False)
    client_certificate: str | None = dataclasses.field(default=None, repr=False)
    client_key: str | None = dataclasses.field(default=None, repr=False)
    expiration: datetime.datetime | None = None


def _kubeconfig_paths() -> list[str]:
    """The kubeconfig files kopf reads: ``$KUBECONFIG`` (a path list), else ``~/.kube/config``."""
    value = os.environ.get("KUBECONFIG") or ""
    if not value and os.path.exists(os.path.expanduser("~/.kube/config")):
        value = "~/.kube/config"
    return [os.path.expanduser(p.strip()) for p in value.split(os.pathsep) if p.strip()]


def current_exec_user() -> ExecUser | None:
    """The current context's user if it has an ``exec`` block, else None.

    The files are merged as :func:`kopf.login_with_kubeconfig` merges them (the first
    ``current-context`` and the first entry of each name win), so the user is the one whose
    cluster kopf connects to.

    Raises:
        OSError, yaml.YAMLError: a kubeconfig file cannot be read or parsed.
    """
    current: str | None = None
    contexts: dict[str, dict[str, Any]] = {}
    clusters: dict[str, dict[str, Any]] = {}
    users: dict[str, tuple[dict[str, Any], str]] = {}
    for path in _kubeconfig_paths():
        with open(path, encoding="utf-8") as f:
            config = yaml.safe_load(f) or {}
        current = current or config.get("current-context")
        for item in config.get("contexts") or []:
            contexts.setdefault(item["name"], item.get("context") or {})
        for item in config.get("clusters") or []:
            clusters.setdefault(item["name"], item.get("cluster") or {})
        for item in config.get("users") or []:
            users.setdefault(item["name"], (item.get("user") or {}, os.path.dirname(os.path.abspath(path))))
    context = contexts.get(current or "") or {}
    name = context.get("user")
    if name not in users:
        return None
    user, base_dir = users[name]
    if not user.get("exec"):
        return None
    return ExecUser(name=name, exec=dict(user["exec"]), cluster=clusters.get(context.get("cluster", "")) or {},
                    base_dir=base_dir)


def run_exec_plugin(user: ExecUser) -> ExecCredential:
    """Run ``user``'s plugin once and return its credential. Blocking (it waits for the
    process): call it in a thread.

    Raises:
        ExecPluginError: the command cannot be started, exits non-zero, prints no
            ``ExecCredential`` of the requested ``apiVersion``, or one with neither a token nor
            a client certificate and key, or an unreadable ``expirationTimestamp``.
    """
    where = f"kubeconfig user {user.name!r}: exec credential plugin {user.command!r}"
    try:
        status = ExecProvider(ConfigNode(f"users[name={user.name}].exec", user.exec), user.base_dir,
                              ConfigNode("cluster", user.cluster)).run()
    except (ConfigException, OSError) as exc:
        # ExecProvider's messages carry the exit code and stderr, or a JSON error position;
        # never the output itself.
        raise ExecPluginError(f"{where} failed: {exc}") from None
    if not isinstance(status, dict):
        raise ExecPluginError(f"{where} returned an ExecCredential without a status object")
    token = status.get("token")
    cert, key = status.get("clientCertificateData"), status.get("clientKeyData")
    if not (isinstance(token, str) and token) and not (isinstance(cert, str) and isinstance(key, str)):
        raise ExecPluginError(f"{where} returned neither status.token nor status.clientCertificateData "
                              "with status.clientKeyData")
    expiration: datetime.datetime | None = None
    stamp = status.get("expirationTimestamp")
    if stamp:
        try:
            expiration = datetime.datetime.fromisoformat(str(stamp))
        except ValueError:
            raise ExecPluginError(f"{where} returned an unreadable status.expirationTimestamp "
                                  f"{str(stamp)[:40]!r}") from None
        if expiration.tzinfo is None:
            expiration = expiration.replace(tzinfo=datetime.UTC)
        expiration = expiration.astimezone(datetime.UTC)
    if isinstance(token, str) and token:
        return ExecCredential(token=token, expiration=expiration)
    return ExecCredential(client_certificate=cert, client_key=key, expiration=expiration)


async def with_exec_credential(info: kopf.ConnectionInfo) -> kopf.ConnectionInfo:
    """``info`` (from :func:`kopf.login_with_kubeconfig`) with the credential of the current
    user's exec plugin, or ``info`` unchanged when that user has no ``exec`` block.

    The plugin runs in a worker thread (it may take seconds, e.g. a call to AWS STS). Its token
    replaces any token or basic auth of ``info``; a client certificate replaces any certificate
    and key.
    ``expiration`` is the credential's ``expirationTimestamp`` (UTC), unless that has already
    passed (a clock skew, or a plugin handing out a stale cached token): then it is None and the
    credential is used until the apiserver refuses it, rather than logging in again in a loop.

    Raises:
        ExecPluginError: see :func:`run_exec_plugin`; also when called again within
            :data:`RELOGIN_AFTER` seconds of the plugin's last credential (the apiserver refused
            it), without running the plugin.
        OSError, yaml.YAMLError: a kubeconfig file cannot be read or parsed.
    """
    user = current_exec_user()
    if user is None:
        return info
    global _last_credential_at
    if _last_credential_at is not None and time.monotonic() - _last_credential_at < RELOGIN_AFTER:
        raise ExecPluginError(
            f"kubeconfig user {user.name!r}: the apiserver refused the credential of exec credential plugin "
            f"{user.command!r} (HTTP 401 within {RELOGIN_AFTER:.0f} s of getting it); check the user's access "
            "to this cluster")
    credential = await asyncio.to_thread(run_exec_plugin, user)
    _last_credential_at = time.monotonic()
    expiration = credential.expiration
    now = datetime.datetime.now(datetime.UTC)
    if expiration is not None and expiration <= now:
        logger.warning("kubeconfig user %r: exec credential plugin %r returned a credential that expired at %s; "
                       "using it until the apiserver refuses it", user.name, user.command, expiration.isoformat())
        expiration = None
    if credential.token is not None:
        # Basic auth would win over the token in kopf's headers: the plugin's credential is the one.
        info = dataclasses.replace(info, token=credential.token, scheme=None, username=None, password=None,
                                   expiration=expiration)
    else:
        info = dataclasses.replace(info, certificate_path=None, certificate_data=credential.client_certificate,
                                   private_key_path=None, private_key_data=credential.client_key,
                                   expiration=expiration)
    kind = "a token" if credential.token is not None else "a client certificate"
    lifetime = (f"valid until {expiration.isoformat(timespec='seconds')} ({(expiration - now).total_seconds():.0f} s)"
                if expiration is not None else "with no expiry")
    logger.info("kubeconfig user %r: exec credential plugin %r gave %s, %s", user.name, user.command, kind, lifetime)
    return info


async def login(**kwargs: Any) -> kopf.AiohttpSession | None:
    """kopf's login: in-cluster service account first, then the kubeconfig; through an HTTP
    session that opens at most :data:`KUBE_CONNECTIONS` connections to the apiserver (kopf's own
    session has no limit: thousands of objects created at once would open thousands of TLS
    connections, about a third of a megabyte each).

    A kubeconfig user with an ``exec`` credential plugin (EKS, GKE, AKS) gets the plugin's token
    or client certificate (:func:`with_exec_credential`); the session's ``expiration`` is the
    credential's ``expirationTimestamp``, after which kopf calls this again (it does so on an
    HTTP 401 too). Returns None when neither a service account nor a kubeconfig exists.

    Raises:
        kopf.TemporaryError: the exec plugin failed (the message names the kubeconfig user and
            the command, with the plugin's stderr); kopf logs it and retries after
            :data:`EXEC_RETRY_DELAY` seconds, while API calls wait for credentials.
    """
    info = kopf.login_with_service_account(**kwargs)
    if info is None:
        info = kopf.login_with_kubeconfig(**kwargs)
        if info is None:
            return None
        try:
            info = await with_exec_credential(info)
        except ExecPluginError as exc:
            raise kopf.TemporaryError(str(exc), delay=EXEC_RETRY_DELAY) from None
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=KUBE_CONNECTIONS, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(), proxy=info.proxy_url, trust_env=info.trust_env,
    )
    return kopf.AiohttpSession(aiohttp_session=session, server=info.server, priority=info.priority,
                               default_namespace=info.default_namespace, expiration=info.expiration)
