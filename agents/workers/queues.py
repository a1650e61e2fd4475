"""Intake's side of the queue: send stored tickets' ids to the fast or the llm queue, and jobs to the others."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agents.errors import TriageError
from agents.settings import Settings
from agents.workers.config import (
    DIGEST,
    DIGEST_TASK,
    FAST,
    LLM,
    QUEUES,
    REINDEX,
    REINDEX_TASK,
    TICKETS_TASK,
    build_celery,
)

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger(__name__)
CHUNK = 32  # ticket ids per task: a batch POST becomes tasks of this many (the engine triages them as one batch)
RETRY_AFTER = 5  # seconds a client is told to wait when the broker cannot be reached


class QueueUnavailable(TriageError):
    """The broker could not take a task (down, unreachable, refusing): the ticket is stored but not queued."""

    def __init__(self, where: str, reason: str) -> None:
        self.where, self.reason, self.retry_after = where, reason, RETRY_AFTER
        super().__init__(f"the task queue at {where} cannot be reached ({reason})")


def ticket_queue_name(settings: Settings) -> str:
    """`llm` when triage calls a configured LLM under these settings and their evidence (agents/llm/plan.py), else
    `fast` (classical triage)."""
    from agents.llm.factory import llm_problem
    from agents.llm.plan import plan_llm

    return LLM if plan_llm(settings, usable=llm_problem(settings) is None).in_triage else FAST


def chunks(ids: Sequence[str], size: int) -> list[list[str]]:
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]


class TicketQueue:
    """Sends ticket ids for triage on one queue (a task per chunk); a task may be delivered more than once, so
    every task is idempotent by ticket id (agents/workers/tasks.py)."""

    def __init__(self, app: Celery, queue: str, *, chunk: int = CHUNK) -> None:
        if queue not in TICKETS_TASK:
            raise ValueError(f"tickets go to one of {sorted(TICKETS_TASK)}, not {queue!r}")
        self.app, self.queue, self.chunk = app, queue, chunk
        self.where = _where(str(app.conf.broker_url))

    @classmethod
    def from_settings(cls, settings: Settings) -> TicketQueue | None:
        """The queue of these settings, or None without TRIAGE_BROKER_URL (triage stays in-process)."""
        if not settings.broker_url:
            return None
        return cls(build_celery(settings), ticket_queue_name(settings))

    def enqueue(self, ticket_ids: Sequence[str]) -> int:
        """Send the ids (committed tickets) as tasks; returns how many tasks. Raises QueueUnavailable."""
        parts = chunks(ticket_ids, self.chunk)
        for part in parts:
            self._send(TICKETS_TASK[self.queue], [part], self.queue)
        return len(parts)

    def send_reindex(self) -> None:
        self._send(REINDEX_TASK, [], REINDEX)

    def send_digest(self, team: str | None = None) -> None:
        self._send(DIGEST_TASK, [team], DIGEST)

    def _send(self, name: str, args: list[Any], queue: str) -> None:
        from kombu.exceptions import KombuError

        try:
            self.app.send_task(name, args=args, queue=queue)
        except (KombuError, OSError, ConnectionError) as exc:
            log.warning("could not queue %s on %s: %s", name, self.where, exc)
            raise QueueUnavailable(self.where, f"{type(exc).__name__}: {exc}"[:300]) from exc

    def depths(self) -> dict[str, int]:
        """Tasks waiting on each queue (fast, llm, reindex, digest), read from the broker; {} when it cannot be
        reached (a scrape must not fail because the broker is away)."""
        from amqp.exceptions import ChannelError

        depths: dict[str, int] = {}
        try:
            with self.app.connection_for_read() as conn:
                conn.ensure_connection(max_retries=1, timeout=1)
                for queue in QUEUES:
                    channel = conn.channel()  # a passive declare of a missing queue closes its channel
                    try:
                        if hasattr(channel, "_size"):  # Redis: the lists themselves (no binding until a worker)
                            depths[queue] = int(channel._size(queue))
                        else:
                            depths[queue] = int(channel.queue_declare(queue=queue, passive=True).message_count)
                    except ChannelError:  # never declared: no worker has listened to it, and nothing waits on it
                        depths[queue] = 0
                    finally:
                        channel.close()
        except Exception as exc:  # the broker's own errors differ by transport; none may break /metrics
            log.debug("queue depths unavailable from %s: %s", self.where, exc)
            return {}
        return depths

    def close(self) -> None:
        self.app.close()


def _where(url: str) -> str:
    """host:port of a broker URL, never its password."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or 'localhost'}:{parts.port or ''}".rstrip(":")
