"""Command line of the OEC.sh API simulator: ``python -m oec_simulator`` / ``oec-simulator``.

Builds a :class:`~oec_simulator.config.SimulatorConfig` from ``--config`` plus flags, serves
:func:`~oec_simulator.app.create_app` on HOST:PORT, writes the bound port to ``--port-file``,
prints ``oec-simulator listening on http://HOST:PORT`` and logs one line per API request to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import signal
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from pydantic import SecretStr, ValidationError

from .app import create_app
from .config import (
    DEMO_RO_KEY,
    DEMO_RW_KEY,
    KeyConfig,
    ProjectConfig,
    SimulatorConfig,
    demo_keys,
    demo_project,
)

DESCRIPTION = f"""\
In-memory stand-in for the OEC.sh public API (https://api.oec.sh/api/public/v1), for demos and tests.
Public API under /api/public/v1, admin API (no auth) under /_sim.

With no --project (and none in --config), a demo project is seeded:
  id 3f0c9a52-7a1e-4c1b-9d2e-5b8f6a4e2c10, name "demo", default_branch main, odoo_version 17.0.
With no --key (and none in --config), these org-scoped demo keys are accepted:
  {DEMO_RW_KEY}   (full access)
  {DEMO_RO_KEY}   (read-only)
"""


class CliError(Exception):
    """A user error on the command line (printed, exit status 2)."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parse_project(value: str) -> ProjectConfig:
    """``UUID[:NAME[:DEFAULT_BRANCH]]`` → ProjectConfig (name defaults to ``project-<first 8>``)."""
    parts = value.split(":", 2)
    try:
        project_id = uuid.UUID(parts[0])
    except ValueError as exc:
        raise CliError(f"--project {value!r}: {parts[0]!r} is not a UUID") from exc
    name = parts[1] if len(parts) > 1 and parts[1] else f"project-{str(project_id)[:8]}"
    data: dict[str, Any] = {"id": project_id, "name": name}
    if len(parts) > 2 and parts[2]:
        data["default_branch"] = parts[2]
    return ProjectConfig.model_validate(data)


def _parse_key(value: str) -> KeyConfig:
    """``KEY`` (org scope) or ``KEY@PROJECT_UUID`` (project scope) → KeyConfig."""
    key, sep, project = value.partition("@")
    try:
        if sep:
            return KeyConfig(key=SecretStr(key), scope="project", project_id=uuid.UUID(project))
        return KeyConfig(key=SecretStr(key))
    except (ValueError, ValidationError) as exc:
        # Never print the key itself.
        raise CliError("--key: invalid key (format ^oec_live_(ro|rw)_[A-Za-z0-9_-]{20,200}$[@PROJECT_UUID])") from exc


def _parse_variant(value: str) -> tuple[str, Any]:
    """``NAME=VALUE``; VALUE is parsed as JSON when possible (``204``, ``true``), else kept as text."""
    name, sep, raw = value.partition("=")
    if not sep or not name:
        raise CliError(f"--variant {value!r}: expected NAME=VALUE")
    try:
        parsed: Any = json.loads(raw)
    except ValueError:
        parsed = raw
    return name.strip(), parsed


def _parse_fault(value: str) -> dict[str, str]:
    """``KEY=VALUE,KEY=VALUE,...`` → a FaultRule mapping (values are validated by the model)."""
    rule: dict[str, str] = {}
    for part in value.split(","):
        name, sep, raw = part.partition("=")
        if not sep or not name.strip():
            raise CliError(f"--fault {value!r}: expected KEY=VALUE[,KEY=VALUE...], got {part!r}")
        rule[name.strip()] = raw.strip()
    return rule


def _parse_latency(value: str) -> tuple[str, float]:
    """``ROUTE=SECONDS`` (``*`` = every route) → (route, seconds)."""
    route, sep, raw = value.partition("=")
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not sep or not route.strip() or seconds < 0:
        raise CliError(f"--latency {value!r}: expected ROUTE=SECONDS with SECONDS >= 0")
    return route.strip(), seconds


def _add_fault_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "fault injection",
        "Rules as in POST /_sim/faults: kind=error|reset|timeout|rate_limit|conflict, when=before|after, "
        "route, method, count, share (0..1), seconds/after_seconds (window from the start), status, code, "
        "retry_after, hint=full|body_only|none (rate_limit), task_id (conflict), hold_seconds (timeout). "
        "Example: --fault kind=error,status=503,share=0.1,route=environment_status",
    )
    group.add_argument("--fault", action="append", default=[], metavar="KEY=VALUE,...", help="install a fault rule")
    group.add_argument("--fault-seed", type=int, metavar="N", help="seed of the share draws (default random)")
    group.add_argument(
        "--latency",
        action="append",
        default=[],
        metavar="ROUTE=SECONDS",
        help="added latency per route name (* = every route; repeatable)",
    )
    group.add_argument("--outage-seconds", type=float, metavar="S", help="API outage lasting S seconds")
    group.add_argument(
        "--outage-at", type=float, metavar="T", help="the outage starts T seconds after start (default 0)"
    )
    group.add_argument(
        "--outage-mode", choices=["503", "reset"], help="outage answers 503 (default) or resets connections"
    )
    group.add_argument("--fail-next-deploys", type=int, metavar="N", help="the next N deploy tasks fail")
    group.add_argument("--fail-next-backups", type=int, metavar="N", help="the next N backup tasks fail")
    group.add_argument("--fail-next-restores", type=int, metavar="N", help="the next N restore tasks fail")
    group.add_argument(
        "--fail-deploy-log",
        action="append",
        default=[],
        metavar="LINE",
        help="log line a failed deploy shows at its failure (repeatable; default two pip ERROR lines)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (flags documented in ``--help``)."""
    parser = argparse.ArgumentParser(
        prog="oec-simulator", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1; loopback only)")
    parser.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host")
    parser.add_argument("--port", type=int, default=8765, help="TCP port (default 8765; 0 = pick a free one)")
    parser.add_argument("--port-file", type=Path, help="write the bound port to this file once listening")
    parser.add_argument("--config", type=Path, help="YAML or JSON file with a SimulatorConfig")
    parser.add_argument(
        "--project",
        action="append",
        default=[],
        metavar="UUID[:NAME[:DEFAULT_BRANCH]]",
        help="add a project (repeatable)",
    )
    parser.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="KEY[@PROJECT_UUID]",
        help="accept an API key, org-scoped or scoped to one project (repeatable)",
    )
    parser.add_argument("--deploy-seconds", type=float, help="deploy task duration (default 5)")
    parser.add_argument("--destroy-seconds", type=float, help="destroy task duration (default 3)")
    parser.add_argument("--backup-seconds", type=float, help="backup task duration (default 3)")
    parser.add_argument("--restore-seconds", type=float, help="restore task duration (default 4)")
    parser.add_argument(
        "--no-auto-backups",
        action="store_true",
        help="OEC's own scheduled and pre-deploy backups do not appear (default: they do)",
    )
    parser.add_argument("--read-limit", type=int, help="reads per minute per key (default 120)")
    parser.add_argument("--write-limit", type=int, help="writes per minute per rw key (default 20)")
    parser.add_argument(
        "--request-log-limit",
        type=int,
        metavar="N",
        help="keep the newest N entries of GET /_sim/requests (default 100000)",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a config field / API variant, e.g. delete_status=204, error_envelope=toplevel, "
        "rate_limit_headers=none, idempotency_mode=strict (repeatable)",
    )
    parser.add_argument(
        "--allow-insecure-webhook-urls",
        action="store_true",
        help="accept http and loopback/private webhook URLs (tests and demos; default: https to public hosts)",
    )
    parser.add_argument("--log-level", default="INFO", help="stderr log level (default INFO)")
    _add_fault_flags(parser)
    return parser


