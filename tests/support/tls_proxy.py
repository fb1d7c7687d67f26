"""A TLS front for a plain TCP server on 127.0.0.1, for tests of clients that must trust a
private certificate authority (a real server behind it; only the TLS layer is added here)."""

from __future__ import annotations

import select
import socket
import ssl
import threading
from contextlib import suppress
from types import TracebackType
from typing import Any


class TlsProxy:
    """Accepts TLS connections on a free port of 127.0.0.1 with the certificate `configure`
    puts in an `ssl.SSLContext` (trustme's `LeafCert.configure_cert`), and relays each one to
    `host:port` in plain TCP. A client that refuses the certificate gets nothing relayed."""

    def __init__(self, host: str, port: int, configure: Any) -> None:
        self._target = (host, port)
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        configure(self._context)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = threading.Event()
        threading.Thread(target=self._accept, name="tls-proxy", daemon=True).start()

    def __enter__(self) -> TlsProxy:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._closed.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        try:
            secure = self._context.wrap_socket(client, server_side=True)
        except (OSError, ssl.SSLError):  # the client refused the certificate
            client.close()
            return
        with secure, socket.create_connection(self._target) as upstream:
            # One thread per connection, both directions: an SSL socket is not to be read and
            # written from two threads at once.
            while not self._closed.is_set():
                ready, _, _ = select.select([secure, upstream], [], [], 0.5)
                try:
                    if secure in ready or secure.pending():
                        data = secure.recv(65536)
                        if not data:
                            return
                        upstream.sendall(data)
                    if upstream in ready:
                        data = upstream.recv(65536)
                        if not data:
                            return
                        secure.sendall(data)
                except (OSError, ssl.SSLError):
                    with suppress(OSError):
                        upstream.close()
                    return
