"""``kubectl oec``: inspect and nudge OdooEnvironments without leaving kubectl.

Installed with the package as ``kubectl-oec`` (kubectl finds plugins on ``PATH``)::

    kubectl oec status NAME [-n NS]                 # phase, power, size, domain, deploys, conditions
    kubectl oec logs NAME [--lines N] [--task ID]   # deploy log from the OEC.sh API
    kubectl oec redeploy NAME                       # annotation oec.sh/redeploy-requested-at
    kubectl oec reconcile NAME                      # annotation oec.sh/reconcile-requested-at
    kubectl oec restart NAME                        # annotation oec.sh/restart-requested-at
    kubectl oec start|stop NAME                     # spec.powerState Running | Stopped
    kubectl oec backup [create] NAME [--retention R] [--notes T] [--no-filestore]  # a new OdooBackup of NAME
    kubectl oec backups NAME                        # the environment's backups on OEC.sh, all types
    kubectl oec backup download NAME [--expires-in S]  # a download link for the OdooBackup NAME
    kubectl oec restore NAME --backup B | --backup-id ID [--not-after 1h] [--yes-i-mean-it NAME]
                                                    # an OdooRestore, after typing the environment's name

``logs``, ``backups`` and ``backup download`` call the OEC.sh API with the resource's own
credentials (its ``credentialsSecretRef`` Secret; for ``backup download`` those the operator uses,
``docs/backups.md`` §1), else ``OEC_API_KEY`` / ``OEC_API_KEY_SECRET``; the API root is
``--api-url``, else ``OEC_API_URL``, else the production URL. ``backups NAME`` of a deleted
environment reads the environment id and credentials from its ``OdooBackup`` objects. An environment
named ``download`` or ``create`` is backed up with ``backup create NAME``. Exit status 1 with a
one-line reason on any error.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import re
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

import kubernetes
from kubernetes.client.exceptions import ApiException

from oec_operator.kube.client import KubeError
from oec_operator.kube.credentials import CredentialsError, SecretReader, resolve_api_key, secret_of
from oec_operator.models.backups import OdooBackupSpec, OdooBackupStatus
from oec_operator.models.conditions import now_rfc3339, rfc3339
from oec_operator.models.requests import RECONCILE_REQUESTED_AT, REDEPLOY_REQUESTED_AT, RESTART_REQUESTED_AT
from oec_operator.models.spec import OdooEnvironmentSpec, SecretKeyRef
from oec_operator.models.status import Health, LastDeploy, PendingResources, Status
from oec_operator.oec.client import OecClient, make_http_client
from oec_operator.oec.errors import OecError, OecTransportError
from oec_operator.oec.models import Backup
from oec_operator.settings import BACKUP_PLURAL, GROUP, PLURAL, RESTORE_PLURAL, VERSION, ConfigError, load_config

T = TypeVar("T")


class PluginError(Exception):
    """An error to show the user as ``error: <message>``."""


def _api(args: argparse.Namespace) -> tuple[kubernetes.client.ApiClient, str]:
    """A Kubernetes client and the namespace (flag, else the context's, else ``default``)."""
    try:
        kubernetes.config.load_kube_config(config_file=args.kubeconfig, context=args.context)
        _, current = kubernetes.config.list_kube_config_contexts(config_file=args.kubeconfig)
    except (kubernetes.config.ConfigException, FileNotFoundError) as exc:
        raise PluginError(f"no usable kubeconfig: {exc}") from None
    namespace = args.namespace or (current or {}).get("context", {}).get("namespace") or "default"
    return kubernetes.client.ApiClient(), namespace


def _get(api: kubernetes.client.ApiClient, namespace: str, name: str, plural: str = PLURAL) -> dict[str, Any]:
    kind = plural.removesuffix("s")
    try:
        obj = cast(dict[str, Any], kubernetes.client.CustomObjectsApi(api).get_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, name
        ))
    except ApiException as exc:
        if exc.status == 404:
            raise PluginError(f"{kind} {name!r} not found in namespace {namespace!r}") from None
        raise PluginError(f"cannot read {kind} {name!r}: HTTP {exc.status} {exc.reason}") from None
    return obj


