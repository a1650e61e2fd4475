"""Versioned prompt files (name.vN.md) and a loader that fails loudly on a missing or unused variable."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

PROMPT_DIR = Path(__file__).resolve().parent
VARIABLE = re.compile(r"\{\{\s*([a-z_][a-z0-9_]*)\s*\}\}")
MARKER = re.compile(r"^<!--\s*(system|user)\s*-->\s*$", re.MULTILINE)
NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
VERSION = re.compile(r"^v\d+$")


class PromptError(ValueError):
    """A prompt file is missing or malformed, or was rendered with the wrong variables."""

    def __init__(self, prompt: str, problem: str, missing: list[str] | None = None, unused: list[str] | None = None):
        self.prompt, self.problem = prompt, problem
        self.missing, self.unused = missing or [], unused or []
        super().__init__(f"prompt {prompt}: {problem}")


@dataclass(frozen=True)
class Prompt:
    """A system and a user template; `{{name}}` marks a variable."""

    id: str  # e.g. classify.v1
    system: str
    user: str

    @property
    def variables(self) -> frozenset[str]:
        return frozenset(VARIABLE.findall(self.system) + VARIABLE.findall(self.user))

    def render(self, **values: object) -> list[dict[str, str]]:
        """The chat messages, every variable filled in one pass (a value's own `{{x}}` stays literal)."""
        missing = sorted(self.variables - values.keys())
        unused = sorted(values.keys() - self.variables)
        if missing or unused:
            parts = [f"missing {missing}" if missing else "", f"unused {unused}" if unused else ""]
            raise PromptError(self.id, "; ".join(p for p in parts if p), missing=missing, unused=unused)
        text = {k: str(v) for k, v in values.items()}

        def fill(template: str) -> str:
            return VARIABLE.sub(lambda m: text[m.group(1)], template)

        return [{"role": "system", "content": fill(self.system)}, {"role": "user", "content": fill(self.user)}]


def parse_prompt(prompt_id: str, source: str) -> Prompt:
    """Text before `<!-- system -->` is notes for people; then the system part, then `<!-- user -->`."""
    found = list(MARKER.finditer(source))
    names = [m.group(1) for m in found]
    if names != ["system", "user"]:
        raise PromptError(prompt_id, f"needs one <!-- system --> then one <!-- user --> line, found {names}")
    system = source[found[0].end() : found[1].start()].strip()
    user = source[found[1].end() :].strip()
    if not system or not user:
        raise PromptError(prompt_id, "the system and the user part must both have text")
    for part in (system, user):
        stray = VARIABLE.sub("", part)
        if "{{" in stray or "}}" in stray:
            raise PromptError(prompt_id, "a '{{' or '}}' that is not a {{variable}} (lower-case name)")
    return Prompt(prompt_id, system, user)


def load_prompt(name: str, version: str = "v1", directory: Path = PROMPT_DIR) -> Prompt:
    """Read `{name}.{version}.md` from the prompts folder."""
    prompt_id = f"{name}.{version}"
    if not NAME.match(name) or not VERSION.match(version):
        raise PromptError(prompt_id, "a prompt is named like classify.v1")
    path = Path(directory) / f"{prompt_id}.md"
    if not path.is_file():
        raise PromptError(prompt_id, f"no file {path}")
    return parse_prompt(prompt_id, path.read_text(encoding="utf-8"))


def data_block(text: str, tag: str = "ticket", **attributes: str) -> str:
    """Untrusted text between <tag> and </tag>; the text cannot close (or open) the block itself."""
    if not NAME.match(tag):
        raise ValueError(f"bad tag {tag!r}")
    text = re.sub(rf"<(/?\s*){re.escape(tag)}", lambda m: f"&lt;{m.group(1)}{tag}", text, flags=re.IGNORECASE)
    attrs = "".join(f' {k}="{str(v).replace(chr(34), chr(39))}"' for k, v in attributes.items())
    return f"<{tag}{attrs}>\n{text.strip()}\n</{tag}>"
