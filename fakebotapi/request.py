""":class:`FakeRequest`: a python-telegram-bot transport answering from a
:class:`~fakebotapi.fake.FakeTelegram` in the same process, without any network."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any
from urllib.parse import parse_qsl

from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import ODVInput
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

from fakebotapi.errors import UNAUTHORIZED
from fakebotapi.fake import FakeTelegram
from fakebotapi.params import UploadedFile

API_PATH = re.compile(r"/bot([^/]+)/[^/]+$")  # /bot<token>/<method>


def _upload(name: str, field_tuple: Any) -> UploadedFile:
    filename, content, mime = (*tuple(field_tuple), None, None, None)[:3]
    size = len(content) if isinstance(content, bytes | bytearray) else 0
    return UploadedFile(name, str(filename or name), size, mime)


class FakeRequest(BaseRequest):
    """A PTB transport that answers from a :class:`FakeTelegram` without any network."""

    def __init__(self, fake: FakeTelegram, *, read_timeout: float | None = 5.0) -> None:
        self.fake = fake
        self._read_timeout = read_timeout
        self.initialized = False

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        self.initialized = True

    async def shutdown(self) -> None:
        self.initialized = False

    @staticmethod
    def params_of(request_data: RequestData | None) -> dict[str, Any]:
        """The request's parameters, with uploaded files as :class:`UploadedFile`."""
        if request_data is None:
            return {}
        params: dict[str, Any] = dict(request_data.parameters)
        if request_data.contains_files:
            for name, field_tuple in request_data.multipart_data.items():
                params.setdefault(name, _upload(name, field_tuple))
        return params

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        path, _, query = url.partition("?")
        called = API_PATH.search(path.rstrip("/"))
        if called is not None and called.group(1) != self.fake.token:  # as the server does
            return 401, json.dumps(UNAUTHORIZED).encode()
        api_method = path.rstrip("/").rsplit("/", 1)[-1]
        params = dict(parse_qsl(query)) | self.params_of(request_data)  # as Telegram merges
        if self.fake.take_disconnect(api_method):
            raise NetworkError(
                "httpx.RemoteProtocolError: Server disconnected without sending a response."
            )
        timeout = self._read_timeout if isinstance(read_timeout, DefaultValue) else read_timeout
        try:
            status, body = await asyncio.wait_for(self.fake.handle(api_method, params), timeout)
        except TimeoutError as exc:
            raise TimedOut from exc
        return status, json.dumps(body).encode()