def _size(cpu_cores: float | None, ram_mb: int | None, disk_gb: int | None) -> str:
    """``1.5 CPU, 4096 MB RAM, 20 GB disk`` (the parts that are known), or ``-``."""
    parts = [f"{cpu_cores:g} CPU" if cpu_cores is not None else "",
             f"{ram_mb} MB RAM" if ram_mb is not None else "",
             f"{disk_gb} GB disk" if disk_gb is not None else ""]
    return ", ".join(p for p in parts if p) or "-"


def _day2_lines(spec: dict[str, Any], status: Status) -> list[str]:
    """The ``Power``, ``Size``, ``Domain``, ``Deploy request`` and ``Task`` lines of ``kubectl oec status``."""
    def shown(value: Any, default: str = "-") -> str:
        return default if value is None else str(value)

    size = f"Size:         {_size(status.cpu_cores, status.ram_mb, status.disk_gb)}"
    pending: PendingResources | None = status.pending_resources
    if pending is not None:
        when = "the next deploy" if pending.applies_on == "NextDeploy" else "a restart"
        size += (f" (pending: {_size(pending.cpu_cores, pending.ram_mb, pending.disk_gb)}, applies at {when}"
                 f"{', sent ' + pending.since if pending.since else ''})")
    if "domain" not in spec:
        domain = f"{shown(status.custom_domain)} (spec: not managed)"
    else:
        verified = {True: "verified", False: "not verified yet", None: "verification unknown"}
        domain = (f"{status.custom_domain or 'platform subdomain'}"
                  f"{' (' + verified[status.custom_domain_verified] + ')' if status.custom_domain else ''}"
                  f" (spec: {spec['domain'] or 'platform subdomain'})")
    request = (spec.get("deploy") or {}).get("request") or {}
    wanted = (f"{request.get('id')} ({request.get('mode', 'Deploy')}"
              f"{': ' + ', '.join(request['updateModules']) if request.get('updateModules') else ''})"
              if request else "none")
    lines = [
        f"Power:        {shown(status.power_state)} (spec: {spec.get('powerState', 'Running')})",
        size,
        f"Domain:       {domain}",
        f"Deploy req.:  last handled {shown(status.last_handled_deploy_request)} (spec: {wanted})",
    ]
    if status.task is not None:
        lines.append(f"Task:         {status.task.action} {status.task.id}"
                     f"{' (' + status.task.reason + ')' if status.task.reason else ''}")
    if status.pending_deploy is not None:
        owed = status.pending_deploy
        lines.append(f"Owed deploy:  {owed.mode or 'deploy'} ({owed.reason})"
                     f"{' modules ' + ', '.join(owed.update_modules) if owed.update_modules else ''}"
                     f"{', waits for task ' + owed.blocked_by if owed.blocked_by else ''}")
    return lines


def render_status(obj: dict[str, Any]) -> str:
    """The one-screen view of ``kubectl oec status``."""
    meta, spec = obj.get("metadata", {}), obj.get("spec", {})
    status = Status.from_body(obj.get("status"))
    health, deploy = status.health or Health(), status.last_deploy or LastDeploy()

    def shown(value: Any, default: str = "-") -> str:
        return default if value is None else str(value)

    def yes(value: bool | None) -> str:
        return "yes" if value else ("no" if value is not None else "-")

    lines = [
        f"Name:         {meta.get('name')} (namespace {meta.get('namespace')})",
        f"Environment:  {shown(status.environment_id)} in project {spec.get('projectId')} "
        f"({spec.get('environmentType', 'development')})",
        f"Phase:        {shown(status.phase)}",
        f"URL:          {shown(status.url)}",
        f"Branch:       {shown(status.branch)} (spec: {spec.get('branch', 'project default')})",
        f"Health:       container running {yes(health.container_running)}, database ready "
        f"{yes(health.db_ready)}, HTTP ok {yes(health.http_ok)}",
        *_day2_lines(spec, status),
        f"Last deploy:  {shown(deploy.id)} {shown(deploy.status, '')} "
        f"(started {shown(deploy.started_at)}, completed {shown(deploy.completed_at)})",
        f"Last sync:    {shown(status.last_sync_time)}",
        f"Generation:   {meta.get('generation')} (observed {shown(status.observed_generation)})",
        "Conditions:",
    ]
    if not status.conditions:
        lines.append("  (none yet: the operator has not seen this resource)")
    for c in status.conditions:
        kind, state, reason = c.get("type", ""), c.get("status", ""), c.get("reason", "")
        lines.append(f"  {kind:<12} {state:<8} {reason:<22} {c.get('message', '')}")
    return "\n".join(lines)


