"""`triage serve`: the HTTP service; its first start trains the models here, with a progress bar, before serving."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from agents.cli.common import EMBEDDER_HELP, SettingsFn, add_data_dir, add_embedder, command
from agents.settings import Settings

PORTS = (1, 65535)


def port(value: str) -> int:
    """An argparse type: a TCP port number."""
    try:
        number = int(value)
    except ValueError:
        number = -1
    if not PORTS[0] <= number <= PORTS[1]:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port: use a number from {PORTS[0]} to {PORTS[1]}")
    return number


def train_first(settings: Settings) -> bool:
    """Train and save the models unless usable ones are saved (the server then loads them); True if it trained.
    Done here rather than in the server's start-up so that the bar and its time estimate show on stderr."""
    from agents.classical.artifacts import read_manifest
    from agents.classical.training import FORMAT, load_or_train
    from agents.errors import ModelNotTrained
    from agents.models.versions import current_model_dir
    from kb.loader import load_kb
    from retrieval.factory import make_embedder

    embedder = make_embedder(settings.embedder, settings.embed_precision)  # cheap: weights load on first use
    try:
        if read_manifest(current_model_dir(settings.model_dir), FORMAT).get("embedder") == embedder.name:
            return False
    except ModelNotTrained as exc:
        if not exc.reason:  # else load_or_train says why it retrains
            print(
                f"first start: training the triage models on {settings.training_data} "
                f"(saved to {settings.model_dir}; later starts load them)",
                file=sys.stderr,
                flush=True,
            )
    load_or_train(settings, embedder, load_kb(settings.kb_dir), progress=True)
    return True


def cmd_serve(args: argparse.Namespace, settings_fn: SettingsFn) -> int:
    import uvicorn

    from agents.store.tickets import Store
    from agents.web.auth import KeyRing

    for name in ("data_dir", "embedder", "config_dir"):  # the server process builds its Settings from the environment
        if getattr(args, name, None):
            os.environ[f"TRIAGE_{name.upper()}"] = str(getattr(args, name))
    settings = settings_fn(args)
    train_first(settings)
    if not settings.auth_dev_mode:
        store = Store.open(settings.data_dir, settings.database_url)
        try:
            secret = KeyRing(store).ensure_admin()
        finally:
            store.close()
        if secret:
            print(
                f"first start: an admin API key was created; it is shown only now:\n\n    {secret}\n\n"
                "lost it? `triage keys create --name admin --scope admin` makes another.\n",
                flush=True,
            )
    uvicorn.run("server:create_app", factory=True, host=args.host, port=args.port)
    return 0


def add_parsers(sub: Any, settings_fn: SettingsFn) -> None:
    p = command(
        sub,
        "serve",
        "run the HTTP service (API, console, metrics)",
        "triage serve",
        "triage serve --host 0.0.0.0 --port 8080 --data-dir /srv/triage",
        "TRIAGE_EMBEDDER=hashing triage serve --port 8001",
        "triage serve --config /srv/helpdesk     # a helpdesk written by `triage onboard --out /srv/helpdesk`",
        more="The first start trains the models (with a progress bar) and prints an admin API key once;\n"
        "`triage keys create` makes more keys. The API docs are at http://HOST:PORT/docs.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s, this machine only)")
    p.add_argument("--port", type=port, default=8000, help="TCP port, 1-65535 (default: %(default)s)")
    add_data_dir(p)
    add_embedder(p, EMBEDDER_HELP + "; the saved models and index must match it")
    p.set_defaults(func=lambda a: cmd_serve(a, settings_fn))
