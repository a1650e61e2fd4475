"""Vendor text as triage reads it: HTML bodies as plain text, ISO 8601 times as aware UTC datetimes, form values."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

from agents.types import MAX_INTAKE_VALUE_CHARS

SKIP_TAGS = {"script", "style", "head", "title"}
BLOCK_TAG = re.compile(r"p|div|br|li|tr|blockquote|pre|h[1-6]|ul|ol|table")  # a line break before and after


class _HtmlText(HTMLParser):
    """Article HTML as plain text: blocks and <br> become line breaks, scripts and styles are dropped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in SKIP_TAGS:
            self._skip += 1
        elif BLOCK_TAG.fullmatch(tag):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif BLOCK_TAG.fullmatch(tag):
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(re.sub(r"[ \t\r\f\v]+", " ", data.replace("\n", " ")))

    def text(self) -> str:
        lines = [line.strip() for line in "".join(self.parts).split("\n")]
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def plain_text(body: str, content_type: str | None) -> str:
    """A body as plain text: HTML when the content type says so (or, without one, when it holds markup)."""
    kind = (content_type or "").lower()
    if "html" not in kind and (kind or not re.search(r"<(br|div|p|span|img|a|b|i)\b", body, re.I)):
        return body.strip()  # text/plain, or no content type and no markup
    parser = _HtmlText()
    parser.feed(body)
    parser.close()
    return parser.text()


def iso_time(value: Any) -> datetime | None:
    """An ISO 8601 time ("2026-03-02T09:15:27Z", "2026-12-05T10:00:00.000+0000") as an aware datetime, UTC when
    it names no zone; None when absent or not a time."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def intake_of(**values: str) -> dict[str, str]:
    """A vendor's form values as a ticket's intake: the non-empty ones, each cut to the ticket's limit."""
    return {name: value.strip()[:MAX_INTAKE_VALUE_CHARS] for name, value in values.items() if value.strip()}