def secret_reader(api: kubernetes.client.ApiClient) -> SecretReader:
    """A Secret reader over the ``kubernetes`` client (this command runs outside the operator)."""
    core = kubernetes.client.CoreV1Api(api)

    async def read(namespace: str, name: str) -> dict[str, str]:
        try:
            secret = await asyncio.to_thread(core.read_namespaced_secret, name, namespace)
        except ApiException as exc:
            raise KubeError(f"GET Secret {namespace}/{name}: HTTP {exc.status}", exc.status) from None
        return {k: str(v) for k, v in (secret.data or {}).items()}
    return read


#: What ``kubectl oec`` needs when the resource names no Secret (the operator's own message is about
#: the operator's configuration, which this command does not read).
NO_CREDENTIALS = ("no credentials: the resource has no spec.credentialsSecretRef, so kubectl oec needs an OEC.sh "
                  "API key in its own environment: export OEC_API_KEY=<key> (or OEC_API_KEY_SECRET=<namespace>/"
                  "<Secret> holding it), and OEC_API_URL=<API root> for any API but production (e.g. the simulator)")


async def call_api(api: kubernetes.client.ApiClient, namespace: str, ref: SecretKeyRef | None, api_url: str | None,
                   call: Callable[[OecClient], Awaitable[T]]) -> T:
    """One OEC.sh call with the API key of ``ref`` in ``namespace`` (else the configured default).

    Raises:
        PluginError: no credentials, or the API failed or is unreachable.
    """
    try:
        config = load_config()
    except ConfigError as exc:
        raise PluginError(str(exc)) from None
    if secret_of(namespace, ref, config) is None and config.api_key is None:
        raise PluginError(NO_CREDENTIALS)
    try:
        key = await resolve_api_key(secret_reader(api), namespace, ref, config)
    except CredentialsError as exc:
        raise PluginError(str(exc)) from None
    url = api_url or config.api_url
    async with make_http_client(url, timeout=config.request_timeout) as http:
        try:
            return await call(OecClient(http, key))
        except OecTransportError:
            raise PluginError(f"cannot reach the OEC.sh API at {url}") from None
        except OecError as exc:
            raise PluginError(str(exc)) from None


async def fetch_logs(obj: dict[str, Any], api: kubernetes.client.ApiClient, api_url: str | None,
                     lines: int, task: str | None) -> str:
    """The deploy log of the resource's environment, with the resource's own credentials.

    Raises:
        PluginError: no environment yet, no credentials, or the API failed or is unreachable.
    """
    environment_id = Status.from_body(obj.get("status")).environment_id
    if not environment_id:
        raise PluginError("the resource has no OEC.sh environment yet (status.environmentId is empty)")
    spec = OdooEnvironmentSpec.from_body(obj.get("spec", {}))
    log = await call_api(api, obj["metadata"]["namespace"], spec.credentials_secret_ref, api_url,
                         lambda client: client.get_logs(environment_id, task_id=task, lines=lines))
    header = f"# task {log.task_id or '-'}, {log.lines} lines{' (truncated)' if log.truncated else ''}"
    return f"{header}\n{log.log}".rstrip()


#: Kubernetes name rules for the ``generateName`` of an ``OdooBackup`` (room for 5 random characters).
_NAME_MAX = 57


def backup_manifest(environment: str, namespace: str, *, retention: str, notes: str | None,
                    include_filestore: bool, credentials: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``OdooBackup`` that ``kubectl oec backup`` creates for the environment object
    ``environment`` (the apiserver completes the name: ``<environment>-<5 random characters>``),
    with the environment's ``credentialsSecretRef`` (read with it after the environment is gone)."""
    prefix = re.sub(r"-+$", "", environment[:_NAME_MAX]) + "-"
    spec: dict[str, Any] = {"environmentRef": {"name": environment}, "retention": retention,
                            "includeFilestore": include_filestore}
    if notes:
        spec["notes"] = notes
    if credentials:
        spec["credentialsSecretRef"] = dict(credentials)
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "OdooBackup",
            "metadata": {"generateName": prefix, "namespace": namespace, "labels": {"oec.sh/environment": environment}},
            "spec": spec}


