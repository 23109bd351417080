"""``setWebhook``, ``deleteWebhook``, ``getWebhookInfo``: the URL is only stored (nothing
is delivered to it), but while it is set ``getUpdates`` answers 409, as on Telegram."""

from __future__ import annotations

from typing import Any

from fakebotapi.params import JSON, as_bool
from fakebotapi.state import BotState


def set_webhook(state: BotState, params: dict[str, Any]) -> bool:
    state.updates.webhook_url = str(params.get("url") or "")
    if as_bool(params.get("drop_pending_updates")):
        state.updates.drop_pending()
    state.updates.wake()
    return True


def delete_webhook(state: BotState, params: dict[str, Any]) -> bool:
    state.updates.webhook_url = ""
    if as_bool(params.get("drop_pending_updates")):
        state.updates.drop_pending()
    return True


def get_webhook_info(state: BotState, params: dict[str, Any]) -> JSON:
    return {
        "url": state.updates.webhook_url,
        "has_custom_certificate": False,
        "pending_update_count": len(state.updates.pending()),
    }


METHODS = {
    "setWebhook": set_webhook,
    "deleteWebhook": delete_webhook,
    "getWebhookInfo": get_webhook_info,
}
