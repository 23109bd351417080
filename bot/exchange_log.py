"""The HTTP boundary: one way out for messages, and the outbound half of the exchange log.

:class:`LoggingRequest` wraps the real transport (``HTTPXRequest``, or the fake Bot API in
tests and the console).

*During a handling* a call that sends, edits or deletes a message does not reach Telegram:
it becomes an outbox row in the handling's own transaction (:func:`queue_in_outbox`) and the
handler gets a stand-in answer. The inbox worker sends those rows once the handling has
committed (see ``bot.inbox``): a handling that rolls back sends nothing, and a crash can
repeat only a send that was in flight. Handlers never read what a send returns; a handler
that needs the id of a message it sent reads it from its outbox row once sent.
``answerCallbackQuery`` is not a message and must come within seconds: it stays direct.

*Outside a handling* (the outbox dispatcher, start-up) the call goes to Telegram, and every
call that sends, edits or deletes a message becomes an exchange-log row, with Telegram's
message id once Telegram confirms it, or the error when it refuses.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telegram._utils.defaultvalue import DEFAULT_NONE
from telegram._utils.types import ODVInput
from telegram.request import BaseRequest, RequestData

from bot.parsing import parse_telegram_id
from bot.runtime import UpdateScope, current_scope, outbound_sink
from models.exchange import log_outbound_rows
from models.outbox import OutboxFile, enqueue

log = logging.getLogger(__name__)

LOGGED_PREFIXES = ("send", "edit", "delete", "forward", "copy", "answercallbackquery")
NOT_LOGGED = {"sendchataction"}
BULKY = {"photo", "document", "media", "thumbnail"}


# What a handling queues in the outbox instead of sending (lower-case Bot API names).
OUTBOX_PREFIXES = ("send", "edit", "delete", "forward", "copy", "pin", "unpin")


def is_logged(method: str) -> bool:
    name = method.lower()
    return name.startswith(LOGGED_PREFIXES) and name not in NOT_LOGGED


def goes_through_outbox(method: str) -> bool:
    return method.lower().startswith(OUTBOX_PREFIXES)


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
        scope = current_scope.get()
        if scope is not None and goes_through_outbox(api_method):
            queued = queue_in_outbox(scope, api_method, request_data)
            if queued is not None:
                return queued
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
        row = outbound_row(api_method, params, message_id, error)
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


def outbound_row(
    api_method: str, params: dict[str, Any], message_id: int | None, error: str | None
) -> dict[str, Any]:
    """What the exchange log keeps of one call to Telegram (``log_outbound_rows`` writes it):
    files as ``<file>``, a message id from Telegram's answer or, for an edit, the call's."""
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


def queue_in_outbox(
    scope: UpdateScope, api_method: str, request_data: RequestData | None
) -> tuple[int, bytes] | None:
    """Write the call as an outbox row of the handling; the stand-in answer Telegram would give.

    None when the call names no chat the outbox can order by (an ``@channel`` name): it is
    then sent at once, as before.
    """
    params = dict(request_data.parameters) if request_data else {}
    chat_id = _numeric_chat_id(params.pop("chat_id", None))
    if chat_id is None:
        return None
    row = enqueue(
        scope.session,
        chat_id=chat_id,
        kind="reply",
        method=api_method,
        params=params,
        in_reply_to=scope.update_id,
    )
    if request_data is not None and request_data.contains_files:
        for field, (filename, content, mimetype) in _files(request_data).items():
            row.files.append(
                OutboxFile(field=field, filename=filename, content=content, mimetype=mimetype)
            )
    scope.replies.append(row)
    return 200, json.dumps({"ok": True, "result": _stand_in(api_method, chat_id, params)}).encode()


def _files(request_data: RequestData) -> dict[str, tuple[str | None, bytes, str | None]]:
    files: dict[str, tuple[str | None, bytes, str | None]] = {}
    for name, value in (request_data.multipart_data or {}).items():
        if isinstance(value, tuple):
            filename, content = value[0], value[1]
            mimetype = value[2] if len(value) > 2 else None
            data = content if isinstance(content, bytes) else content.read()
            files[name] = (filename, data, mimetype)
    return files


def _stand_in(api_method: str, chat_id: int, params: dict[str, Any]) -> Any:
    """What PTB parses in place of Telegram's answer; message id 0 (not sent yet)."""
    name = api_method.lower()
    if not name.startswith(("send", "forward", "copy")) or name == "sendchataction":
        return True
    message = {
        "message_id": 0,
        "date": int(time.time()),
        "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group"},
    }
    if "text" in params:
        message["text"] = params["text"]
    if name == "sendmediagroup":
        return [message]
    if name == "copymessage":
        return {"message_id": 0}
    return message
