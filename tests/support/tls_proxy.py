"""A TLS front for a plain TCP server on 127.0.0.1, for tests of clients that must trust a
private certificate authority (a real server behind it; only the TLS layer is added here)."""

from __future__ import annotations

import select
import socket
import ssl
import threading
from collections.abc import Callable
from contextlib import suppress
from types import TracebackType

HANDSHAKE_SECONDS = 5.0


class TlsProxy:
    """Accepts TLS connections on a free port of 127.0.0.1 with the certificate `configure`
    puts in an `ssl.SSLContext` (trustme's `LeafCert.configure_cert`), and relays each one to
    `host:port` in plain TCP. A client that refuses the certificate gets nothing relayed.
    `close` stops accepting and ends the relays within about half a second."""

    def __init__(self, host: str, port: int, configure: Callable[[ssl.SSLContext], None]) -> None:
        self._target = (host, port)
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        configure(self._context)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = threading.Event()
        self._acceptor = threading.Thread(target=self._accept, name="tls-proxy", daemon=True)
        self._acceptor.start()

    def __enter__(self) -> TlsProxy:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._closed.set()
        with suppress(OSError):  # wakes the accept() blocked in its thread
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._acceptor.join(timeout=5)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            if self._closed.is_set():
                client.close()
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        client.settimeout(HANDSHAKE_SECONDS)  # a client that never finishes its handshake
        try:
            secure = self._context.wrap_socket(client, server_side=True)
            secure.settimeout(None)
            upstream = socket.create_connection(self._target, timeout=HANDSHAKE_SECONDS)
        except OSError:  # the client refused the certificate, or the server is not there
            client.close()
            return
        with secure, upstream:
            # One thread per connection, both directions: an SSL socket is not to be read and
            # written from two threads at once. `sendall` blocks this thread, which is fine for
            # a test's requests, as neither side waits for the other to read before it reads.
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
                except OSError:  # either side went away (ssl.SSLError is an OSError)
                    return
