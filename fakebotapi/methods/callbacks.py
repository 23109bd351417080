"""``answerCallbackQuery``: each query Telegram delivered can be answered once, and only
while it is known (an unknown or already answered id is Telegram's "query is too old")."""

from __future__ import annotations

from typing import Any

from fakebotapi.errors import bad_request
from fakebotapi.state import BotState

ANSWER_TEXT_LIMIT = 200


def answer_callback_query(state: BotState, params: dict[str, Any]) -> bool:
    query_id = str(params.get("callback_query_id") or "")
    if query_id not in state.callback_queries or query_id in state.answered_queries:
        raise bad_request("query is too old and response timeout expired or query ID is invalid")
    if len(str(params.get("text") or "")) > ANSWER_TEXT_LIMIT:
        raise bad_request("MESSAGE_TOO_LONG")
    state.answered_queries.add(query_id)
    state.callback_answers[query_id] = dict(params)
    return True


METHODS = {"answerCallbackQuery": answer_callback_query}