def _apply_fault_flags(args: argparse.Namespace, data: dict[str, Any]) -> None:
    """Merge the fault-injection flags into the config mapping ``data``."""
    if args.fault:
        data["faults"] = list(data.get("faults") or []) + [_parse_fault(f) for f in args.fault]
    if args.fault_seed is not None:
        data["fault_seed"] = args.fault_seed
    if args.latency:
        data["latency"] = {**(data.get("latency") or {}), **dict(_parse_latency(v) for v in args.latency)}
    if args.outage_seconds is not None:
        outage: dict[str, Any] = {"seconds": args.outage_seconds, "after_seconds": args.outage_at or 0.0}
        if args.outage_mode is not None:
            outage["mode"] = args.outage_mode
        data["outage"] = outage
    elif args.outage_at is not None or args.outage_mode is not None:
        raise CliError("--outage-at and --outage-mode need --outage-seconds")
    if args.fail_next_deploys is not None:
        data["fail_next_deploys"] = args.fail_next_deploys
    if args.fail_next_backups is not None:
        data["fail_next_backups"] = args.fail_next_backups
    if args.fail_next_restores is not None:
        data["fail_next_restores"] = args.fail_next_restores
    if args.fail_deploy_log:
        data["fail_deploy_log"] = list(args.fail_deploy_log)


