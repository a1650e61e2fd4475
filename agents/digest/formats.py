"""The digest in a format named on the command line or in a request: Markdown, JSON or HTML."""

from __future__ import annotations

from agents.digest.html import to_html
from agents.digest.models import Digest
from agents.digest.render import to_json, to_markdown

FORMATS = ("md", "json", "html")


def render(d: Digest, fmt: str) -> str:
    """The digest as `md`, `json` or `html`."""
    if fmt == "md":
        return to_markdown(d)
    if fmt == "json":
        return to_json(d)
    if fmt == "html":
        return to_html(d)
    raise ValueError(f"unknown digest format {fmt!r}: expected md, json or html")