def _create(api: kubernetes.client.ApiClient, namespace: str, plural: str, body: dict[str, Any]) -> str:
    """Create an object of our group in ``namespace``; returns its name (``generateName`` fills it).

    Raises:
        PluginError: the apiserver refused it (its status and reason, e.g. a CEL rule's message).
    """
    try:
        created = cast(dict[str, Any], kubernetes.client.CustomObjectsApi(api).create_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, body))
    except ApiException as exc:
        raise PluginError(f"cannot create the {plural[:-1]}: HTTP {exc.status} {_message(exc)}") from None
    return str(created["metadata"]["name"])


def _message(exc: ApiException) -> str:
    """The apiserver's own message of a refusal (it names the field), else the HTTP reason."""
    try:
        message = json.loads(exc.body or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message or exc.reason)


def create_backup(api: kubernetes.client.ApiClient, namespace: str, environment: str, args: argparse.Namespace) -> str:
    """Create an ``OdooBackup`` of ``environment`` now; returns the line to print (its name)."""
    found = _get(api, namespace, environment)  # a clear error for a missing environment
    body = backup_manifest(environment, namespace, retention=args.retention, notes=args.notes,
                           include_filestore=not args.no_filestore,
                           credentials=(found.get("spec") or {}).get("credentialsSecretRef"))
    name = _create(api, namespace, BACKUP_PLURAL, body)
    return (f"odoobackup/{name} created (environment {environment}, retention {args.retention}); "
            f"follow it with: kubectl get odoobackup {name} -n {namespace} -w")


def _records(api: kubernetes.client.ApiClient, namespace: str) -> dict[str, str]:
    """OEC.sh backup id -> the ``OdooBackup`` of ``namespace`` that records it."""
    records: dict[str, str] = {}
    for item in _backup_items(api, namespace):
        backup_id = (item.get("status") or {}).get("backupId") or (item.get("spec") or {}).get("backupId")
        if backup_id:
            records[str(backup_id)] = str(item["metadata"]["name"])
    return records


def render_backups(backups: list[Backup], total: int, records: dict[str, str]) -> str:
    """The table of ``kubectl oec backups``: newest first, with the ``OdooBackup`` recording each."""
    rows = [("ID", "TYPE", "STATUS", "SIZE", "COMPLETED", "EXPIRES", "ODOOBACKUP")]
    for b in backups:
        rows.append((b.id, b.backup_type, b.status, "-" if b.total_size is None else str(b.total_size),
                     rfc3339(b.completed_at) or "-",
                     rfc3339(b.expires_at) or "never",
                     records.get(b.id, "-")))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    if total > len(backups):
        lines.append(f"({len(backups)} newest of {total} backups shown)")
    if not backups:
        lines.append("(no backups)")
    return "\n".join(lines)


#: Backups listed by ``kubectl oec backups`` (the newest; one API read).
BACKUPS_SHOWN = 100


def environment_of_backups(name: str, namespace: str, items: list[dict[str, Any]]) -> tuple[str, SecretKeyRef | None]:
    """The OEC.sh environment id and ``credentialsSecretRef`` of the deleted ``OdooEnvironment``
    ``name``, from the newest ``OdooBackup`` of ``items`` that references it and has an id (e.g.
    its final backup; ``docs/backups.md`` §1).

    Raises:
        PluginError: no such ``OdooBackup``.
    """
    mine = [item for item in items
            if ((item.get("spec") or {}).get("environmentRef") or {}).get("name") == name
            and (item.get("status") or {}).get("environmentId")]
    if not mine:
        raise PluginError(f"odooenvironment {name!r} not found in namespace {namespace!r}, and no OdooBackup "
                          "of the namespace references it with an OEC.sh environment id")
    newest = max(mine, key=lambda item: str((item.get("metadata") or {}).get("creationTimestamp") or ""))
    spec = OdooBackupSpec.from_body(newest.get("spec") or {})
    return str(newest["status"]["environmentId"]), spec.credentials_secret_ref


