"""The outbound half of the exchange log, at the HTTP boundary so nothing can bypass it.

:class:`LoggingRequest` wraps the real transport (``HTTPXRequest``, or the fake Bot API in
tests and the console). Every call that sends, edits or deletes a message becomes a row, with
Telegram's message id once Telegram confirms it, or the error when it refuses. Inside an
update the row joins that update's unit of work (written in the same commit as the "done"
mark, or in the failure record if handling fails); elsewhere it is written at once.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telegram._utils.defaultvalue import DEFAULT_NONE
from telegram._utils.types import ODVInput
from telegram.request import BaseRequest, RequestData

from bot.parsing import parse_telegram_id
from bot.runtime import current_scope, outbound_sink
from models.exchange import log_outbound_rows

log = logging.getLogger(__name__)

LOGGED_PREFIXES = ("send", "edit", "delete", "forward", "copy", "answercallbackquery")
NOT_LOGGED = {"sendchataction"}
BULKY = {"photo", "document", "media", "thumbnail"}


def is_logged(method: str) -> bool:
    name = method.lower()
    return name.startswith(LOGGED_PREFIXES) and name not in NOT_LOGGED


class LoggingRequest(BaseRequest):
    """A transport that writes each outbound message to the exchange log."""

    def __init__(
        self, inner: BaseRequest, sessionmaker: async_sessionmaker[AsyncSession] | None = None
    ) -> None:
        self.inner = inner
        self.sessionmaker = sessionmaker

    @property
    def read_timeout(self) -> float | None:
        return self.inner.read_timeout

    async def initialize(self) -> None:
        await self.inner.initialize()

    async def shutdown(self) -> None:
        await self.inner.shutdown()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = DEFAULT_NONE,
        write_timeout: ODVInput[float] = DEFAULT_NONE,
        connect_timeout: ODVInput[float] = DEFAULT_NONE,
        pool_timeout: ODVInput[float] = DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        api_method = url.rsplit("/", 1)[-1]
        sent = self.inner.do_request(
            url, method, request_data, read_timeout, write_timeout, connect_timeout, pool_timeout
        )
        if not is_logged(api_method):
            return await sent
        params = dict(request_data.parameters) if request_data else {}
        try:
            status, body = await sent
        except Exception as exc:
            await self._record(api_method, params, None, f"{type(exc).__name__}")
            raise
        await self._record(api_method, params, *_outcome(status, body))
        return status, body

    async def _record(
        self, api_method: str, params: dict[str, Any], message_id: int | None, error: str | None
    ) -> None:
        row = _row(api_method, params, message_id, error)
        scope = current_scope.get()
        sink = outbound_sink.get()
        if scope is not None:
            scope.outbound.append(row)
        elif sink is not None:
            sink.append(row)
        elif self.sessionmaker is not None:
            await write_outbound_rows(self.sessionmaker, [row])


def _outcome(status: int, body: bytes) -> tuple[int | None, str | None]:
    try:
        decoded = json.loads(body)
    except ValueError:
        return None, f"HTTP {status}"
    if status == 200 and decoded.get("ok"):
        result = decoded.get("result")
        message_id = result.get("message_id") if isinstance(result, dict) else None
        return message_id, None
    return None, f"{decoded.get('error_code', status)}: {decoded.get('description', '')}"[:500]


def _row(
    api_method: str, params: dict[str, Any], message_id: int | None, error: str | None
) -> dict[str, Any]:
    chat_id = params.get("chat_id")
    if message_id is None and error is None:
        message_id = params.get("message_id")
    payload = {k: v for k, v in params.items() if k not in BULKY and k != "chat_id"}
    payload.update({k: "<file>" for k in params if k in BULKY})
    return {
        "method": api_method,
        "chat_id": _numeric_chat_id(chat_id),
        "message_id": message_id,
        "text": params.get("text") or params.get("caption"),
        "payload": json.loads(json.dumps(payload, default=str)),
        "error": error,
    }


def _numeric_chat_id(chat_id: object) -> int | None:
    """A chat id as a number; ``@channelname`` ids are not logged as numbers."""
    return parse_telegram_id(str(chat_id)) if isinstance(chat_id, int | str) else None


async def write_outbound_rows(
    sessionmaker: async_sessionmaker[AsyncSession], rows: list[dict[str, Any]], **context: Any
) -> None:
    try:
        async with sessionmaker() as session:
            await log_outbound_rows(session, rows, **context)
            await session.commit()
    except Exception:  # the message went out; losing its log row must not lose the process
        log.exception("could not write %d outbound log rows", len(rows))
