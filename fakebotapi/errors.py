"""The Bot API's error answers, with Telegram's descriptions for the cases bots trip on."""

from __future__ import annotations

from typing import Any

NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)


class ApiError(Exception):
    """An error answer of the Bot API."""

    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        """The JSON envelope Telegram answers with (``parameters.retry_after`` on a 429)."""
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.status,
            "description": self.description,
        }
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


# A token Telegram does not know (wrong, or revoked): checked before the method is looked at.
UNAUTHORIZED = {"ok": False, "error_code": 401, "description": "Unauthorized"}


def bad_request(detail: str) -> ApiError:
    return ApiError(400, f"Bad Request: {detail}")


def parse_error(detail: str) -> ApiError:
    """A text whose ``parse_mode`` markup Telegram cannot parse."""
    return bad_request(f"can't parse entities: {detail}")


def forbidden(detail: str) -> ApiError:
    """A chat the bot may not write to (blocked, deactivated user, kicked from a group)."""
    return ApiError(403, f"Forbidden: {detail}")


def conflict(detail: str) -> ApiError:
    return ApiError(409, f"Conflict: {detail}")


def too_many_requests(retry_after: int) -> ApiError:
    return ApiError(429, f"Too Many Requests: retry after {retry_after}", retry_after)


def not_found() -> ApiError:
    """An unknown method."""
    return ApiError(404, "Not Found")
