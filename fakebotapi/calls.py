"""The record of every request the fake answered, and what tests read from it: what the
bot sent in a chat, and how fast it sent."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fakebotapi.methods import EDIT_METHODS, SEND_METHODS
from fakebotapi.params import JSON


@dataclass
class ApiCall:
    """One request received by the fake and its answer (``status`` 0: connection dropped)."""

    method: str
    params: dict[str, Any]
    status: int
    response: JSON
    at: float  # time.monotonic() on arrival

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def result(self) -> Any:
        return self.response.get("result")


def sent_messages(calls: Iterable[ApiCall], chat_id: int | str | None = None) -> list[JSON]:
    """Results of successful send*/edit* calls, in order (edits appear again)."""
    out: list[JSON] = []
    for call in calls:
        if not call.ok or call.method not in SEND_METHODS | EDIT_METHODS:
            continue
        results = call.result if isinstance(call.result, list) else [call.result]
        out.extend(r for r in results if isinstance(r, dict))
    if chat_id is None:
        return out
    return [m for m in out if m["chat"]["id"] == int(chat_id)]


def send_times(calls: Iterable[ApiCall], chat_id: int | str | None = None) -> list[float]:
    """When successful send* calls (to ``chat_id``, or any chat) arrived."""
    return [
        c.at
        for c in calls
        if c.ok
        and c.method in SEND_METHODS
        and (chat_id is None or str(c.params.get("chat_id")) == str(chat_id))
    ]


def max_rate(
    calls: Iterable[ApiCall], window_s: float = 1.0, chat_id: int | str | None = None
) -> int:
    """The most successful send* calls seen in any sliding window of ``window_s``."""
    times = sorted(send_times(calls, chat_id))
    best = start = 0
    for end, at in enumerate(times):
        while at - times[start] >= window_s:
            start += 1
        best = max(best, end - start + 1)
    return best
