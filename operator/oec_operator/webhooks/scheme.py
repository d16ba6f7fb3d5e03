"""How a webhook delivery is signed, and its verification (``docs/webhooks.md`` §3).

OEC.sh signs deliveries with HMAC-SHA256 of the webhook secret (``docs/oec-api.md`` §11.6), but
no public source says in which header, over which string, or in which encoding. A
:class:`SignatureScheme` names all of it; the configured one is the default, and
:func:`calibrate` finds the one a real ``ping`` (``POST /webhooks/{id}/test``) was signed with.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from oec_operator.settings import OperatorConfig

#: A signature value: an optional ``name=`` prefix (``sha256=``, ``v1=``), then the digest.
_PREFIXED = re.compile(r"^([A-Za-z0-9_.-]{1,20}=)(.+)$")
#: A header value that looks like a Unix time stamp (seconds, or milliseconds).
_TIMESTAMP = re.compile(r"^\d{9,13}$")
#: Headers never taken for a signature or a time stamp by :func:`candidates`.
_NOT_SIGNATURES = frozenset({"content-length", "content-type", "user-agent", "host", "accept", "accept-encoding",
                             "connection", "x-oec-event", "x-oec-delivery"})


class SignatureScheme(BaseModel):
    """One way of signing a delivery with HMAC-SHA256 of the webhook secret.

    Attributes:
        header: the header carrying the signature (case-insensitive).
        encoding: ``hex`` (either case) or ``base64`` (standard or URL-safe alphabet) of the digest.
        prefix: text before the digest in the header (``"sha256="``), ``""`` for none.
        signed: ``body`` (the raw body) or ``timestamp.body`` (``"{timestamp}.{body}"``).
        timestamp_header: the header with the Unix time stamp (``timestamp.body`` only).
        tolerance: seconds the time stamp may differ from now (``timestamp.body`` only); older or
            newer deliveries are refused (replay protection).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    header: str = Field(default="X-OEC-Signature", min_length=1)
    encoding: Literal["hex", "base64"] = "hex"
    prefix: str = ""
    signed: Literal["body", "timestamp.body"] = "body"
    timestamp_header: str = Field(default="X-OEC-Timestamp", min_length=1)
    tolerance: float = Field(default=300.0, gt=0)

    @classmethod
    def from_config(cls, config: OperatorConfig) -> SignatureScheme:
        """The configured default scheme (``OEC_WEBHOOK_SIGNATURE_*``, ``OEC_WEBHOOK_TIMESTAMP_*``)."""
        return cls(header=config.webhook_signature_header, encoding=config.webhook_signature_encoding,
                   prefix=config.webhook_signature_prefix, signed=config.webhook_signed_content,
                   timestamp_header=config.webhook_timestamp_header, tolerance=config.webhook_timestamp_tolerance)

    def to_json(self) -> str:
        """The scheme as JSON (kept in the webhook Secret once calibrated)."""
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str | bytes) -> SignatureScheme:
        """A scheme from :meth:`to_json`.

        Raises:
            ValueError: not a valid scheme.
        """
        try:
            return cls.model_validate_json(text)
        except ValidationError as error:
            raise ValueError(f"not a webhook signature scheme: {error.error_count()} error(s)") from None

    def _message(self, body: bytes, timestamp: str | None) -> bytes:
        return body if self.signed == "body" else f"{timestamp}.".encode() + body

    def sign(self, secret: str, body: bytes, now: float) -> dict[str, str]:
        """The headers a sender using this scheme would add to ``body`` at ``now`` (Unix seconds).
        For tests and for the documentation's examples."""
        timestamp = str(int(now))
        digest = hmac.new(secret.encode(), self._message(body, timestamp), hashlib.sha256).digest()
        value = digest.hex() if self.encoding == "hex" else base64.b64encode(digest).decode()
        headers = {self.header: self.prefix + value}
        if self.signed == "timestamp.body":
            headers[self.timestamp_header] = timestamp
        return headers

    def verify(self, secret: str, headers: Mapping[str, str], body: bytes, now: float) -> bool:
        """True when ``body`` with ``headers`` (names lower-case) was signed with ``secret`` this
        way and, for ``timestamp.body``, its time stamp is within :attr:`tolerance` of ``now``
        (Unix seconds). The digests are compared in constant time (:func:`hmac.compare_digest`)."""
        value = headers.get(self.header.lower())
        if value is None or not value.startswith(self.prefix):
            return False
        given = _decode(value[len(self.prefix):].strip(), self.encoding)
        if given is None:
            return False
        timestamp = None
        if self.signed == "timestamp.body":
            timestamp = headers.get(self.timestamp_header.lower())
            if timestamp is None or not _fresh(timestamp, now, self.tolerance):
                return False
        expected = hmac.new(secret.encode(), self._message(body, timestamp), hashlib.sha256).digest()
        return hmac.compare_digest(given, expected)


