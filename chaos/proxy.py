"""A loopback TCP proxy the harness controls, standing between the workers and Redis to
make a network partition: ``blackhole()`` stops moving bytes both ways (connections stay
open, as when packets are dropped), ``heal(reset=True)`` closes every connection (as the
TCP timeout or a NAT would at the end) and moves bytes again."""

from __future__ import annotations

import selectors
import socket
import threading
from contextlib import suppress


class Proxy(threading.Thread):
    def __init__(self, upstream_port: int) -> None:
        super().__init__(daemon=True)
        self.upstream = ("127.0.0.1", upstream_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sel = selectors.DefaultSelector()
        self.pairs: dict[socket.socket, socket.socket] = {}
        self.blocked = False
        self.lock = threading.Lock()
        self.stopping = False

    def run(self) -> None:
        self.listener.setblocking(False)
        self.sel.register(self.listener, selectors.EVENT_READ)
        while not self.stopping:
            for key, _ in self.sel.select(0.05):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                with self.lock:
                    if sock is self.listener:
                        self._accept()
                    elif not self.blocked and sock in self.pairs:
                        self._pump(sock)

    def _accept(self) -> None:
        client, _ = self.listener.accept()
        try:
            up = socket.create_connection(self.upstream, timeout=2)
        except OSError:
            client.close()
            return
        for s in (client, up):
            s.setblocking(False)
            self.sel.register(s, selectors.EVENT_READ)
        self.pairs[client] = up
        self.pairs[up] = client

    def _pump(self, sock: socket.socket) -> None:
        other = self.pairs[sock]
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close(sock)
            return
        try:
            other.setblocking(True)
            other.sendall(data)
            other.setblocking(False)
        except OSError:
            self._close(sock)

    def _close(self, sock: socket.socket) -> None:
        other = self.pairs.pop(sock, None)
        for s in (sock, other):
            if s is None:
                continue
            self.pairs.pop(s, None)
            with suppress(KeyError, ValueError, OSError):
                self.sel.unregister(s)
            with suppress(OSError):
                s.close()

    def blackhole(self) -> None:
        with self.lock:
            self.blocked = True
            # Nothing moves: no reads on open connections, new ones wait in the backlog.
            for s in [self.listener, *self.pairs]:
                with suppress(KeyError, ValueError):
                    self.sel.unregister(s)

    def heal(self, reset: bool = True) -> None:
        with self.lock:
            self.sel.register(self.listener, selectors.EVENT_READ)
            for s in list(self.pairs):
                if reset:
                    with suppress(OSError):
                        s.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                        )
                        s.close()
                    self.pairs.pop(s, None)
                else:
                    with suppress(KeyError, ValueError, OSError):
                        self.sel.register(s, selectors.EVENT_READ)
            self.blocked = False

    def stop(self) -> None:
        self.stopping = True
        self.join(2)
        with self.lock:
            for s in list(self.pairs):
                with suppress(OSError):
                    s.close()
            self.listener.close()
