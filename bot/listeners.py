"""The bot's HTTP listeners (webhook, health): sockets and a uvicorn server with limits.

In one process both run uvicorn in our own event loop, with signals left to us (the bot stops
after the server, gracefully); several webhook workers run under uvicorn's own supervisor
(:func:`bot.webhook.serve_workers`). Every listener has the limits an exposed endpoint
needs: a cap on concurrent connections (more are answered 503 at once), a time limit for a
request's headers (a client that opens a connection and sends nothing, or dribbles its
headers, is cut off), an idle keep-alive limit, a cap on the header size, and a bounded
graceful shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from bot.startup import CliError

CONCURRENCY_LIMIT = 200  # open connections + tasks; Telegram uses at most 40 (max_connections)
HEADER_TIMEOUT_SECONDS = 10.0
KEEP_ALIVE_SECONDS = 15  # longer than Telegram's pause between posts is not needed
MAX_HEADER_BYTES = 16 * 1024
GRACEFUL_SHUTDOWN_SECONDS = 5


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request headers do not arrive.

    uvicorn limits the idle time between requests (keep-alive) but not the time a request's
    headers take, so a slow client could hold a connection slot for ever.
    """

    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        if self._header_timer is None and self.conn.their_state is h11.IDLE:
            self._arm_header_timer()  # a new request on a kept-alive connection
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(HEADER_TIMEOUT_SECONDS, self._headers_too_slow)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def server_config(app: Any, **options: Any) -> Any:
    """uvicorn's configuration for one of our listeners, with the limits above (``options``
    are more of ``uvicorn.Config``'s, for the webhook workers)."""
    import uvicorn

    settings: dict[str, Any] = {
        "http": HeaderTimeoutProtocol,
        "log_level": "warning",
        "access_log": False,
        "lifespan": "off",
        "limit_concurrency": CONCURRENCY_LIMIT,
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_SECONDS,
    }
    return uvicorn.Config(app, **(settings | options))


def quiet_server_class() -> Any:
    import uvicorn

    class _QuietServer(uvicorn.Server):
        """A uvicorn server that leaves signals to us: we stop the bot after it, gracefully."""

        def capture_signals(self) -> Any:
            return contextlib.nullcontext()

    return _QuietServer


def QuietServer(config: Any) -> Any:  # reads like the class it makes
    return quiet_server_class()(config)


def bind(host: str, port: int, setting: str) -> socket.socket:
    """A listening socket, shareable with worker processes; a refusal is one line naming the
    setting (the port is taken, the address is not this machine's)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise CliError(f"cannot listen on {host}:{port} ({setting}): {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock
