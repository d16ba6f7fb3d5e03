"""Operator configuration, read from ``OEC_*`` environment variables (pydantic-settings).

| Variable | Default | Meaning |
|---|---|---|
| ``OEC_API_URL`` | ``https://api.oec.sh/api/public/v1`` | API root (or a simulator's URL) |
| ``OEC_API_KEY`` | unset | default API key for resources without ``spec.credentialsSecretRef`` |
| ``OEC_API_KEY_SECRET`` | unset | ``namespace/name`` of a Secret holding the default key (instead of ``OEC_API_KEY``) |
| ``OEC_API_KEY_SECRET_KEY`` | ``apiKey`` | key inside that Secret |
| ``OEC_POLL_INTERVAL`` | ``60`` | seconds between status polls of a steady environment |
| ``OEC_FAST_POLL_INTERVAL`` | ``5`` | seconds between polls while work is in flight (deploying, destroying) |
| ``OEC_MIN_POLL_INTERVAL`` | ``10`` | floor of the per-resource ``oec.sh/poll-interval`` annotation |
| ``OEC_REQUEST_TIMEOUT`` | ``30`` | seconds per OEC API request |
| ``OEC_METRICS_PORT`` | ``8081`` | Prometheus ``/metrics`` port (``0`` = off) |
| ``OEC_METRICS_ADDRESS`` | ``0.0.0.0`` | address the metrics server binds |
| ``OEC_CREDENTIALS_GRACE_PERIOD`` | ``600`` | seconds a deletion waits for lost credentials before orphaning |
| ``OEC_RATE_LIMIT_READS`` | ``120`` | reads a minute of one key, until the API's headers say otherwise (§6) |
| ``OEC_RATE_LIMIT_WRITES`` | ``20`` | writes a minute of one full-access key, likewise |
| ``OEC_RATE_LIMIT_MODE`` | ``split`` | ``split`` budgets (current API) or ``single`` (older API, §1 row 7) |
| ``OEC_POLLING`` | ``batched`` | ``batched`` lists per project; ``direct`` = the naive design (bench only) |

``split`` counts reads and writes apart; ``single`` counts every request against
``OEC_RATE_LIMIT_WRITES``. ``direct`` makes every resource read its environment and its status each
interval with no shared limiter: it exists to measure the batched design against (``make bench``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from oec_operator.oec.client import DEFAULT_BASE_URL, validate_api_key


class OperatorConfig(BaseSettings):
    """Operator settings. Raises ``pydantic.ValidationError`` on invalid values (never echoing
    the API key)."""

    model_config = SettingsConfigDict(env_prefix="OEC_", extra="ignore")

    api_url: str = DEFAULT_BASE_URL
    api_key: SecretStr | None = None
    api_key_secret: str | None = Field(default=None, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[^/]+$")
    api_key_secret_key: str = "apiKey"  # noqa: S105 - the name of a Secret data key, not a secret
    poll_interval: float = Field(default=60.0, ge=1.0, le=86400.0)
    fast_poll_interval: float = Field(default=5.0, ge=0.5, le=3600.0)
    min_poll_interval: float = Field(default=10.0, ge=0.5, le=86400.0)
    request_timeout: float = Field(default=30.0, gt=0, le=300.0)
    credentials_grace_period: float = Field(default=600.0, ge=0, le=7 * 86400.0)
    metrics_port: int = Field(default=8081, ge=0, le=65535)
    metrics_address: str = "0.0.0.0"  # noqa: S104 - inside a pod; set 127.0.0.1 on a workstation
    rate_limit_reads: int = Field(default=120, ge=1, le=1_000_000)
    rate_limit_writes: int = Field(default=20, ge=1, le=1_000_000)
    rate_limit_mode: Literal["split", "single"] = "split"
    polling: Literal["batched", "direct"] = "batched"

    @field_validator("api_key")
    @classmethod
    def _check_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value().strip():
            validate_api_key(value.get_secret_value())
            return SecretStr(value.get_secret_value().strip())
        return None

    @model_validator(mode="after")
    def _fast_not_slower(self) -> OperatorConfig:
        if self.fast_poll_interval > self.poll_interval:
            self.fast_poll_interval = self.poll_interval
        return self


class ConfigError(Exception):
    """The operator configuration is invalid; the message names the variables, never values."""


def load_config() -> OperatorConfig:
    """Read :class:`OperatorConfig` from the environment.

    Raises:
        ConfigError: a variable is invalid. Unlike ``pydantic.ValidationError`` the message holds
            no input values, so a malformed API key is never printed.
    """
    try:
        return OperatorConfig()
    except ValidationError as exc:
        problems = "; ".join(
            f"OEC_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid operator configuration: {problems}") from None
