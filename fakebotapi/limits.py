"""Flood control, off unless a test asks for it: send* calls beyond ``max_calls`` in a sliding
window, per chat or over all chats, answer 429 with ``retry_after``. Telegram's own limits
(about 30 messages a second overall, 1 a second per chat, 20 a minute per group) are not
applied by default."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fakebotapi.calls import ApiCall, send_times
from fakebotapi.errors import too_many_requests
from fakebotapi.methods import SEND_METHODS


@dataclass(frozen=True)
class FloodLimit:
    max_calls: int
    window_s: float = 1.0
    per_chat: bool = True
    retry_after: int = 1

    def check(self, method: str, params: Mapping[str, Any], calls: Iterable[ApiCall]) -> None:
        """Raise the 429 if this call of ``method`` would exceed the limit."""
        if method not in SEND_METHODS:
            return
        chat = params.get("chat_id") if self.per_chat else None
        since = time.monotonic() - self.window_s
        recent = [t for t in send_times(calls, chat) if t > since]
        if len(recent) >= self.max_calls:
            raise too_many_requests(self.retry_after)
