"""What every command shares: Settings from the options and TRIAGE_* (bad values as one line each), help layout."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agents.errors import TriageError
from agents.settings import Settings
from retrieval.factory import EMBEDDERS

if TYPE_CHECKING:
    from pydantic import ValidationError
    from pydantic_core import ErrorDetails

    from retrieval.embedders import Embedder

SettingsFn = Callable[[argparse.Namespace], Any]
# settings a command line option may override
OPTIONS = {"data_dir": "--data-dir", "embedder": "--embedder", "config_dir": "--config"}
_DEFAULTS = {name: Settings.model_fields[name].default for name in OPTIONS}
DATA_DIR_HELP = (
    f"data folder of models, SOP index and triage.db (default: TRIAGE_DATA_DIR, else {_DEFAULTS['data_dir']})"
)
MEMBERS_HELP = "ensemble members: svm, svmt, lr, knnK, ftE, e.g. svmt,lr,knn10,knn30 (default: TRIAGE_MEMBERS)"
EMBEDDER_HELP = (
    f"sentence embedder (default: TRIAGE_EMBEDDER, else {_DEFAULTS['embedder']}); hashing needs no model (quick tries)"
)


class SettingsInvalid(TriageError):
    """Settings that do not validate; `lines` says, one bad setting a line, what to change."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        super().__init__("; ".join(lines))


def _allowed(error: ErrorDetails) -> str:
    """What a setting accepts, in words, from one pydantic error ("expected one of 'a' or 'b'")."""
    ctx, kind = error.get("ctx") or {}, error["type"]
    bounds = {
        "greater_than": "a number above {gt}",
        "greater_than_equal": "a number of at least {ge}",
        "less_than": "a number below {lt}",
        "less_than_equal": "a number of at most {le}",
    }
    if kind == "literal_error":
        return f"expected one of {ctx['expected']}"
    if kind in bounds:
        return "expected " + bounds[kind].format(**{k: f"{v:g}" if isinstance(v, float) else v for k, v in ctx.items()})
    if kind.startswith("int_"):
        return "expected a whole number"
    if kind.startswith("float_"):
        return "expected a number"
    if kind.startswith("bool_"):
        return "expected true or false"
    if kind == "string_pattern_mismatch":
        return f"expected text matching {ctx['pattern']}"
    msg = str(error["msg"])
    return msg[:1].lower() + msg[1:]


def env_name(field: str) -> str:
    """The environment variable that sets `field` (TRIAGE_<FIELD>, or the field's alias such as OPENAI_API_KEY)."""
    info = Settings.model_fields.get(field)
    if info is not None and isinstance(info.validation_alias, str):
        return info.validation_alias.upper()
    return f"{Settings.model_config.get('env_prefix', '')}{field}".upper()


def settings_problems(exc: ValidationError, overrides: dict[str, Any] | None = None) -> list[str]:
    """One line per bad setting: where it was set (env var or option), the bad value and what is allowed."""
    lines = []
    for error in exc.errors():
        field, *inner = [str(part) for part in error["loc"]] or ["?"]
        where = OPTIONS.get(field, env_name(field)) if field in (overrides or {}) else env_name(field)
        info = Settings.model_fields.get(field)
        value = "<hidden>" if info is not None and not info.repr else repr(error.get("input"))
        item = f" (item {inner[0]})" if inner else ""
        lines.append(f"{where}={value[:80]}{item} is not valid: {_allowed(error)}")
    return lines


def build_settings(overrides: dict[str, Any]) -> Settings:
    """Settings from TRIAGE_* (and .env) plus the command line's overrides; bad values raise SettingsInvalid."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsInvalid(settings_problems(exc, overrides)) from None
    except SettingsError as exc:  # a list or mapping setting that is not JSON
        found = re.search(r'field "(\w+)"', str(exc))
        name = env_name(found.group(1)) if found else "a TRIAGE_* setting"
        reason = f" ({exc.__cause__})" if exc.__cause__ else ""
        raise SettingsInvalid([f"{name} is not valid JSON{reason}: expected a JSON list or object"]) from None


def settings(args: argparse.Namespace) -> Settings:
    """The Settings of one command: --data-dir and --embedder, where the command has them, override TRIAGE_*."""
    return build_settings({k: v for k in OPTIONS if (v := getattr(args, k, None))})


def embedder(args: argparse.Namespace) -> Embedder:
    """The embedder named by --embedder, else by the settings (TRIAGE_EMBEDDER)."""
    from retrieval.factory import make_embedder

    chosen = settings(args)
    return make_embedder(chosen.embedder, chosen.embed_precision)


def command(sub: Any, name: str, summary: str, *examples: str, more: str = "") -> argparse.ArgumentParser:
    """A sub-command whose --help shows `summary` (and `more`) on top and the example command lines below."""
    lines = "\n".join(f"  {example}" for example in examples)
    return sub.add_parser(  # type: ignore[no-any-return]
        name,
        help=summary,
        description=f"{summary}\n\n{more}".strip(),
        epilog=f"examples:\n{lines}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def group(sub: Any, name: str, summary: str, *examples: str) -> Any:
    """A command holding sub-commands (`triage kb index`, `triage kb search`): returns their subparsers."""
    dest = f"{name}_command"
    return command(sub, name, summary, *examples).add_subparsers(
        dest=dest, required=True, metavar="COMMAND", help=f"run `triage {name} COMMAND --help` for its options"
    )


def add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help=DATA_DIR_HELP)
    p.add_argument(
        "--config",
        dest="config_dir",
        metavar="DIR",
        help="a helpdesk written by `triage onboard --out DIR`: its kb/, tickets.jsonl and data/ (TRIAGE_CONFIG_DIR)",
    )


def add_embedder(p: argparse.ArgumentParser, help: str = EMBEDDER_HELP) -> None:
    p.add_argument("--embedder", choices=EMBEDDERS, help=help)
