"""Files and media: uploads, URLs and known ``file_id``s (an unknown one is Telegram's 400),
``sendPhoto``, ``sendDocument``, ``sendMediaGroup`` and ``getFile``. Only metadata is kept."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fakebotapi.builders import photo_sizes
from fakebotapi.errors import bad_request
from fakebotapi.methods.sending import CAPTION_LIMIT, send, text_content
from fakebotapi.params import JSON, UploadedFile, as_json
from fakebotapi.state import BotState

_FILE_PATH_DIRS = {
    "photo": "photos",
    "document": "documents",
    "video": "videos",
    "audio": "music",
    "sticker": "stickers",
    "voice": "voice",
}
_EXTENSIONS = {"photo": "jpg", "video": "mp4", "audio": "mp3", "voice": "oga", "sticker": "webp"}


def _file(state: BotState, params: Mapping[str, Any], key: str, kind: str) -> JSON:
    """Resolve an InputFile parameter (upload, attach://, URL or file_id) to file data."""
    ref = params.get(key)
    if isinstance(ref, str) and ref.startswith("attach://"):
        ref = params.get(ref.removeprefix("attach://"))
    if ref is None or ref == "":
        raise bad_request(f"there is no {kind} in the request")
    if isinstance(ref, UploadedFile):
        extra = {"file_name": ref.filename} if kind != "photo" else {}
        if ref.mime_type and kind != "photo":
            extra["mime_type"] = ref.mime_type
        return state.new_file(kind, ref.size or 1, **extra)
    if isinstance(ref, str) and ref.startswith(("http://", "https://")):
        name = {"file_name": ref.rsplit("/", 1)[-1]} if kind != "photo" else {}
        return state.new_file(kind, 50_000, **name)
    known = state.files.get(str(ref))
    if known is None:
        raise bad_request("wrong file identifier/HTTP URL specified")
    return {k: v for k, v in known.items() if k not in ("kind", "file_path")}


def _media(state: BotState, params: Mapping[str, Any], key: str, kind: str) -> JSON:
    data = _file(state, params, key, kind)
    if kind == "photo":
        return {
            "photo": photo_sizes(data["file_id"], data["file_unique_id"], data.get("file_size", 1))
        }
    return {kind: data}


def _send_media(state: BotState, params: dict[str, Any], kind: str) -> JSON:
    state.chat(params)
    content = _media(state, params, kind, kind)
    content.update(text_content(params, "caption", limit=CAPTION_LIMIT, required=False))
    return send(state, params, content)


def send_photo(state: BotState, params: dict[str, Any]) -> JSON:
    return _send_media(state, params, "photo")


def send_document(state: BotState, params: dict[str, Any]) -> JSON:
    return _send_media(state, params, "document")


def send_media_group(state: BotState, params: dict[str, Any]) -> list[JSON]:
    """An album: 2-10 messages sharing a ``media_group_id`` (albums carry no keyboard)."""
    state.chat(params)
    media = as_json(params.get("media")) or []
    if not 2 <= len(media) <= 10:
        raise bad_request("wrong number of media specified (must be 2-10)")
    group_id = str(next(state.media_groups))
    contents = []
    for item in media:
        kind = str(item.get("type", "photo"))
        content = _media(state, {**params, "media": item.get("media")}, "media", kind)
        content.update(text_content(item, "caption", limit=CAPTION_LIMIT, required=False))
        contents.append(content)
    return [
        send(state, {**params, "reply_markup": None}, {**content, "media_group_id": group_id})
        for content in contents
    ]


def get_file(state: BotState, params: dict[str, Any]) -> JSON:
    data = state.files.get(str(params.get("file_id") or ""))
    if data is None:
        raise bad_request("invalid file_id")
    kind = data["kind"]
    folder, extension = _FILE_PATH_DIRS.get(kind, "files"), _EXTENSIONS.get(kind, "pdf")
    data.setdefault("file_path", f"{folder}/file_{len(state.files)}.{extension}")
    return {
        k: data[k] for k in ("file_id", "file_unique_id", "file_size", "file_path") if k in data
    }


METHODS = {
    "sendPhoto": send_photo,
    "sendDocument": send_document,
    "sendMediaGroup": send_media_group,
    "getFile": get_file,
}
