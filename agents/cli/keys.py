"""`triage keys create|list|revoke`: API keys straight in the store, e.g. to recover a lost first-start admin key."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any, cast

from agents.cli.common import SettingsFn, add_data_dir, command, group

if TYPE_CHECKING:
    from agents.store.tickets import Store
    from agents.web.auth import ApiKeyInfo, Scope

SCOPE_HELP = (
    "what the key may do: admin (everything, keys too), triage (send tickets and feedback), "
    "read (read tickets and metrics); repeat for several"
)


def scope(value: str) -> str:
    """An argparse type: one of the scopes the key ring knows (checked when the option is used)."""
    from agents.web.auth import SCOPES

    if value not in SCOPES:
        raise argparse.ArgumentTypeError(f"{value!r} is not a scope: use {', '.join(SCOPES)}")
    return value


def _open(args: argparse.Namespace, settings_fn: SettingsFn) -> Store:
    from agents.store.tickets import Store

    chosen = settings_fn(args)
    return Store.open(chosen.data_dir, chosen.database_url)


def _where(store: Store) -> str:
    return store.engine.url.render_as_string(hide_password=True)


def _row(info: ApiKeyInfo) -> str:
    state = f"revoked {info.revoked_at:%Y-%m-%d %H:%M}" if info.revoked_at else "active"
    return f"{info.id}  {state:22s}  {','.join(info.scopes):18s}  {info.created_at:%Y-%m-%d %H:%M}  {info.name}"


def cmd_create(args: argparse.Namespace, settings_fn: SettingsFn) -> int:
    from agents.web.auth import KeyRing

    store = _open(args, settings_fn)
    try:
        info, secret = KeyRing(store).create(args.name, cast("list[Scope]", args.scope))
    finally:
        store.close()
    print(f"created key {info.id} {info.name!r} with scope {', '.join(info.scopes)} in {_where(store)}")
    print(f"\n    {secret}\n")
    print("this is the only time the key is shown: only a salted hash of it is stored. Send it as X-API-Key.")
    return 0


def cmd_list(args: argparse.Namespace, settings_fn: SettingsFn) -> int:
    from agents.web.auth import KeyRing

    store = _open(args, settings_fn)
    try:
        keys = KeyRing(store).list()
    finally:
        store.close()
    if args.json:
        print(json.dumps([k.model_dump(mode="json") for k in keys], indent=2))
        return 0
    if not keys:
        print(f"no API keys in {_where(store)}: create one with `triage keys create --name NAME --scope admin`")
        return 0
    print(f"{'id':12s}  {'state':22s}  {'scopes':18s}  {'created (UTC)':16s}  name")
    for info in keys:
        print(_row(info))
    return 0


def cmd_revoke(args: argparse.Namespace, settings_fn: SettingsFn) -> int:
    from agents.web.auth import KeyRing

    store = _open(args, settings_fn)
    try:
        ring = KeyRing(store)
        before = {k.id: k for k in ring.list()}.get(args.id)
        info = ring.revoke(args.id) if before is not None else None
    finally:
        store.close()
    if before is None or info is None:
        print(f"triage: no API key with id {args.id!r} in {_where(store)} (see `triage keys list`)", file=sys.stderr)
        return 1
    if before.revoked_at is not None:
        print(f"key {info.id} {info.name!r} was already revoked on {before.revoked_at:%Y-%m-%d %H:%M} UTC")
    else:
        print(f"revoked key {info.id} {info.name!r}: it is refused from now on (servers cache a key for 10 s)")
    return 0


def add_parsers(sub: Any, settings_fn: SettingsFn) -> None:
    keys = group(
        sub,
        "keys",
        "create, list and revoke API keys in the store (no server needed)",
        "triage keys create --name admin --scope admin",
        "triage keys list",
        "triage keys revoke 3f9c0a1b2c4d",
    )
    p = command(
        keys,
        "create",
        "create an API key and print it once (only its hash is stored)",
        "triage keys create --name admin --scope admin",
        "triage keys create --name helpdesk-bot --scope triage --scope read --data-dir /srv/triage",
        more="Recovers a lost first-start admin key, or one a first start stopped before printing.",
    )
    p.add_argument("--name", required=True, help="who or what holds the key, e.g. helpdesk-bot")
    p.add_argument("--scope", required=True, action="append", type=scope, metavar="SCOPE", help=SCOPE_HELP)
    add_data_dir(p)
    p.set_defaults(func=lambda a: cmd_create(a, settings_fn))

    p = command(keys, "list", "list API keys: id, state, scopes, created, name (never the secret)", "triage keys list")
    p.add_argument("--json", action="store_true", help="print a JSON array instead of a table")
    add_data_dir(p)
    p.set_defaults(func=lambda a: cmd_list(a, settings_fn))

    p = command(keys, "revoke", "revoke an API key by its id", "triage keys revoke 3f9c0a1b2c4d")
    p.add_argument("id", help="the key's id, as `triage keys list` shows it (the part after tri_ in the key)")
    add_data_dir(p)
    p.set_defaults(func=lambda a: cmd_revoke(a, settings_fn))
