"""`triage models list|promote|rollback`: the saved model versions, and which one the service loads."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from agents.cli.common import SettingsFn, add_data_dir, add_embedder, command, group
from agents.errors import DataError

if TYPE_CHECKING:
    from agents.models.records import VersionRecord
    from agents.models.versions import VersionStore

NEXT_START = (
    "running `triage serve` and `triage worker` processes swap it in within TRIAGE_MODELS_POLL seconds "
    "(5 by default; GET /v1/models says which version a server serves)"
)
FIELD_NAMES = ("category", "priority", "team")


def _versions(args: argparse.Namespace, settings_fn: SettingsFn) -> VersionStore:
    from agents.models.versions import VersionStore

    versions = VersionStore(settings_fn(args).model_dir)
    versions.adopt_legacy()  # models saved before versions are listed (and served) as the first version
    return versions


def _gate(record: VersionRecord) -> str:
    if record.gate is None:
        return ""
    if record.gate.promoted:
        return "promoted"
    return "passed, dry run" if record.gate.passed else "rejected"


def _row(record: VersionRecord, current: bool) -> str:
    created = f"{record.created_at:%Y-%m-%d %H:%M}" if record.created_at else "?"
    rows = f"{record.data.source_rows}+{record.data.reviewed_rows}"
    figures = [
        f"{record.figures[f].precision:.2f}/{record.figures[f].coverage:.2f}" if f in record.figures else "-"
        for f in FIELD_NAMES
    ]
    mark = "*" if current else " "
    return (
        f"{mark} {record.id:24s} {created:16s}  {record.source:11s} {rows:>9s}  "
        f"{figures[0]:>9s}  {figures[1]:>9s}  {figures[2]:>9s}  {_gate(record)}"
    ).rstrip()


def cmd_list(args: argparse.Namespace, settings_fn: SettingsFn) -> int:
    versions = _versions(args, settings_fn)
    ids, current = versions.ids(), versions.current_id()
    found: list[tuple[str, VersionRecord | None, str]] = []
    for version_id in ids:
        try:
            found.append((version_id, versions.record(version_id), ""))
        except DataError as exc:  # listed with its problem: one damaged record must not hide the others
            found.append((version_id, None, exc.problem))
    if args.json:
        print(
            json.dumps(
                [
                    {"id": vid, "current": vid == current, "record": r.model_dump(mode="json") if r else None}
                    | ({"problem": problem} if problem else {})
                    for vid, r, problem in found
                ],
                indent=2,
            )
        )
        return 0
    if not ids:
        print(f"no model versions in {versions.root}: `triage train` (or the first `triage serve`) makes one")
        return 0
    print(f"model versions in {versions.root} (* = current; held-out precision/coverage at each field's threshold)")
    print(
        f"  {'id':24s} {'created (UTC)':16s}  {'source':11s} {'rows':>9s}  {'category':>9s}  {'priority':>9s}  "
        f"{'team':>9s}  gate"
    )
    for version_id, record, problem in found:
        if record is None:
            print(f"{'*' if version_id == current else ' '} {version_id} unreadable: version.json {problem}")
        else:
            print(_row(record, version_id == current))
    print("rows = original rows + reviewed tickets; `triage models promote ID` serves another version")
    return 0


def _then(args: argparse.Namespace, settings_fn: SettingsFn) -> str:
    poll = settings_fn(args).models_poll
    if not poll:
        return "running servers and workers load it at their next start (TRIAGE_MODELS_POLL=0: no hot swap)"
    return (
        f"running `triage serve` and `triage worker` processes swap it in within {poll:g} s "
        "(TRIAGE_MODELS_POLL; GET /v1/models says which version a server serves)"
    )


def _check_servable(versions: VersionStore, version_id: str, args: argparse.Namespace, settings_fn: SettingsFn) -> None:
    """Refuse a version the service could not load: another model format, another embedder than configured, or
    model files that do not load (the running processes would refuse it too, and keep the version they serve)."""
    from agents.classical.artifacts import read_manifest
    from agents.classical.training import FORMAT, load_models
    from retrieval.factory import make_embedder

    settings = settings_fn(args)
    manifest = read_manifest(versions.model_dir(version_id), FORMAT)
    embedder = make_embedder(settings.embedder, settings.embed_precision)
    configured = embedder.name
    if manifest.get("embedder") != configured:
        raise DataError(
            str(versions.model_dir(version_id)),
            f"{version_id} was trained with embedder {manifest.get('embedder')!r} but the service uses "
            f"{configured!r} (TRIAGE_EMBEDDER or --embedder): it would be retrained at start, not served",
        )
    try:
        load_models(versions.model_dir(version_id), embedder)
    except Exception as exc:  # a damaged models.joblib, say: refused here rather than by every running process
        raise DataError(
            str(versions.model_dir(version_id)), f"{version_id} does not load ({type(exc).__name__}: {exc})"[:600]
        ) from None


def cmd_promote(args: argparse.Namespace, settings_fn: SettingsFn) -> int:
    versions = _versions(args, settings_fn)
    version_id = versions.resolve(args.id)
    versions.record(version_id)  # a damaged record is refused before the pointer moves
    _check_servable(versions, version_id, args, settings_fn)
    before, now = versions.promote(version_id)
    if before == now:
        print(f"{now} is already current")
    else:
        print(f"{now} is now current (was {before or 'none'}); {_then(args, settings_fn)}")
    return 0


def cmd_rollback(args: argparse.Namespace, settings_fn: SettingsFn) -> int:
    left, now = _versions(args, settings_fn).rollback()
    print(f"{now} is current again (was {left}); {_then(args, settings_fn)}")
    return 0


def add_parsers(sub: Any, settings_fn: SettingsFn) -> None:
    models = group(
        sub,
        "models",
        "list the saved model versions, promote one, or roll back to the previous one",
        "triage models list",
        "triage models promote v0003",
        "triage models rollback",
    )
    p = command(
        models,
        "list",
        "list model versions: id, created, current, source, rows, held-out precision/coverage, gate",
        "triage models list",
        "triage models list --json",
        more="Every trained model set is kept as a version in the data folder's models/versions/; models/current.json\n"
        "names the one the service loads. Sources: first-start, train, retrain (with the gate's verdict), legacy.",
    )
    p.add_argument("--json", action="store_true", help="print a JSON array of the version records")
    add_data_dir(p)
    p.set_defaults(func=lambda a: cmd_list(a, settings_fn))

    p = command(
        models,
        "promote",
        "make a version current (the one it replaces can be rolled back to)",
        "triage models promote v0003",
        "triage models promote v0003-20261204T101500Z --data-dir /srv/triage/data",
        more=f"The version's id or an unambiguous start of it. Then {NEXT_START}.",
    )
    p.add_argument("id", help="a version id as `triage models list` shows it, or its start (v0003)")
    add_data_dir(p)
    add_embedder(p, "the embedder the service uses (default: TRIAGE_EMBEDDER): the version must match it")
    p.set_defaults(func=lambda a: cmd_promote(a, settings_fn))

    p = command(
        models,
        "rollback",
        "make the previously current version current again",
        "triage models rollback",
        more=f"Repeatable: each rollback goes one version further back in what was current. Then {NEXT_START}.",
    )
    add_data_dir(p)
    p.set_defaults(func=lambda a: cmd_rollback(a, settings_fn))