def _backup_items(api: kubernetes.client.ApiClient, namespace: str) -> list[dict[str, Any]]:
    """The ``OdooBackup`` objects of ``namespace``."""
    try:
        listing = cast(dict[str, Any], kubernetes.client.CustomObjectsApi(api).list_namespaced_custom_object(
            GROUP, VERSION, namespace, BACKUP_PLURAL))
    except ApiException as exc:
        raise PluginError(f"cannot list odoobackups: HTTP {exc.status} {exc.reason}") from None
    return list(listing.get("items") or [])


def _environment_for_backups(api: kubernetes.client.ApiClient, namespace: str,
                             name: str) -> tuple[str, SecretKeyRef | None]:
    """The environment id and credentials for ``kubectl oec backups NAME``: the ``OdooEnvironment``'s,
    else (it was deleted) those its ``OdooBackup`` objects recorded.

    Raises:
        PluginError: no environment id yet, or neither the object nor a backup of it exists.
    """
    try:
        obj = cast(dict[str, Any], kubernetes.client.CustomObjectsApi(api).get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name))
    except ApiException as exc:
        if exc.status != 404:
            raise PluginError(f"cannot read odooenvironment {name!r}: HTTP {exc.status} {exc.reason}") from None
        return environment_of_backups(name, namespace, _backup_items(api, namespace))
    environment_id = Status.from_body(obj.get("status")).environment_id
    if not environment_id:
        raise PluginError("the resource has no OEC.sh environment yet (status.environmentId is empty)")
    return environment_id, OdooEnvironmentSpec.from_body(obj.get("spec", {})).credentials_secret_ref


async def list_backups(api: kubernetes.client.ApiClient, namespace: str, name: str, api_url: str | None) -> str:
    """``kubectl oec backups``: every backup of the environment on OEC.sh (manual, scheduled,
    pre-deploy...: whoever made it) and which ``OdooBackup`` records each; for a deleted
    environment, the one its ``OdooBackup`` objects name.

    Raises:
        PluginError: no environment (nor backup of it), no credentials, or the API failed.
    """
    environment_id, ref = await asyncio.to_thread(_environment_for_backups, api, namespace, name)
    page = await call_api(api, namespace, ref, api_url,
                          lambda client: client.list_backups(environment_id, page=1, page_size=BACKUPS_SHOWN))
    return render_backups(page.items, page.total, _records(api, namespace))


async def download_link(record: dict[str, Any], api: kubernetes.client.ApiClient, api_url: str | None,
                        expires_in: int) -> str:
    """``kubectl oec backup download``: ask OEC.sh for presigned links to the ``OdooBackup``'s
    data now (they are credentials: printed, never stored; ``docs/backups.md`` §1).

    Raises:
        PluginError: the backup is not Completed (its phase and what to do; nothing is sent), no
            credentials, or the API refused.
    """
    status = OdooBackupStatus.from_body(record.get("status"))
    spec = OdooBackupSpec.from_body(record.get("spec") or {})
    backup_id = status.backup_id or spec.backup_id
    name, namespace = record["metadata"]["name"], record["metadata"]["namespace"]
    if status.phase in ("Pending", "Running"):
        raise PluginError(f"odoobackup {name!r} is {status.phase}: a download link exists once it is Completed "
                          f"(kubectl wait --for=condition=Ready odoobackup/{name} -n {namespace})")
    if status.phase in ("Failed", "Expired"):
        raise PluginError(f"odoobackup {name!r} is {status.phase}: nothing to download"
                          + (f" ({status.message})" if status.message else ""))
    if not backup_id:
        raise PluginError(f"odoobackup {name!r} has no OEC.sh backup yet (status.backupId is empty)")
    ref = spec.credentials_secret_ref
    try:
        environment = _get(api, namespace, spec.environment_ref.name)
        ref = OdooEnvironmentSpec.from_body(environment.get("spec", {})).credentials_secret_ref or ref
    except PluginError:
        pass  # the environment object is gone: spec.credentialsSecretRef, else the default key
    link = await call_api(api, namespace, ref, api_url,
                          lambda client: client.backup_download(backup_id, expires_in=expires_in))
    lines = [f"# backup {backup_id}: links valid until {link.expires_at.strftime('%Y-%m-%dT%H:%M:%SZ')}; "
             "anyone holding them can download the data",
             f"database:  {link.database_url}"]
    if link.filestore_url:
        lines.append(f"filestore: {link.filestore_url}")
    if link.manifest_url:
        lines.append(f"manifest:  {link.manifest_url}")
    return "\n".join(lines)


