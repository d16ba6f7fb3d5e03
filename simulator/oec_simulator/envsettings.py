"""Sizes and custom domain of an environment (docs/oec-api.md §9.1, §11.2; §1 rows 31-34).

Pure rules on :class:`~oec_simulator.store.Environment` objects, used by the store for the public
create and PATCH and for the admin API's dashboard edits:

* a size PATCH is *requested* at once and *applied* when the next deploy, start, restart or
  quick-update completes ("takes effect on the next deploy or restart", vendor client);
* the disk never shrinks (``disk_shrink``), sizes above the plan's maximum are refused
  (``max_cpu_cores``, ``max_ram_mb``, ``max_disk_gb``);
* a new custom domain starts unverified and verifies by itself ``domain_verify_seconds`` later
  (standing in for the DNS record the user creates); a domain belongs to one live environment.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .config import SimulatorConfig
from .errors import ApiError, field_error

if TYPE_CHECKING:
    from .store import Environment

#: A hostname with an optional leading ``*.`` (vendor client: "domain regex allows a leading *."),
#: at most 253 characters, labels of 1-63 letters, digits and inner hyphens, a letter-only TLD.
DOMAIN_PATTERN = r"^(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
DOMAIN_RE = re.compile(DOMAIN_PATTERN)
#: The three size fields, in API order, with the config field of their plan maximum and unit.
SIZE_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("cpu_cores", "max_cpu_cores", "CPU cores"),
    ("ram_mb", "max_ram_mb", "MB of RAM"),
    ("disk_gb", "max_disk_gb", "GB of disk"),
)


def requested_sizes(env: Environment) -> dict[str, float | int]:
    """``{cpu_cores, ram_mb, disk_gb}`` as last requested (create, PATCH or dashboard edit)."""
    return {"cpu_cores": env.cpu_cores, "ram_mb": env.ram_mb, "disk_gb": env.disk_gb}


def applied_sizes(env: Environment) -> dict[str, float | int]:
    """``{cpu_cores, ram_mb, disk_gb}`` the environment runs with."""
    return {"cpu_cores": env.applied_cpu_cores, "ram_mb": env.applied_ram_mb, "disk_gb": env.applied_disk_gb}


def apply_sizes(env: Environment) -> dict[str, float | int]:
    """Make the requested sizes the running ones (a deploy, start, restart or quick-update
    completed); returns them."""
    env.applied_cpu_cores, env.applied_ram_mb, env.applied_disk_gb = env.cpu_cores, env.ram_mb, env.disk_gb
    return requested_sizes(env)


def check_plan_limits(config: SimulatorConfig, sizes: dict[str, Any]) -> None:
    """Refuse a size above the plan's maximum *(sim)*: 422 ``quota_exceeded`` with extras ``field``
    and ``limit``, the message naming the limit. ``sizes``: field → value (``None`` = not given).

    The sources do not say whether the plan's ``max_cpu_cores``/``max_ram_mb``/``max_disk_gb``
    (``GET /org``) bound one environment or the organization; the simulator checks each
    environment on its own.
    """
    for name, limit_field, unit in SIZE_FIELDS:
        value = sizes.get(name)
        limit = getattr(config, limit_field)
        if value is not None and limit is not None and value > limit:
            raise ApiError(
                422,
                "quota_exceeded",
                f"{name} {value} is above the plan's limit of {limit} {unit} per environment ({limit_field}).",
                extras={"field": name, "limit": limit},
            )


def check_no_shrink(config: SimulatorConfig, env: Environment, disk_gb: int | None) -> None:
    """With ``disk_shrink=refuse``: 422 validation error on ``disk_gb`` when it is below the disk
    the environment has or was last given (the larger of applied and requested)."""
    if disk_gb is None or config.disk_shrink == "allow":
        return
    current = max(env.disk_gb, env.applied_disk_gb)
    if disk_gb < current:
        raise field_error(
            "body",
            "disk_gb",
            f"disk_gb cannot shrink: the environment's disk is {current} GB, {disk_gb} GB was asked.",
            "value_error",
        )


def set_sizes(env: Environment, sizes: dict[str, Any]) -> None:
    """Store the given (not ``None``) sizes as requested; they apply at the next deploy/restart."""
    if sizes.get("cpu_cores") is not None:
        env.cpu_cores = float(sizes["cpu_cores"])
    if sizes.get("ram_mb") is not None:
        env.ram_mb = int(sizes["ram_mb"])
    if sizes.get("disk_gb") is not None:
        env.disk_gb = int(sizes["disk_gb"])


def check_domain_free(envs: Iterable[Environment], env_id: str, domain: str) -> None:
    """409 ``domain_in_use`` *(sim)* when another live environment of the organization has
    ``domain`` as its custom domain (compared case-insensitively)."""
    wanted = domain.lower()
    for other in envs:
        if other.id != env_id and not other.deleted and (other.custom_domain or "").lower() == wanted:
            raise ApiError(409, "domain_in_use", f"The domain {domain} is already used by another environment.")


def set_domain(env: Environment, domain: str, now: float) -> bool:
    """Set (``""``: remove) the custom domain; a new domain starts unverified and its automatic
    verification timer starts at ``now``. Returns whether anything changed."""
    new = domain or None
    if new == env.custom_domain:
        return False
    env.custom_domain = new
    env.custom_domain_verified = False
    env.domain_set_at = now if new is not None else None
    return True


def verification_due(config: SimulatorConfig, env: Environment) -> float | None:
    """When the pending custom domain verifies by itself (epoch s), or ``None`` (nothing pending,
    or ``domain_verify_seconds`` is null)."""
    if env.custom_domain is None or env.custom_domain_verified or env.domain_set_at is None:
        return None
    if config.domain_verify_seconds is None:
        return None
    return env.domain_set_at + config.domain_verify_seconds
