""":class:`FakeTelegramServer`: a :class:`~fakebotapi.fake.FakeTelegram` served over HTTP
(``/bot{token}/{method}``, file downloads, and ``/_control/...`` for a test driving a bot
in another process); also ``python -m fakebotapi --port 8081``.

It needs aiohttp, an optional dependency: ``pip install 'helpcenter-bot[fake-server]'``
(included in ``[dev]``). The rest of the package works without it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

try:
    from aiohttp import web
except ImportError as exc:
    raise ImportError(
        "fakebotapi.server needs aiohttp: pip install 'helpcenter-bot[fake-server]'"
    ) from exc

from fakebotapi.errors import UNAUTHORIZED
from fakebotapi.fake import FakeTelegram
from fakebotapi.params import UploadedFile, jsonable


async def _http_params(request: web.Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query)
    if request.method != "POST" or not request.can_read_body:
        return params
    if request.content_type == "application/json":
        body = await request.json()
        if isinstance(body, dict):
            params.update(body)
        return params
    form = await request.post()
    for name, value in form.items():
        if isinstance(value, web.FileField):
            content = value.file.read()
            params[name] = UploadedFile(name, value.filename, len(content), value.content_type)
        else:
            params[name] = str(value)
    return params


class FakeTelegramServer:
    """Serves a :class:`FakeTelegram` over HTTP: ``/bot{token}/{method}`` plus ``/_control``."""

    def __init__(
        self,
        fake: FakeTelegram | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        transit: Callable[[str], float] | None = None,
    ) -> None:
        self.fake = fake or FakeTelegram()
        self.host = host
        self.port = port
        # Seconds a request to ``method`` spends on its way, before the fake sees it (network
        # jitter: requests sent apart can arrive together). ``FakeTelegram.delay`` is the answer.
        self.transit = transit
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        """What PTB needs as ``base_url`` (it appends the token)."""
        return f"http://{self.host}:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://{self.host}:{self.port}/file/bot"

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        app.router.add_post("/_control/push_update", self._push_update)
        app.router.add_post("/_control/user_writes", self._user_writes)
        app.router.add_post("/_control/fail_next", self._fail_next)
        app.router.add_post("/_control/block", self._block)
        app.router.add_post("/_control/clear", self._clear)
        app.router.add_get("/_control/sent", self._sent)
        app.router.add_get("/_control/pending", self._pending)
        app.router.add_get("/_control/calls", self._calls)
        return app

    async def start(self) -> str:
        """Start listening; returns :attr:`base_url`."""
        # A long poll whose client went away (a bot that stopped) is not waited out on stop.
        self._runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        sockets = self._runner.addresses
        self.port = int(sockets[0][1])
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTelegramServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _api(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.fake.token:
            return web.json_response(UNAUTHORIZED, status=401)
        method = request.match_info["method"]
        params = await _http_params(request)
        if self.transit is not None:
            await asyncio.sleep(self.transit(method))
        if self.fake.take_disconnect(method):
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=204)
        status, body = await self.fake.handle(method, params)
        return web.json_response(body, status=status)

    async def _download(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.fake.token:
            return web.Response(status=401)
        return web.Response(body=b"fake file content " + request.match_info["path"].encode())

    @staticmethod
    def _ok(result: Any) -> web.Response:
        return web.json_response({"ok": True, "result": jsonable(result)})

    async def _push_update(self, request: web.Request) -> web.Response:
        return self._ok(self.fake.push_update(await request.json()))

    async def _user_writes(self, request: web.Request) -> web.Response:
        body = await request.json()
        user_id = int(body.pop("user_id"))
        text = body.pop("text", None)
        if "location" in body:
            body["location"] = tuple(body["location"])
        return self._ok(self.fake.user_writes(user_id, text, **body))

    async def _fail_next(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.fake.fail_next(body.pop("method", None), **body)
        return self._ok(True)

    async def _block(self, request: web.Request) -> web.Response:
        self.fake.block(int((await request.json())["user_id"]))
        return self._ok(True)

    async def _clear(self, request: web.Request) -> web.Response:
        self.fake.clear()
        return self._ok(True)

    async def _sent(self, request: web.Request) -> web.Response:
        return self._ok(self.fake.sent_messages(request.query.get("chat_id")))

    async def _pending(self, request: web.Request) -> web.Response:
        return self._ok(self.fake.pending_updates())

    async def _calls(self, request: web.Request) -> web.Response:
        return self._ok(
            [
                {
                    "method": c.method,
                    "params": c.params,
                    "status": c.status,
                    "response": c.response,
                    "at": c.at,
                }
                for c in self.fake.calls
            ]
        )


async def serve(host: str, port: int, fake: FakeTelegram) -> None:
    """Serve until cancelled, printing the base URL on stdout."""
    server = FakeTelegramServer(fake, host=host, port=port)
    print(await server.start(), flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake Telegram Bot API server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--token", default="123:TEST")
    parser.add_argument("--bot-username", default="helpcenter_test_bot")
    args = parser.parse_args(argv)
    fake = FakeTelegram(token=args.token, bot_username=args.bot_username)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, fake))
