"""The bot's update queue: ``update_id`` numbering, Telegram's offset confirmation and
redelivery of unconfirmed updates, ``allowed_updates``, long polling, and the 409 conflicts
(a webhook is set, a second concurrent ``getUpdates``)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from typing import Any

from fakebotapi.builders import update_type
from fakebotapi.errors import conflict
from fakebotapi.params import JSON, as_float, as_int, as_json

# Telegram's default when allowed_updates is empty: all but these three.
DEFAULT_ALLOWED = frozenset(
    {
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "inline_query",
        "chosen_inline_result",
        "callback_query",
        "shipping_query",
        "pre_checkout_query",
        "poll",
        "poll_answer",
        "my_chat_member",
        "chat_join_request",
        "business_connection",
        "business_message",
        "edited_business_message",
        "deleted_business_messages",
        "purchased_paid_media",
        "chat_boost",
        "removed_chat_boost",
    }
)


class UpdateQueue:
    """Updates waiting for the bot, and who is polling for them."""

    def __init__(self) -> None:
        self.webhook_url = ""  # setWebhook only stores it: nothing is delivered there
        self.confirmed_up_to = 0  # the highest update_id confirmed by a later offset
        self._updates: list[JSON] = []
        self._next_update_id = 1
        self._allowed: frozenset[str] = DEFAULT_ALLOWED
        self._version = 0
        self._poll_generation = 0
        self._waiters: set[asyncio.Future[None]] = set()

    def push(self, update: JSON) -> int:
        """Queue ``update`` (assigning ``update_id`` if absent) and wake long polls."""
        if "update_id" not in update:
            update["update_id"] = self._next_update_id
        update_id = int(update["update_id"])
        self._next_update_id = max(self._next_update_id, update_id + 1)
        self._updates.append(update)
        self._version += 1
        self.wake()
        return update_id

    def continue_ids(self, last_seen: int) -> None:
        self._next_update_id = max(self._next_update_id, last_seen + 1)

    def pending(self) -> list[JSON]:
        """Updates not yet confirmed by an offset."""
        return list(self._updates)

    def drop_pending(self) -> None:
        """``drop_pending_updates``: what waits counts as confirmed."""
        if self._updates:
            self.confirmed_up_to = max(self.confirmed_up_to, self._updates[-1]["update_id"])
        self._updates.clear()

    def get_now(self, params: Mapping[str, Any]) -> list[JSON]:
        """``getUpdates`` without waiting: confirm ``offset``, filter, answer up to ``limit``."""
        if self.webhook_url:
            raise conflict(
                "can't use getUpdates method while webhook is active; use deleteWebhook to "
                "delete the webhook first"
            )
        self._confirm(as_int(params.get("offset", 0), "offset"))
        allowed = as_json(params.get("allowed_updates"))
        if allowed is not None:
            self._allowed = frozenset(allowed) if allowed else DEFAULT_ALLOWED
        self._updates = [u for u in self._updates if update_type(u) in self._allowed]
        limit = min(max(as_int(params.get("limit", 100), "limit"), 1), 100)
        return [dict(u) for u in self._updates[:limit]]

    async def get_waiting(self, params: Mapping[str, Any]) -> list[JSON]:
        """``getUpdates`` with long polling: waits up to ``timeout`` for an update; a newer
        poll ends this one with 409, as Telegram does with two bot instances."""
        self._poll_generation += 1
        generation = self._poll_generation
        self.wake()  # an older long poll is terminated with 409
        timeout = max(as_float(params.get("timeout", 0), "timeout"), 0.0)
        deadline = time.monotonic() + timeout
        while True:
            version = self._version
            batch = self.get_now(params)
            remaining = deadline - time.monotonic()
            if batch or remaining <= 0:
                return batch
            await self._wait_for_push(version, remaining)
            if self._poll_generation != generation:
                raise conflict(
                    "terminated by other getUpdates request; make sure that only one bot "
                    "instance is running"
                )

    def wake(self) -> None:
        """Wake every long poll (they may be waiting in another thread's event loop)."""
        for fut in list(self._waiters):
            loop = fut.get_loop()
            if loop.is_closed():
                self._waiters.discard(fut)
            else:
                loop.call_soon_threadsafe(_resolve, fut)

    def _confirm(self, offset: int) -> None:
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
            self.confirmed_up_to = max(self.confirmed_up_to, offset - 1)
        elif offset < 0:
            dropped = self._updates[:offset] if -offset < len(self._updates) else []
            if dropped:
                self.confirmed_up_to = max(self.confirmed_up_to, dropped[-1]["update_id"])
            self._updates = self._updates[len(dropped) :]

    async def _wait_for_push(self, version: int, seconds: float) -> None:
        if self._version != version:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(fut)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(fut, seconds)
        finally:
            self._waiters.discard(fut)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
