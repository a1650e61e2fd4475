"""`triage worker`: a Celery worker on the queues (fast, llm, reindex, digest); `replay` dead tickets; `send` jobs."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from typing import TYPE_CHECKING, Any

from agents.cli.common import SettingsFn, add_data_dir, add_embedder, command
from agents.settings import Settings

if TYPE_CHECKING:
    from agents.store.tickets import Store
    from agents.workers.queues import TicketQueue

QUEUES = ("fast", "llm", "reindex", "digest")  # agents/workers/config.py QUEUES; kept here so --help stays cheap
TICKET_QUEUES = ("fast", "llm")


def queue_list(value: str) -> list[str]:
    """An argparse type: comma-separated queue names, e.g. fast,llm."""
    names = [v.strip() for v in value.split(",") if v.strip()]
    wrong = [n for n in names if n not in QUEUES]
    if wrong or not names:
        raise argparse.ArgumentTypeError(f"{value!r}: expected queue names from {', '.join(QUEUES)}, comma-separated")
    return list(dict.fromkeys(names))


def warm_up(settings: Settings) -> None:
    """Train (first start) and index once, before any task: prefork children then only load what is saved."""
    from agents.app import load_sop_index
    from agents.cli.serve import train_first
    from retrieval.factory import make_embedder

    train_first(settings)
    load_sop_index(settings, make_embedder(settings.embedder, settings.embed_precision))


def cmd_run(args: argparse.Namespace, settings_fn: SettingsFn) -> int:
    from agents.workers.config import broker_url, build_celery
    from agents.workers.runtime import WorkerRuntime
    from agents.workers.tasks import register_tasks

    settings: Settings = settings_fn(args)
    broker_url(settings)  # a missing or wrong TRIAGE_BROKER_URL is one line, before anything loads
    queues: list[str] = args.queues or list(QUEUES)
    concurrency: int = args.concurrency or settings.worker_concurrency
    runtime = WorkerRuntime(settings, processes=concurrency)
    if concurrency == 1:  # the solo pool: this process runs the tasks, so its engines are built now, once
        from agents.cli.serve import train_first

        train_first(settings)
        runtime.store()
        for queue in (q for q in queues if q in TICKET_QUEUES):
            runtime.service(queue)
    else:  # prefork: fork no loaded model; a spawned process trains and indexes, each child then loads (lazily)
        import multiprocessing

        job = multiprocessing.get_context("spawn").Process(target=warm_up, args=(settings,))
        job.start()
        job.join()
        if job.exitcode:
            print(f"triage: the warm-up (training, SOP index) failed with exit code {job.exitcode}", file=sys.stderr)
            return 1
    app = build_celery(settings)
    # a solo worker runs its task in the consumer's own loop: there is no child to stop when the broker goes away
    # (the task finishes, its acknowledgement is lost, and the broker hands it on: a no-op then)
    app.conf.worker_cancel_long_running_tasks_on_connection_loss = concurrency > 1
    register_tasks(app, runtime)
    worker = app.Worker(
        hostname=f"triage-{os.getpid()}@{socket.gethostname()}",
        queues=queues,
        concurrency=concurrency,
        pool="solo" if concurrency == 1 else "prefork",
        loglevel="INFO" if args.verbose else "WARNING",
        quiet=not args.verbose,
        without_gossip=True,
        without_mingle=True,
        without_heartbeat=True,
        optimization="fair",
    )
    try:
        worker.start()
    finally:
        runtime.close()
    return int(worker.exitcode or 0)


def _queue_and_store(settings: Settings) -> tuple[TicketQueue, Store]:
    from agents.store.tickets import Store
    from agents.workers.config import broker_url
    from agents.workers.queues import TicketQueue

    broker_url(settings)
    queue = TicketQueue.from_settings(settings)
    assert queue is not None
    return queue, Store.open(settings.data_dir, settings.database_url)


def _all(store: Store, status: str) -> list[str]:
    ids: list[str] = []
    while page := store.list({"status": status}, 1000, len(ids))[0]:
        ids.extend(r.id for r in page)
    return ids


def cmd_replay(args: argparse.Namespace, settings_fn: SettingsFn) -> int:
    from agents.store.tickets import TicketNotFound

    if not (args.ids or args.dead or args.received):
        raise ValueError("name the tickets to replay (IDs), or give --dead or --received")
    queue, store = _queue_and_store(settings_fn(args))
    try:
        dead, received, skipped = list(args.ids), [], []
        for ticket_id in args.ids:
            status: str
            try:
                status = store.get(ticket_id).status
            except TicketNotFound:
                status = "unknown"
            if status == "received":
                received.append(ticket_id)
            elif status != "dead":
                skipped.append(f"{ticket_id} ({status})")
        dead = [i for i in dead if i not in received] + (_all(store, "dead") if args.dead else [])
        revived = store.revive_dead(list(dict.fromkeys(dead)), actor="cli:worker replay")
        received += _all(store, "received") if args.received else []
        queued = list(dict.fromkeys(revived + received))
        queue.enqueue(queued)
    finally:
        store.close()
        queue.close()
    print(f"queued {len(queued)} ticket(s) on {queue.queue}: {len(revived)} dead revived, the rest still received")
    if skipped:
        print(f"left alone (neither dead nor received): {', '.join(skipped)}")
    return 0


def cmd_send(args: argparse.Namespace, settings_fn: SettingsFn) -> int:
    queue, store = _queue_and_store(settings_fn(args))
    store.close()
    try:
        if args.job == "reindex":
            queue.send_reindex()
        else:
            queue.send_digest(args.team)
    finally:
        queue.close()
    print(f"sent {args.job} to its queue on {queue.where}")
    return 0


def add_parsers(sub: Any, settings_fn: SettingsFn) -> None:
    p = command(
        sub,
        "worker",
        "run a Celery worker that triages queued tickets (TRIAGE_BROKER_URL), or replay and send jobs",
        "TRIAGE_BROKER_URL=redis://127.0.0.1:6379/0 triage worker",
        "triage worker --queues fast --concurrency 2      # classical triage only, two processes",
        "triage worker --queues llm,reindex,digest        # the slow queues in a worker of their own",
        "triage worker replay tkt_7f8e571df75942c88336    # a dead ticket back to received, queued again",
        "triage worker replay --dead                      # every dead ticket",
        "triage worker send digest --team network         # a digest run on the digest queue",
        more="Intake (triage serve) with TRIAGE_BROKER_URL set commits each ticket as received and queues it;\n"
        "a worker claims it, triages it and commits the result once. A task that keeps failing is retried\n"
        "with back-off (TRIAGE_WORKER_MAX_RETRIES), then the ticket is `dead` with its error.\n"
        f"Queues: {', '.join(QUEUES)}.",
    )
    p.add_argument(
        "--queues", type=queue_list, help=f"queues to consume, comma-separated (default: all: {','.join(QUEUES)})"
    )
    p.add_argument(
        "--concurrency",
        type=int,
        choices=range(1, 65),
        metavar="N",
        help="processes (default: TRIAGE_WORKER_CONCURRENCY, 1)",
    )
    add_data_dir(p)
    add_embedder(p)
    p.set_defaults(func=lambda a: _dispatch(a, settings_fn))
    jobs = p.add_subparsers(dest="worker_command", metavar="COMMAND", help="replay or send (none: run the worker)")

    r = command(
        jobs,
        "replay",
        "queue dead tickets again (fresh attempts), or tickets left received",
        "triage worker replay tkt_7f8e571df75942c88336",
        "triage worker replay --dead",
        "triage worker replay --received     # e.g. after the broker was down when they came in",
    )
    r.add_argument("ids", nargs="*", metavar="ID", help="ticket ids (dead ones are revived, received ones queued)")
    r.add_argument("--dead", action="store_true", help="every dead ticket")
    r.add_argument("--received", action="store_true", help="every ticket still received")
    add_data_dir(r)

    s = command(jobs, "send", "send a job to its queue", "triage worker send reindex", "triage worker send digest")
    s.add_argument("job", choices=("reindex", "digest"), help="reindex: the SOP index; digest: a digest run")
    s.add_argument("--team", help="digest: one team's digest (default: all teams)")
    add_data_dir(s)


def _dispatch(args: argparse.Namespace, settings_fn: SettingsFn) -> int:
    command_name = getattr(args, "worker_command", None)
    if command_name == "replay":
        return cmd_replay(args, settings_fn)
    if command_name == "send":
        return cmd_send(args, settings_fn)
    return cmd_run(args, settings_fn)
