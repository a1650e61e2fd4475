"""Import a folder of Markdown or HTML SOPs into kb/sops/ with the front matter the KB loader accepts."""

from __future__ import annotations

import re
from datetime import date, datetime
from html.parser import HTMLParser
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict

from agents.errors import DataError
from agents.onboard.labels import slug
from agents.onboard.tables import decode
from kb.loader import GENERAL_SERVICE
from retrieval.markdown import FrontMatterError, split_front_matter

MARKDOWN = (".md", ".markdown")
HTML = (".html", ".htm")
H1 = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.M)
SKIP_TAGS = {"script", "style", "noscript", "template", "svg"}
BLOCK_TAGS = {"p", "div", "section", "article", "header", "footer", "main", "table", "tr", "blockquote", "ul", "ol"}


class ImportedSop(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str  # path relative to the --sops folder
    id: str
    title: str
    owner_team: str
    notes: list[str] = []  # e.g. "not UTF-8: 3 lines read as cp1252", "front matter unreadable: imported as text"


class SopImport(BaseModel):
    """What --sops brought in and what it left, each file counted once."""

    model_config = ConfigDict(extra="forbid")

    folder: str
    imported: list[ImportedSop] = []
    skipped: dict[str, str] = {}  # path -> why (not Markdown or HTML, no text)


class HtmlToMarkdown(HTMLParser):
    """HTML as plain Markdown with the standard library: headings, paragraphs, list items, preformatted blocks; the
    <title> is kept apart; scripts and styles are dropped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self.lists: list[str] = []
        self._skip = 0
        self._in_title = False
        self._pre = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in SKIP_TAGS:
            self._skip += 1
        elif tag == "title":
            self._in_title = True
        elif re.fullmatch(r"h[1-6]", tag):
            self.parts.append("\n\n" + "#" * int(tag[1]) + " ")
        elif tag == "br":
            self.parts.append("\n")
        elif tag == "li":
            self.parts.append("\n" + ("1. " if self.lists and self.lists[-1] == "ol" else "- "))
        elif tag == "pre":
            self._pre = True
            self.parts.append("\n\n```\n")
        if tag in ("ul", "ol"):
            self.lists.append(tag)
        if tag in BLOCK_TAGS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag == "title":
            self._in_title = False
        elif re.fullmatch(r"h[1-6]", tag) or tag in BLOCK_TAGS:
            self.parts.append("\n\n")
        elif tag == "pre":
            self._pre = False
            self.parts.append("\n```\n\n")
        if tag in ("ul", "ol") and self.lists:
            self.lists.pop()

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._in_title:
            self.title += data
        else:
            self.parts.append(data if self._pre else re.sub(r"\s+", " ", data))

    def markdown(self) -> str:
        lines, fenced = [], False
        for line in "".join(self.parts).split("\n"):
            fenced ^= line.strip() == "```"
            lines.append(line.rstrip() if fenced or line.strip() == "```" else line.strip())
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _last_reviewed(meta: dict[str, object], path: Path) -> date:
    value = meta.get("last_reviewed")
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        return datetime.fromtimestamp(path.stat().st_mtime).date()  # when the file was last changed


def _read(path: Path, notes: list[str]) -> tuple[dict[str, object], str, str]:
    """(front matter, Markdown body, title) of one SOP file."""
    text, fallback = decode(path.read_bytes())
    if fallback:
        notes.append("not UTF-8: " + ", ".join(f"{n} lines read as {enc}" for enc, n in fallback.items()))
    if path.suffix.lower() in HTML:
        parser = HtmlToMarkdown()
        parser.feed(text)
        parser.close()
        body = parser.markdown()
        heading = H1.search(body)
        return {}, body, " ".join(parser.title.split()) or (heading.group(1) if heading else "")
    try:
        meta, body = split_front_matter(text)
    except FrontMatterError as exc:
        notes.append(f"front matter unreadable ({exc}): imported as text")
        meta, body = {}, text
    heading = H1.search(body)
    return meta, body.strip(), str(meta.get("title") or (heading.group(1) if heading else ""))


def import_sops(folder: Path, out: Path, teams: list[str]) -> SopImport:
    """Write each Markdown or HTML file under `folder` to `out` as <id>.md: id from the front matter or the file name
    (prefixed sop-), title from the front matter, the first heading or <title> (else the file name), service
    `general` (the catalogue starts empty), owner_team from the front matter when it names a team, else the first
    (most frequent) team, last_reviewed from the front matter, else the file's modification date."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(str(folder), "--sops is not a folder of Markdown or HTML files")
    out.mkdir(parents=True, exist_ok=True)
    result = SopImport(folder=str(folder))
    taken: set[str] = set()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        rel = path.relative_to(folder).as_posix()
        if path.suffix.lower() not in MARKDOWN + HTML:
            result.skipped[rel] = "not Markdown or HTML"
            continue
        notes: list[str] = []
        meta, body, title = _read(path, notes)
        if not body:
            result.skipped[rel] = "no text"
            continue
        title = title or path.stem.replace("_", " ").replace("-", " ")
        named = slug(str(meta.get("id") or path.stem)) or "untitled"
        base = named if named.startswith("sop-") else f"sop-{named}"
        sop_id, n = base, 2
        while sop_id in taken:
            sop_id, n = f"{base}-{n}", n + 1
        taken.add(sop_id)
        owner = str(meta.get("owner_team") or "")
        owner = owner if owner in teams else teams[0]
        tags = meta.get("tags")
        front = {
            "id": sop_id,
            "title": title,
            "service": GENERAL_SERVICE,
            "owner_team": owner,
            "last_reviewed": _last_reviewed(meta, path),
            "tags": [str(t) for t in tags] if isinstance(tags, list) else [],
        }
        if not H1.search(body):
            body = f"# {title}\n\n{body}"
        dumped = yaml.safe_dump(front, sort_keys=False, allow_unicode=True)
        (out / f"{sop_id}.md").write_text(f"---\n{dumped}---\n{body}\n", encoding="utf-8")
        result.imported.append(ImportedSop(source=rel, id=sop_id, title=title, owner_team=owner, notes=notes))
    return result