def _decode(text: str, encoding: str) -> bytes | None:
    """The 32-byte digest in ``text``, or ``None`` when ``text`` is not one in ``encoding``."""
    try:
        if encoding == "hex":
            raw = bytes.fromhex(text) if len(text) == 64 else b""
        else:
            padded = text + "=" * (-len(text) % 4)
            raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (ValueError, binascii.Error):
        return None
    return raw if len(raw) == hashlib.sha256().digest_size else None


def _fresh(timestamp: str, now: float, tolerance: float) -> bool:
    """True when ``timestamp`` (Unix seconds, or milliseconds) is within ``tolerance`` s of ``now``."""
    if not _TIMESTAMP.match(timestamp.strip()):
        return False
    seconds = int(timestamp)
    if seconds > 10**11:  # milliseconds
        seconds //= 1000
    return abs(now - seconds) <= tolerance


def lower(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` with lower-case names (what :meth:`SignatureScheme.verify` expects)."""
    return {name.lower(): value for name, value in headers.items()}


def candidates(headers: Mapping[str, str], *, tolerance: float = 300.0) -> list[SignatureScheme]:
    """Every scheme ``headers`` (names lower-case) could carry: each header whose value is a
    SHA-256 digest in hex or base64, with or without a ``name=`` prefix, over the body alone or
    over ``"{timestamp}.{body}"`` with each header that looks like a Unix time stamp."""
    stamps = [name for name, value in headers.items()
              if name not in _NOT_SIGNATURES and _TIMESTAMP.match(value.strip())]
    found: list[SignatureScheme] = []
    for name, value in headers.items():
        if name in _NOT_SIGNATURES:
            continue
        value = value.strip()
        splits = [("", value)]
        if match := _PREFIXED.match(value):
            splits.append((match.group(1), match.group(2)))
        for prefix, digest in splits:
            for encoding in ("hex", "base64"):
                if _decode(digest, encoding) is None:
                    continue
                found.append(SignatureScheme(header=name, encoding=encoding, prefix=prefix, tolerance=tolerance))
                found.extend(SignatureScheme(header=name, encoding=encoding, prefix=prefix, signed="timestamp.body",
                                             timestamp_header=stamp, tolerance=tolerance) for stamp in stamps)
    return found


def calibrate(secret: str, headers: Mapping[str, str], body: bytes, now: float, *,
              default: SignatureScheme | None = None, tolerance: float = 300.0) -> SignatureScheme | None:
    """The scheme a delivery known to come from OEC.sh (the ``ping`` of ``POST
    /webhooks/{id}/test``) was signed with by ``secret``: ``default`` when it verifies, else the
    first of :func:`candidates` that does; ``None`` when none does (another secret, or a scheme
    outside those of :func:`candidates`)."""
    headers = lower(headers)
    if default is not None and default.verify(secret, headers, body, now):
        return default
    for scheme in candidates(headers, tolerance=tolerance):
        if scheme.verify(secret, headers, body, now):
            return scheme
    return None