def build_config(args: argparse.Namespace) -> SimulatorConfig:
    """SimulatorConfig from ``--config`` and the flags; seeds the demo project/keys when none are given."""
    data: dict[str, Any] = {}
    if args.config is not None:
        try:
            loaded = yaml.safe_load(args.config.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise CliError(f"--config {args.config}: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise CliError(f"--config {args.config}: expected a mapping")
        data = dict(loaded or {})
    for flag, field in (
        ("deploy_seconds", "deploy_seconds"),
        ("destroy_seconds", "destroy_seconds"),
        ("backup_seconds", "backup_seconds"),
        ("restore_seconds", "restore_seconds"),
        ("read_limit", "read_limit"),
        ("write_limit", "write_limit"),
        ("request_log_limit", "request_log_limit"),
    ):
        value = getattr(args, flag)
        if value is not None:
            data[field] = value
    if args.no_auto_backups:
        data["auto_backups"] = False
    if args.allow_insecure_webhook_urls:
        data["webhook_allow_insecure_urls"] = True
    for variant in args.variant:
        name, value = _parse_variant(variant)
        if name in ("projects", "keys", "faults", "outage"):
            raise CliError("use --project / --key / --fault / --outage-seconds for projects, keys, faults, outages")
        data[name] = value
    _apply_fault_flags(args, data)
    try:
        config = SimulatorConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise CliError(f"invalid configuration: {problems}") from exc
    projects = list(config.projects) + [_parse_project(p) for p in args.project]
    keys = list(config.keys) + [_parse_key(k) for k in args.key]
    config.projects = projects or [demo_project()]
    config.keys = keys or demo_keys()
    return config


def _write_port_file(path: Path, port: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(f"{port}\n")
    os.replace(tmp, path)


async def serve(config: SimulatorConfig, host: str, port: int, port_file: Path | None) -> None:
    """Serve the simulator until SIGINT/SIGTERM."""
    app = create_app(config)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1] if runner.addresses else port
        if port_file is not None:
            _write_port_file(port_file, bound)
        shown = f"[{host}]" if ":" in host else host
        print(f"oec-simulator listening on http://{shown}:{bound}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``oec-simulator``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if not args.allow_remote and not _is_loopback(args.host):
            raise CliError(f"--host {args.host} is not a loopback address; add --allow-remote to expose it")
        if args.log_level.upper() not in logging.getLevelNamesMapping():
            raise CliError(f"--log-level {args.log_level!r} is not a logging level")
        if not 0 <= args.port <= 65535:
            raise CliError("--port must be 0..65535")
        config = build_config(args)
    except CliError as exc:
        parser.print_usage(sys.stderr)
        print(f"oec-simulator: error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    try:
        asyncio.run(serve(config, args.host, args.port, args.port_file))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"oec-simulator: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
