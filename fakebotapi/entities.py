"""Telegram's ``parse_mode``: HTML, MarkdownV2 and legacy Markdown turned into plain text and
entities (offsets in UTF-16 code units), with the 400 errors Telegram gives for bad markup.

Not faked: entities for blockquotes in MarkdownV2, and Telegram's auto-detection of URLs and
mentions in the bot's texts.
"""

from __future__ import annotations

import html
import re

from fakebotapi.errors import bad_request, parse_error
from fakebotapi.params import JSON


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units, the unit of Telegram entity offsets."""
    return len(text.encode("utf-16-le")) // 2


_HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "code": "code",
    "pre": "pre",
    "a": "text_link",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_HTML_TAG_RE = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)((?:\s[^<>]*)?)>")
_HTML_ATTR_RE = re.compile(r"""([a-z-]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"']+))""")


def _byte_offset(src: str, index: int) -> int:
    return len(src[:index].encode())


def _html_entity(tag: str, attrs: str, offset: int, length: int) -> JSON:
    entity: JSON = {"type": _HTML_TAGS[tag], "offset": offset, "length": length}
    found = {
        m.group(1): m.group(2) or m.group(3) or m.group(4) or ""
        for m in _HTML_ATTR_RE.finditer(attrs)
    }
    if tag == "a":
        entity["url"] = html.unescape(found.get("href", ""))
    if tag == "blockquote" and "expandable" in attrs:
        entity["type"] = "expandable_blockquote"
    return entity


def parse_html(src: str) -> tuple[str, list[JSON]]:
    """Telegram's HTML parse mode: plain text and entities, or a 400 ``ApiError``."""
    out: list[str] = []
    entities: list[JSON] = []
    stack: list[tuple[str, str, int, int]] = []  # tag, attrs, utf16 start, source index
    length = 0
    pos = 0
    while pos < len(src):
        lt = src.find("<", pos)
        chunk = html.unescape(src[pos:] if lt == -1 else src[pos:lt])
        out.append(chunk)
        length += utf16_len(chunk)
        if lt == -1:
            break
        match = _HTML_TAG_RE.match(src, lt)
        if not match:
            raise parse_error(
                f'Unsupported start tag "{src[lt + 1 : lt + 6]}" at byte offset '
                f"{_byte_offset(src, lt)}"
            )
        closing, tag, attrs = match.group(1) == "/", match.group(2).lower(), match.group(3)
        if tag not in _HTML_TAGS:
            raise parse_error(
                f'Unsupported start tag "{tag}" at byte offset {_byte_offset(src, lt)}'
            )
        if not closing:
            stack.append((tag, attrs, length, lt))
        elif not stack or stack[-1][0] != tag:
            raise parse_error(
                f"Unmatched end tag at byte offset {_byte_offset(src, lt)}, "
                f'expected "</{stack[-1][0] if stack else tag}>", found "</{tag}>"'
            )
        else:
            open_tag, open_attrs, start, _ = stack.pop()
            if length > start:
                entities.append(_html_entity(open_tag, open_attrs, start, length - start))
        pos = match.end()
    if stack:
        tag = stack[-1][0]
        raise parse_error(f'Can\'t find end tag corresponding to start tag "{tag}"')
    return "".join(out), sorted(entities, key=lambda e: e["offset"])


_MD_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "code": "Code",
    "pre": "Pre",
    "text_link": "TextUrl",
}
_MDV2_RESERVED = set("_*[]()~`>#+-=|{}.!")


class _MarkdownParser:
    """Telegram's MarkdownV2 (``legacy=False``) or legacy Markdown parse mode."""

    def __init__(self, src: str, *, legacy: bool) -> None:
        self.src = src
        self.legacy = legacy
        self.out: list[str] = []
        self.length = 0
        self.entities: list[JSON] = []
        self.stack: list[tuple[str, int, int]] = []  # type, utf16 start, source index
        self.pos = 0

    def emit(self, text: str) -> None:
        self.out.append(text)
        self.length += utf16_len(text)

    def toggle(self, kind: str, width: int) -> None:
        if self.stack and self.stack[-1][0] == kind:
            _, start, _ = self.stack.pop()
            if self.length > start:
                self.entities.append({"type": kind, "offset": start, "length": self.length - start})
        elif self.legacy and self.stack:
            self.emit(self.src[self.pos : self.pos + width])
        else:
            self.stack.append((kind, self.length, self.pos))
        self.pos += width

    def marker(self) -> tuple[str, int] | None:
        src, pos = self.src, self.pos
        if src.startswith("```", pos):
            return "pre", 3
        simple = {"`": "code", "*": "bold", "_": "italic"}
        if not self.legacy:
            if src.startswith("||", pos):
                return "spoiler", 2
            if src.startswith("__", pos):
                return "underline", 2
            simple["~"] = "strikethrough"
        kind = simple.get(src[pos])
        return (kind, 1) if kind else None

    def in_code(self) -> bool:
        return bool(self.stack) and self.stack[-1][0] in ("code", "pre")

    def link_end(self) -> None:
        close = self.src.find(")", self.pos + 2)
        if not self.src.startswith("(", self.pos + 1) or close == -1:
            raise parse_error(
                f"Can't find end of TextUrl entity at byte offset "
                f"{_byte_offset(self.src, self.stack[-1][2])}"
            )
        _, start, _ = self.stack.pop()
        url = self.src[self.pos + 2 : close].replace("\\)", ")").replace("\\\\", "\\")
        if self.length > start:
            self.entities.append(
                {"type": "text_link", "offset": start, "length": self.length - start, "url": url}
            )
        self.pos = close + 1

    def step(self) -> None:
        char = self.src[self.pos]
        if (
            char == "\\"
            and self.pos + 1 < len(self.src)
            and (not self.legacy or self.src[self.pos + 1] in "_*`[")
        ):
            self.emit(self.src[self.pos + 1])
            self.pos += 2
        elif self.in_code() and char != "`":
            self.emit(char)
            self.pos += 1
        elif (found := self.marker()) is not None:
            self.toggle(*found)
        elif char == "[" and not (self.legacy and self.stack):
            self.stack.append(("text_link", self.length, self.pos))
            self.pos += 1
        elif char == "]" and self.stack and self.stack[-1][0] == "text_link":
            self.link_end()
        elif not self.legacy and char in _MDV2_RESERVED and not self.at_quote():
            raise parse_error(
                f"Character '{char}' is reserved and must be escaped with the preceding '\\'"
            )
        else:
            self.emit("" if char == ">" and not self.legacy else char)
            self.pos += 1

    def at_quote(self) -> bool:
        return self.src[self.pos] == ">" and (self.pos == 0 or self.src[self.pos - 1] == "\n")

    def parse(self) -> tuple[str, list[JSON]]:
        while self.pos < len(self.src):
            self.step()
        if self.stack:
            kind, _, index = self.stack[-1]
            raise parse_error(
                f"Can't find end of {_MD_NAMES.get(kind, kind)} entity at byte "
                f"offset {_byte_offset(self.src, index)}"
            )
        return "".join(self.out), sorted(self.entities, key=lambda e: e["offset"])


def parse_entities(text: str, parse_mode: str | None) -> tuple[str, list[JSON]]:
    """Apply ``parse_mode`` like Telegram: returns the plain text and its entities."""
    mode = (parse_mode or "").lower()
    if mode == "html":
        return parse_html(text)
    if mode in ("markdownv2", "markdown"):
        return _MarkdownParser(text, legacy=mode == "markdown").parse()
    if mode:
        raise bad_request(f"unsupported parse_mode {parse_mode}")
    return text, []
