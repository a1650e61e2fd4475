"""The worker's tasks: triage stored tickets by id (idempotent, retried with back-off, then dead), reindex, digest."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agents.settings import Settings
from agents.store.records import Claim, TicketRecord
from agents.web.desk import as_ticket
from agents.workers.config import DIGEST_TASK, FAST, LLM, REINDEX_TASK, TICKETS_TASK
from agents.workers.runtime import WorkerRuntime

if TYPE_CHECKING:
    from celery import Celery, Task

log = logging.getLogger(__name__)


def longest_wait(settings: Settings) -> float:
    """The longest back-off: under half the visibility timeout, or Redis would hand a waiting retry to another."""
    return min(settings.worker_retry_backoff_max, settings.worker_visibility_timeout / 2)


def backoff(settings: Settings, retries: int, rng: Callable[[], float] = random.random) -> float:
    """Seconds before retry number `retries` + 1: doubled each time up to longest_wait, less up to a quarter of
    jitter so that tickets failed together by one outage do not all come back at the same moment."""
    return min(longest_wait(settings), settings.worker_retry_backoff * 2**retries) * (1 - 0.25 * rng())


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:1800]


def triage_records(runtime: WorkerRuntime, queue: str, records: list[TicketRecord]) -> int:
    """Triage claimed tickets as one batch and commit their results; a ticket saved already is skipped."""
    results = runtime.service(queue).triage_batch([as_ticket(r) for r in records])
    return runtime.store().save_results({r.id: res for r, res in zip(records, results, strict=True)})


def run_tickets(task: Task, runtime: WorkerRuntime, queue: str, ticket_ids: list[str]) -> dict[str, int]:
    """One delivery of a task: claim what is still `received`, triage it, commit once. On an error the claims are
    given back and the task is retried after a back-off; on the last retry, each ticket is tried alone and those
    that still fail go to the dead letter. Tickets another claimer holds are looked at again when its lease ends."""
    settings, retries = runtime.settings, int(task.request.retries or 0)
    claim, saved, dead = Claim(), 0, 0
    try:
        claim = runtime.store().claim_ids(ticket_ids, settings.worker_max_retries + 1)
        saved = triage_records(runtime, queue, claim.claimed) if claim.claimed else 0
    except Exception as exc:
        if retries < settings.worker_max_retries:
            release(runtime, claim.claimed)
            wait = backoff(settings, retries)
            log.warning(
                "triage of %d ticket(s) failed (%s); retry %d in %.1f s", len(ticket_ids), exc, retries + 1, wait
            )
            raise task.retry(exc=exc, countdown=wait) from None  # the retry carries every id, held ones too
        saved, dead = last_attempt(task, runtime, queue, claim.claimed, exc)
    if claim.busy:  # a duplicate delivery, or the redelivery of a worker that died: look again after its lease
        task.apply_async(args=[claim.busy], countdown=min(claim.wait + 0.5, longest_wait(settings)))
    return {"claimed": len(claim.claimed), "saved": saved, "dead": dead, "busy": len(claim.busy)}


def release(runtime: WorkerRuntime, records: list[TicketRecord]) -> None:
    if not records:
        return
    try:
        runtime.store().release_ids([r.id for r in records])
    except Exception as exc:  # the store is down: the claims end with their lease instead
        log.warning("could not give back %d claim(s): %s", len(records), exc)


def last_attempt(
    task: Task, runtime: WorkerRuntime, queue: str, claimed: list[TicketRecord], exc: Exception
) -> tuple[int, int]:
    """(saved, dead) after the last retry failed with `exc`; retried again only while the store cannot answer."""
    settings, retries = runtime.settings, int(task.request.retries or 0)
    if not claimed:  # the claim itself failed: the store is down, and no state can be recorded; keep trying
        raise task.retry(exc=exc, countdown=longest_wait(settings), max_retries=retries + 1) from None
    errors = {claimed[0].id: describe(exc)} if len(claimed) == 1 else {}
    if len(claimed) > 1:  # one bad ticket must not take its chunk down with it: each alone, once more
        for record in claimed:
            try:
                triage_records(runtime, queue, [record])
            except Exception as alone:
                errors[record.id] = describe(alone)
    attempts = settings.worker_max_retries + 1
    try:
        dead = runtime.store().mark_dead({i: f"triage failed {attempts} times; last: {e}" for i, e in errors.items()})
    except Exception as again:
        raise task.retry(exc=again, countdown=longest_wait(settings), max_retries=retries + 1) from None
    if dead:
        log.error("%d ticket(s) dead after %d attempts (`triage worker replay ID`): %s", dead, attempts, exc)
    return len(claimed) - len(errors), dead


def with_retries(task: Task, settings: Settings, job: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A job that is not a ticket (reindex, digest): retried with back-off, then logged as failed."""
    retries = int(task.request.retries or 0)
    try:
        return job()
    except Exception as exc:
        if retries < settings.worker_max_retries:
            raise task.retry(exc=exc, countdown=backoff(settings, retries)) from None
        log.error("%s failed %d times: %s", task.name, retries + 1, describe(exc))
        raise


def run_reindex(runtime: WorkerRuntime) -> dict[str, Any]:
    """The saved SOP index when it matches the KB and embedder, else rebuilt and saved (agents/app.py)."""
    from agents.app import load_sop_index

    return {"chunks": len(load_sop_index(runtime.settings, runtime.embedder()))}


def run_digest(runtime: WorkerRuntime, team: str | None) -> dict[str, Any]:
    """One digest run: built from the store, written to disk, posted to the webhook when one is set."""
    from agents.digest.job import deliver, digest_from_settings

    settings = runtime.settings
    digest = digest_from_settings(settings, runtime.store(), embedder=runtime.embedder(), team=team)
    return deliver(digest, settings.data_dir, post=settings.digest_webhook_url).model_dump()


def register_tasks(app: Celery, runtime: WorkerRuntime) -> None:
    """The four tasks on `app`, each late-acknowledged and requeued when its worker process is lost."""
    options: dict[str, Any] = {"bind": True, "shared": False, "acks_late": True, "reject_on_worker_lost": True}
    options["max_retries"] = runtime.settings.worker_max_retries
    for queue in (FAST, LLM):
        app.task(name=TICKETS_TASK[queue], **options)(_tickets_task(runtime, queue))

    def reindex(task: Task) -> dict[str, Any]:
        return with_retries(task, runtime.settings, lambda: run_reindex(runtime))

    def digest(task: Task, team: str | None = None) -> dict[str, Any]:
        return with_retries(task, runtime.settings, lambda: run_digest(runtime, team))

    app.task(name=REINDEX_TASK, **options)(reindex)
    app.task(name=DIGEST_TASK, **options)(digest)


def _tickets_task(runtime: WorkerRuntime, queue: str) -> Callable[..., dict[str, int]]:
    def triage_tickets(task: Task, ticket_ids: list[str]) -> dict[str, int]:
        return run_tickets(task, runtime, queue, ticket_ids)

    return triage_tickets