#: The annotation each token command sets to a fresh token (one action per new token).
TOKEN_COMMANDS = {"redeploy": REDEPLOY_REQUESTED_AT, "reconcile": RECONCILE_REQUESTED_AT,
                  "restart": RESTART_REQUESTED_AT}
#: The ``spec.powerState`` each power command sets.
POWER_COMMANDS = {"start": "Running", "stop": "Stopped"}


def nudge(command: str, token: str) -> tuple[dict[str, Any], str]:
    """The JSON merge patch a nudging command sends, and what it set (``key=value``).

    A token command sets its annotation to ``token``; ``start``/``stop`` set ``spec.powerState``
    (when Git also sets ``spec.powerState``, the next GitOps sync sets it back).
    """
    if command in TOKEN_COMMANDS:
        key = TOKEN_COMMANDS[command]
        return {"metadata": {"annotations": {key: token}}}, f"{key}={token}"
    state = POWER_COMMANDS[command]
    return {"spec": {"powerState": state}}, f"spec.powerState={state}"


def _patch(api: kubernetes.client.ApiClient, namespace: str, name: str, command: str) -> str:
    body, what = nudge(command, now_rfc3339())
    _get(api, namespace, name)  # a clear error for a missing resource
    try:
        kubernetes.client.CustomObjectsApi(api).patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, body
        )
    except ApiException as exc:
        raise PluginError(f"cannot patch odooenvironment {name!r}: HTTP {exc.status} {exc.reason}") from None
    return what


#: ``--not-after`` durations: ``90s``, ``30m``, ``1h``, ``1h30m``.
DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> datetime.timedelta:
    """``1h``, ``30m``, ``90s``, ``1h30m`` -> a positive duration.

    Raises:
        PluginError: not such a duration, or zero.
    """
    match = DURATION.match(text.strip())
    if not match or not any(match.groups()):
        raise PluginError(f"--not-after {text!r}: expected a duration such as 1h, 30m, 90s or 1h30m")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    duration = datetime.timedelta(hours=hours, minutes=minutes, seconds=seconds)
    if not duration:
        raise PluginError("--not-after must be longer than 0s")
    return duration


def restore_manifest(env: dict[str, Any], *, confirm: str, not_after: datetime.datetime,
                     backup: str | None = None, backup_id: str | None = None) -> dict[str, Any]:
    """The ``OdooRestore`` that ``kubectl oec restore`` creates for the ``OdooEnvironment`` ``env``:
    named after it (``generateName``), the backup by ``OdooBackup`` name or OEC id, the typed
    confirmation, ``notAfter`` (``docs/backups.md`` §3)."""
    meta = env["metadata"]
    source: dict[str, Any] = {"backupRef": {"name": backup}} if backup else {"backupId": backup_id}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "OdooRestore",
            "metadata": {"generateName": f"{meta['name'][:40]}-restore-", "namespace": meta["namespace"]},
            "spec": {"environmentRef": {"name": meta["name"]}, **source, "confirmEnvironmentName": confirm,
                     "notAfter": rfc3339(not_after)}}


