"""A cuttable network: :class:`Proxy`, a TCP proxy on 127.0.0.1 the scenarios break."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time

__all__ = ["Proxy"]


class Proxy:
    """A TCP proxy on 127.0.0.1 in front of ``127.0.0.1:target_port``: the network to break.

    ``up()`` forwards bytes both ways (TLS passes through untouched). ``down()`` closes every open
    connection and from then on answers each new connection by reading what the client sends
    first (for plain HTTP: the request line), recording it in ``refused`` and closing the socket
    without a response, as a network that drops everything. ``cut()`` closes open connections
    but keeps forwarding new ones (a watch connection cut by a load balancer).
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.is_down = False
        self.refused: list[tuple[float, str]] = []
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        if self.is_down:
            with contextlib.suppress(OSError):
                client.settimeout(2.0)
                head = client.recv(4096).split(b"\r\n", 1)[0].decode(errors="replace")
                self.refused.append((time.time(), head))
            with contextlib.suppress(OSError):
                client.close()
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
        except OSError:
            client.close()
            return
        with self._lock:
            self._conns.update((client, upstream))
        try:
            pair = {client: upstream, upstream: client}
            while True:
                ready, _, _ = select.select(list(pair), [], [], 1.0)
                if self._closed:
                    return
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    pair[sock].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            with self._lock:
                self._conns.difference_update((client, upstream))
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.close()

    def cut(self) -> None:
        """Close every open connection (new ones are still forwarded unless down)."""
        with self._lock:
            conns = list(self._conns)
        for sock in conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def down(self) -> None:
        self.is_down = True
        self.cut()

    def up(self) -> None:
        self.is_down = False

    def close(self) -> None:
        self._closed = True
        self.cut()
        with contextlib.suppress(OSError):
            self.listener.close()
