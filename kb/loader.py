"""Load and cross-check the knowledge base; every error names the file, the field and what was expected."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from kb.models import Catalogue, Service, SopMeta, Taxonomy, Team, Teams
from retrieval.markdown import FrontMatterError, split_front_matter

M = TypeVar("M", bound=BaseModel)
GENERAL_SERVICE = "general"  # an SOP's service when it is about no one catalogue service (e.g. one imported by onboard)


class KbError(ValueError):
    """A knowledge-base file is missing or invalid."""

    def __init__(self, path: Path | str, field: str, expected: str, got: object = None) -> None:
        self.path, self.field, self.expected, self.got = str(path), field, expected, got
        got_text = "" if got is None else f", got {got!r}"
        super().__init__(f"{self.path}: {field}: expected {expected}{got_text}")


@dataclass(frozen=True)
class KnowledgeBase:
    root: Path
    taxonomy: Taxonomy
    teams: dict[str, Team]
    services: dict[str, Service]
    sops: dict[str, SopMeta] = field(default_factory=dict)

    def team_of(self, service_id: str) -> Team:
        return self.teams[self.services[service_id].owner_team]


def _field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def validate(path: Path, data: object, model: type[M]) -> M:
    """Validate parsed data against a model, raising KbError on the first problem."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise KbError(path, _field_path(tuple(err["loc"])), err["msg"].lower(), err.get("input")) from None


def load_yaml(path: Path, model: type[M]) -> M:
    if not path.is_file():
        raise KbError(path, "(file)", "a readable YAML file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise KbError(path, "(file)", f"valid YAML ({exc.__class__.__name__})") from None
    return validate(path, data, model)


def _check_catalogue(path: Path, catalogue: Catalogue, teams: dict[str, Team], taxonomy: Taxonomy) -> None:
    seen: dict[str, str] = {}
    for i, svc in enumerate(catalogue.services):
        where = f"services[{i}]"
        if svc.id in seen:
            raise KbError(path, f"{where}.id", "a unique service id", svc.id)
        seen[svc.id] = svc.id
        if svc.owner_team not in teams:
            raise KbError(path, f"{where}.owner_team", "a team id from teams.yaml", svc.owner_team)
        if svc.category not in taxonomy.category_ids:
            raise KbError(path, f"{where}.category", "a category id from taxonomy.yaml", svc.category)
        members = set(teams[svc.owner_team].handles)
        people = [("owners", h) for h in svc.owners] + [("oncall.rotation", h) for h in svc.oncall.rotation]
        for name, handle in [*people, ("escalation", svc.escalation)]:
            if handle not in members:
                raise KbError(path, f"{where}.{name}", f"a member of team {svc.owner_team}", handle)


def _check_taxonomy(path: Path, taxonomy: Taxonomy, teams: dict[str, Team]) -> None:
    import re

    for i, cat in enumerate(taxonomy.categories):
        if cat.default_team not in teams:
            raise KbError(path, f"categories[{i}].default_team", "a team id from teams.yaml", cat.default_team)
    for i, rule in enumerate(taxonomy.rules):
        try:
            re.compile(rule.pattern)
        except re.error as exc:
            raise KbError(path, f"rules[{i}].pattern", f"a valid regular expression ({exc})") from None


def load_sop_meta(path: Path, services: dict[str, Service], teams: dict[str, Team]) -> SopMeta:
    try:
        meta, _ = split_front_matter(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise KbError(path, "(file)", "UTF-8 text") from None
    except FrontMatterError as exc:
        raise KbError(path, "front matter", str(exc)) from None
    sop = validate(path, meta, SopMeta)
    if sop.service not in services and sop.service != GENERAL_SERVICE:
        raise KbError(path, "service", f"a service id from catalogue.yaml (or {GENERAL_SERVICE})", sop.service)
    if sop.owner_team not in teams:
        raise KbError(path, "owner_team", "a team id from teams.yaml", sop.owner_team)
    return sop


def load_kb(root: Path) -> KnowledgeBase:
    """Load the whole knowledge base in `root` and check every cross-reference."""
    root = Path(root)
    if not root.is_dir():
        raise KbError(root, "(folder)", "a knowledge-base folder with taxonomy.yaml, teams.yaml, catalogue.yaml")
    teams_file = load_yaml(root / "teams.yaml", Teams)
    teams: dict[str, Team] = {}
    for i, team in enumerate(teams_file.teams):
        if team.id in teams:
            raise KbError(root / "teams.yaml", f"teams[{i}].id", "a unique team id", team.id)
        teams[team.id] = team
    taxonomy = load_yaml(root / "taxonomy.yaml", Taxonomy)
    _check_taxonomy(root / "taxonomy.yaml", taxonomy, teams)
    catalogue = load_yaml(root / "catalogue.yaml", Catalogue)
    _check_catalogue(root / "catalogue.yaml", catalogue, teams, taxonomy)
    services = {s.id: s for s in catalogue.services}
    sops: dict[str, SopMeta] = {}
    for path in sorted((root / "sops").glob("*.md")):
        sop = load_sop_meta(path, services, teams)
        if sop.id in sops:
            raise KbError(path, "id", "a unique SOP id", sop.id)
        sops[sop.id] = sop
    return KnowledgeBase(root=root, taxonomy=taxonomy, teams=teams, services=services, sops=sops)
