"""Free TCP ports on 127.0.0.1 for the processes the tests start."""

from __future__ import annotations

import socket

__all__ = ["free_ports"]


def free_ports(n: int = 1) -> list[int]:
    """Return ``n`` distinct loopback ports that were free a moment ago (racy by nature)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()
