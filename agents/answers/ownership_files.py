"""Ownership files: Prow-style OWNERS (approvers/reviewers per folder) and CODEOWNERS (last matching pattern wins)."""

from __future__ import annotations

import logging
import re
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict

from agents.types import Owner

log = logging.getLogger(__name__)

OWNERS_NAME = "OWNERS"
CODEOWNERS_PLACES = ("CODEOWNERS", ".github/CODEOWNERS", "docs/CODEOWNERS", ".gitlab/CODEOWNERS")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OwnersFile(_Model):
    """One parsed OWNERS file: the folder it governs (relative to the tree root, "" for the root)."""

    path: str
    folder: str
    approvers: list[str] = []
    reviewers: list[str] = []
    component: str | None = None
    no_parent_owners: bool = False


class PathOwners(_Model):
    """Who approves and reviews one path, and the OWNERS files that said so (nearest first)."""

    path: str
    approvers: list[str]
    reviewers: list[str]
    component: str | None = None
    files: list[str]


class CodeOwnersRule(_Model):
    line: int
    pattern: str
    owners: list[str]


def _people(value: object) -> list[str] | None:
    """A list of handles, or None when the value is not a list of strings."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
        return None
    return [str(v).strip() for v in value if str(v).strip()]


def parse_owners(path: Path, root: Path) -> OwnersFile | None:
    """Parse one OWNERS file; a malformed one is skipped with a warning that names it."""
    folder = path.parent.relative_to(root).as_posix()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as exc:
        log.warning("skipping malformed OWNERS file %s: %s", path, exc.__class__.__name__)
        return None
    if not isinstance(data, dict):
        log.warning("skipping malformed OWNERS file %s: expected a mapping with approvers/reviewers", path)
        return None
    approvers, reviewers = _people(data.get("approvers")), _people(data.get("reviewers"))
    if approvers is None or reviewers is None:
        log.warning("skipping malformed OWNERS file %s: approvers and reviewers must be lists of handles", path)
        return None
    if not approvers and not reviewers:
        log.warning("skipping OWNERS file %s: it names no approvers and no reviewers", path)
        return None
    raw_options = data.get("options")
    options: dict[str, Any] = raw_options if isinstance(raw_options, dict) else {}
    component = data.get("component")
    return OwnersFile(
        path=str(path),
        folder="" if folder == "." else folder,
        approvers=approvers,
        reviewers=reviewers,
        component=str(component) if component else None,
        no_parent_owners=bool(options.get("no_parent_owners", False)),
    )


class OwnersTree:
    """Every OWNERS file under a root; a path is owned by its nearest OWNERS file and, unless that file sets
    `options: {no_parent_owners: true}`, by the OWNERS files of the folders above it too."""

    def __init__(self, root: Path, files: dict[str, OwnersFile], skipped: list[str] | None = None) -> None:
        self.root = root
        self.files = files  # folder -> OwnersFile
        self.skipped = skipped or []  # malformed OWNERS files (each logged with a warning)

    @classmethod
    def load(cls, root: Path) -> OwnersTree:
        root = Path(root)
        found: dict[str, OwnersFile] = {}
        skipped: list[str] = []
        if root.is_dir():
            for path in sorted(p for p in root.rglob(OWNERS_NAME) if p.is_file()):
                parsed = parse_owners(path, root)
                if parsed is None:
                    skipped.append(str(path))
                else:
                    found[parsed.folder] = parsed
        return cls(root, found, skipped)

    def __len__(self) -> int:
        return len(self.files)

    def chain(self, path: str | Path) -> list[OwnersFile]:
        """The OWNERS files that govern a path (relative to the root, or absolute under it), nearest first."""
        rel = Path(path)
        if rel.is_absolute():
            try:
                rel = rel.relative_to(self.root)
            except ValueError:
                return []
        parts = PurePosixPath(rel.as_posix()).parts
        chain: list[OwnersFile] = []
        for depth in range(len(parts), -1, -1):
            owners = self.files.get("/".join(parts[:depth]))
            if owners is not None:
                chain.append(owners)
                if owners.no_parent_owners:
                    break
        return chain

    def owners_of(self, path: str | Path) -> PathOwners | None:
        chain = self.chain(path)
        if not chain:
            return None
        return PathOwners(
            path=Path(path).as_posix(),
            approvers=_union(f.approvers for f in chain),
            reviewers=_union(f.reviewers for f in chain),
            component=next((f.component for f in chain if f.component), None) or _folder_name(chain[0]),
            files=[f.path for f in chain],
        )


def _folder_name(owners: OwnersFile) -> str | None:
    return PurePosixPath(owners.folder).name or None


def _union(lists: object) -> list[str]:
    out: list[str] = []
    for people in lists:  # type: ignore[attr-defined]
        out.extend(p for p in people if p not in out)
    return out


def _glob_to_regex(pattern: str) -> re.Pattern[str]:
    """GitHub CODEOWNERS: `*` stays inside a folder, `**` crosses folders, a leading or inner `/` anchors the
    pattern to the root, a folder owns everything below it, `dir/*` only its direct children, and a pattern
    without an inner `/` matches at any depth."""
    anchored = pattern.startswith("/") or "/" in pattern.rstrip("/")
    body = pattern.strip("/")
    out = ""
    i = 0
    while i < len(body):
        if body.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif body.startswith("**", i):
            out, i = out + ".*", i + 2
        elif body[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif body[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(body[i]), i + 1
    prefix = "^" if anchored else "^(?:.*/)?"
    last = body.rsplit("/", 1)[-1]
    below = "" if "*" in last and last != "**" else "(?:/.*)?"  # `docs/*` owns direct children only
    return re.compile(f"{prefix}{out}{below}$")


class CodeOwners:
    """A parsed CODEOWNERS file; for a path the last matching rule wins (a rule without owners unsets them)."""

    def __init__(self, rules: list[CodeOwnersRule], source: str = "") -> None:
        self.rules = rules
        self.source = source
        self._compiled = [(_glob_to_regex(r.pattern), r) for r in rules]

    @classmethod
    def parse(cls, text: str, source: str = "CODEOWNERS") -> CodeOwners:
        rules: list[CodeOwnersRule] = []
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.split(" #", 1)[0].strip()
            if not line or line.startswith("#") or (line.startswith("[") and line.endswith("]")):
                continue  # comments and GitLab section headers
            pattern, *owners = line.split()
            rules.append(CodeOwnersRule(line=number, pattern=pattern.replace("\\ ", " "), owners=owners))
        return cls(rules, source)

    @classmethod
    def find(cls, root: Path) -> CodeOwners | None:
        """The CODEOWNERS file at one of the usual places under root, if any."""
        for place in CODEOWNERS_PLACES:
            path = Path(root) / place
            if path.is_file():
                try:
                    return cls.parse(path.read_text(encoding="utf-8"), str(path))
                except UnicodeDecodeError:
                    log.warning("skipping CODEOWNERS file %s: not UTF-8 text", path)
        return None

    def rule_for(self, path: str) -> CodeOwnersRule | None:
        rel = PurePosixPath(path.replace("\\", "/")).as_posix().lstrip("/")
        last = None
        for regex, rule in self._compiled:
            if regex.match(rel):
                last = rule
        return last

    def owners_of(self, path: str) -> list[str]:
        rule = self.rule_for(path)
        return list(rule.owners) if rule else []


ALERT_NAME = re.compile(r"\b[A-Z][a-z0-9]+(?:[A-Z][A-Za-z0-9]*)+\b")  # CamelCase, e.g. KubePodCrashLooping


class DocumentOwners:
    """Owners of the documents under one root, from its OWNERS files (nearest folder up) or its CODEOWNERS file.

    `searcher` (optional) is a HybridSearcher over the same root, used when a question names no document."""

    def __init__(self, root: Path, tree: OwnersTree, codeowners: CodeOwners | None = None, searcher: Any = None):
        self.root = Path(root)
        self.tree = tree
        self.codeowners = codeowners
        self.searcher = searcher
        self.by_stem: dict[str, list[str]] = {}
        if self.root.is_dir():
            for path in sorted(self.root.rglob("*.md")):
                rel = path.relative_to(self.root).as_posix()
                self.by_stem.setdefault(path.stem.lower(), []).append(rel)

    @classmethod
    def load(cls, root: Path, searcher: Any = None) -> DocumentOwners:
        return cls(Path(root), OwnersTree.load(root), CodeOwners.find(root), searcher)

    def owner_of_path(self, rel: str) -> Owner | None:
        """OWNERS approvers when an OWNERS file governs the path, else the last matching CODEOWNERS rule."""
        found = self.tree.owners_of(rel)
        if found is not None and found.approvers:
            team = found.component or "owners"
            evidence = [f"{rel} is governed by {found.files[0]} (nearest OWNERS file)"]
            for f in self.tree.chain(rel):
                evidence.append(f"{f.path}: approvers {', '.join(f.approvers)}; reviewers {', '.join(f.reviewers)}")
            return Owner(team=_slug(team), team_name=team, people=found.approvers, evidence=evidence)
        rule = self.codeowners.rule_for(rel) if self.codeowners else None
        if rule is not None and rule.owners:
            return Owner(
                team=_slug(rule.owners[0]),
                team_name=rule.owners[0],
                people=list(rule.owners),
                evidence=[f"{self.codeowners.source}:{rule.line}: '{rule.pattern}' is the last pattern matching {rel}"],  # type: ignore[union-attr]
            )
        return None

    def governed(self, rel: str) -> bool:
        return self.owner_of_path(rel) is not None

    def files_named(self, name: str) -> list[str]:
        """Documents whose file name (without .md) is `name`, those with an owner first."""
        paths = self.by_stem.get(name.lower(), [])
        return sorted(paths, key=lambda p: not self.governed(p))

    def owner_for(self, question: str, k: int = 5) -> tuple[Owner | None, str | None]:
        """(owner, document) for a question: a document named in it (an alert name), else the best search hit
        that an ownership file governs."""
        for name in ALERT_NAME.findall(question):
            for rel in self.files_named(name):
                owner = self.owner_of_path(rel)
                if owner is not None:
                    return owner.model_copy(
                        update={"evidence": [f"question names {name} -> {rel}", *owner.evidence]}
                    ), rel
        if self.searcher is None or not question.strip():
            return None, None
        for hit in self.searcher.search(question, k=k):
            owner = self.owner_of_path(hit.path)
            if owner is not None:
                why = f"search hit {hit.path} ({hit.title}, score {hit.score:.3f})"
                return owner.model_copy(update={"evidence": [why, *owner.evidence]}), hit.path
        return None, None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "owners"