def confirmation(env: dict[str, Any], given: str | None, backup: str, interactive: bool,
                 ask: Callable[[str], str] = input) -> str:
    """The environment's name, typed by the user (or ``--yes-i-mean-it NAME``), as the vendor's
    own tool asks before a restore: it must equal the environment's OEC.sh name.

    Raises:
        PluginError: no confirmation (not interactive and no flag) or a wrong name.
    """
    name = OdooEnvironmentSpec.from_body(env.get("spec", {})).display_name(env["metadata"]["name"])
    if given is None:
        if not interactive:
            raise PluginError("not run interactively: confirm with --yes-i-mean-it <the environment's name>")
        given = ask(f"This replaces the database and filestore of environment {name!r} with backup {backup} "
                    f"(OEC.sh takes a safety backup first).\nType the environment's name to confirm: ").strip()
    if given != name:
        raise PluginError(f"the confirmation {given!r} is not the environment's name {name!r}; nothing was done")
    return given


def _restore(api: kubernetes.client.ApiClient, namespace: str, args: argparse.Namespace) -> str:
    env = _get(api, namespace, args.name)
    if not Status.from_body(env.get("status")).environment_id:
        raise PluginError(f"odooenvironment {args.name!r} has no OEC.sh environment yet")
    backup = f"OdooBackup {args.backup}" if args.backup else f"{args.backup_id}"
    confirm = confirmation(env, args.yes_i_mean_it, backup, sys.stdin.isatty())
    not_after = datetime.datetime.now(datetime.UTC) + parse_duration(args.not_after)
    body = restore_manifest(env, confirm=confirm, not_after=not_after, backup=args.backup, backup_id=args.backup_id)
    name = _create(api, namespace, RESTORE_PLURAL, body)
    return (f"odoorestore {name!r} created: restores {backup} into odooenvironment {args.name!r} unless not started "
            f"before {body['spec']['notAfter']}; follow it with kubectl get odoorestore {name} -n {namespace}")


def parser() -> argparse.ArgumentParser:
    """The command line."""
    def cluster_flags(parser: argparse.ArgumentParser, default: Any) -> argparse.ArgumentParser:
        parser.add_argument("-n", "--namespace", default=default,
                            help="namespace (default: the context's, else default)")
        parser.add_argument("--kubeconfig", default=default,
                            help="path to the kubeconfig (default: KUBECONFIG or ~/.kube/config)")
        parser.add_argument("--context", default=default, help="kubeconfig context")
        return parser

    # The flags work before and after the command, as with kubectl (`kubectl oec status x -n ns`);
    # after it they are SUPPRESSed when absent, so they never reset what was given before it.
    common = cluster_flags(argparse.ArgumentParser(add_help=False), argparse.SUPPRESS)
    p = cluster_flags(argparse.ArgumentParser(prog="kubectl oec", description="Inspect and nudge OdooEnvironments."),
                      None)
    sub = p.add_subparsers(dest="command", required=True)
    status = sub.add_parser("status", parents=[common], help="phase, URL, health, last deploy and conditions")
    status.add_argument("name")
    logs = sub.add_parser("logs", parents=[common], help="deploy log from the OEC.sh API")
    logs.add_argument("name")
    logs.add_argument("--lines", type=int, default=200, help="number of lines (1-1000, default 200)")
    logs.add_argument("--task", help="task id (default: the latest task)")
    logs.add_argument("--api-url", help="OEC.sh API root (default: OEC_API_URL or the production API)")
    sub.add_parser("redeploy", parents=[common], help="ask the operator for a redeploy").add_argument("name")
    sub.add_parser("reconcile", parents=[common], help="ask the operator to reconcile now").add_argument("name")
    sub.add_parser("restart", parents=[common], help="ask the operator for a restart").add_argument("name")
    sub.add_parser("start", parents=[common], help="set spec.powerState to Running").add_argument("name")
    sub.add_parser("stop", parents=[common], help="set spec.powerState to Stopped").add_argument("name")
    backup = sub.add_parser("backup", parents=[common],
                            help="back up NAME now (a new OdooBackup), or `backup download NAME`: a download link")
    backup.add_argument("words", nargs="+", metavar="NAME",
                        help="[create] the OdooEnvironment, or `download` and an OdooBackup")
    backup.add_argument("--retention", choices=["daily", "weekly", "monthly", "yearly", "permanent"],
                        help="how long OEC.sh keeps the backup (default monthly)")
    backup.add_argument("--notes", help="notes stored with the backup (at most 400 characters)")
    backup.add_argument("--no-filestore", action="store_true", help="back up the database only")
    backup.add_argument("--expires-in", type=int,
                        help="download: seconds the links stay valid (300-3600, default 300)")
    backup.add_argument("--api-url", help="OEC.sh API root (default: OEC_API_URL or the production API)")
    backups = sub.add_parser("backups", parents=[common], help="the environment's backups on OEC.sh")
    backups.add_argument("name")
    backups.add_argument("--api-url", help="OEC.sh API root (default: OEC_API_URL or the production API)")
    restore = sub.add_parser("restore", parents=[common], help="restore a backup into the environment (an OdooRestore)")
    restore.add_argument("name")
    source = restore.add_mutually_exclusive_group(required=True)
    source.add_argument("--backup", help="an OdooBackup of the namespace")
    source.add_argument("--backup-id", help="an OEC.sh backup id of the environment")
    restore.add_argument("--not-after", default="1h", help="the restore is refused if not started within this (1h)")
    restore.add_argument("--yes-i-mean-it", metavar="ENVNAME",
                         help="the environment's name, instead of typing it (needed when not interactive)")
    return p


