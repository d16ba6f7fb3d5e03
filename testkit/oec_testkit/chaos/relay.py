"""A recording HTTP relay in front of the operator's webhook receiver: :class:`Relay`.

The operator registers the relay's URL (``OEC_WEBHOOK_URL``) with the simulator, so every
delivery the simulator sends passes through it: it is forwarded as it came (method, path, the
headers the receiver reads, the raw body) and recorded with the receiver's answer, or ``502``
when the receiver does not answer (the operator stopped). The chaos scenarios re-send recorded
deliveries byte for byte (replays) and count failed attempts.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from oec_operator.settings import WEBHOOK_PATH

__all__ = ["Recorded", "Relay"]

#: Headers not forwarded (hop-by-hop, or set again by the HTTP client).
HOP_BY_HOP = frozenset({"host", "content-length", "connection", "transfer-encoding", "keep-alive"})


@dataclass(frozen=True)
class Recorded:
    """One delivery attempt that passed the relay: when (epoch seconds), its headers and raw body,
    and the receiver's answer (``status`` 502 when it did not answer)."""

    at: float
    headers: dict[str, str]
    body: bytes
    status: int


class Relay:
    """Forwards ``POST`` requests on ``127.0.0.1:port`` to ``127.0.0.1:target_port`` (5 s timeout)
    and records each in :attr:`records`. ``url`` is its webhook URL (``WEBHOOK_PATH``)."""

    def __init__(self, target_port: int) -> None:
        self.target = f"http://127.0.0.1:{target_port}"
        self.records: list[Recorded] = []
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=5.0, trust_env=False)
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                status, answer = relay._forward(self.path, headers, body)
                with relay._lock:
                    relay.records.append(Recorded(time.time(), headers, body, status))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """The URL to register: ``http://127.0.0.1:PORT`` + ``WEBHOOK_PATH``."""
        return f"http://127.0.0.1:{self.port}{WEBHOOK_PATH}"

    def _forward(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        try:
            response = self._client.post(self.target + path, headers=headers, content=body)
        except httpx.HTTPError:
            return 502, b'{"result": "receiver unreachable"}'
        return response.status_code, response.content

    def since(self, index: int) -> list[Recorded]:
        """The records from position ``index`` on (``len(relay.records)`` taken earlier)."""
        with self._lock:
            return list(self.records[index:])

    def close(self) -> None:
        """Stop serving and close the client."""
        self._server.shutdown()
        self._server.server_close()
        self._client.close()