#: The flags of ``kubectl oec backup`` that only one of its actions takes.
_CREATE_FLAGS = {"retention": "--retention", "notes": "--notes", "no_filestore": "--no-filestore"}
_DOWNLOAD_FLAGS = {"expires_in": "--expires-in"}


def backup_command(args: argparse.Namespace) -> tuple[str, str]:
    """``("create", environment)`` or ``("download", odoobackup)`` from ``kubectl oec backup``'s
    words (``NAME``, ``create NAME``, ``download NAME``); fills the defaults of the action's flags.

    Raises:
        PluginError: a missing or extra name, or a flag the action does not take (never ignored).
    """
    words = list(args.words)
    usage = ("usage: kubectl oec backup [create] ENVIRONMENT | kubectl oec backup download ODOOBACKUP "
             "(an environment named download or create: kubectl oec backup create NAME)")
    if words[0] == "download" and len(words) == 1:
        raise PluginError(f"backup download needs the OdooBackup to download; {usage}")
    if words[0] in ("create", "download"):
        action, words = words[0], words[1:]
    else:
        action = "create"
    if len(words) != 1:
        raise PluginError(usage)
    wrong = _DOWNLOAD_FLAGS if action == "create" else _CREATE_FLAGS
    for dest, flag in wrong.items():
        if getattr(args, dest):
            raise PluginError(f"{flag} does not apply to backup {action}")
    if action == "download":
        args.expires_in = 300 if args.expires_in is None else args.expires_in
        if not 300 <= args.expires_in <= 3600:
            raise PluginError("--expires-in must be between 300 and 3600 seconds")
    else:
        args.retention = args.retention or "monthly"
        if args.notes and len(args.notes) > 400:
            raise PluginError("--notes takes at most 400 characters")
    return action, words[0]


def _backup(api: kubernetes.client.ApiClient, namespace: str, args: argparse.Namespace) -> str:
    """``backup [create] NAME`` or ``backup download NAME``."""
    action, name = backup_command(args)
    if action == "download":
        record = _get(api, namespace, name, BACKUP_PLURAL)
        return asyncio.run(download_link(record, api, args.api_url, args.expires_in))
    return create_backup(api, namespace, name, args)


def run(argv: Sequence[str]) -> str:
    """Run one command and return what to print.

    Raises:
        PluginError: anything the user must know about.
    """
    args = parser().parse_args(argv)
    api, namespace = _api(args)
    with api:
        if args.command == "status":
            return render_status(_get(api, namespace, args.name))
        if args.command == "backup":
            return _backup(api, namespace, args)
        if args.command == "backups":
            return asyncio.run(list_backups(api, namespace, args.name, args.api_url))
        if args.command == "logs":
            return asyncio.run(fetch_logs(_get(api, namespace, args.name), api, args.api_url, args.lines, args.task))
        if args.command == "restore":
            return _restore(api, namespace, args)
        what = _patch(api, namespace, args.name, args.command)
        return f"{args.command} requested for odooenvironment {args.name!r} ({what})"


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (``kubectl-oec``)."""
    try:
        print(run(sys.argv[1:] if argv is None else argv))
    except PluginError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
