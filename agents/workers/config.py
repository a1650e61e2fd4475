"""The Celery app from Settings, never at import: the broker, late acknowledgement, four queues and their routes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from agents.errors import TriageError
from agents.settings import Settings

if TYPE_CHECKING:
    from celery import Celery

# fast: classical triage; llm: triage whose policy calls an LLM (slow, so it never holds up the fast queue);
# reindex: rebuilding the SOP index; digest: a digest run
FAST, LLM, REINDEX, DIGEST = "fast", "llm", "reindex", "digest"
QUEUES = (FAST, LLM, REINDEX, DIGEST)
TICKETS_TASK = {FAST: "triage.tickets.fast", LLM: "triage.tickets.llm"}
REINDEX_TASK, DIGEST_TASK = "triage.reindex", "triage.digest"
ROUTES = {TICKETS_TASK[FAST]: FAST, TICKETS_TASK[LLM]: LLM, REINDEX_TASK: REINDEX, DIGEST_TASK: DIGEST}
CONNECT_SECONDS = 2.0  # a broker that does not answer within this is down: intake answers 503 rather than hang
BROKER_SCHEMES = ("redis", "rediss", "amqp", "amqps", "pyamqp")


class BrokerMissing(TriageError):
    """Queued triage was asked for, but TRIAGE_BROKER_URL names no broker that can be used."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(f"TRIAGE_BROKER_URL {problem}: set it to redis://HOST:6379/0 or amqp://USER:PASS@HOST:5672//")


def broker_url(settings: Settings) -> str:
    """The broker URL of these settings, checked: a Redis or RabbitMQ URL."""
    url = settings.broker_url
    if not url:
        raise BrokerMissing("is not set")
    scheme = urlsplit(url).scheme
    if scheme not in BROKER_SCHEMES:
        raise BrokerMissing(f"has the scheme {scheme!r}; expected one of {list(BROKER_SCHEMES)}")
    return url


def restore_every(visibility_timeout: float) -> int:
    """Seconds between a Redis worker's sweeps for unacknowledged tasks of dead workers: a quarter of the
    visibility timeout, from 1 to 10 s (kombu's default sweep is only every 100 s)."""
    return int(max(1, min(10, visibility_timeout // 4)))


def transport_options(settings: Settings, url: str) -> dict[str, Any]:
    if not urlsplit(url).scheme.startswith("redis"):
        return {}  # RabbitMQ redelivers an unacknowledged task as soon as its consumer's connection drops
    return {
        "visibility_timeout": settings.worker_visibility_timeout,
        "unacked_restore_interval": restore_every(settings.worker_visibility_timeout),
        "unacked_restore_throttle": 1,
        "global_keyprefix": f"{settings.redis_namespace}:celery:",  # replicas of one deployment share it
        "socket_connect_timeout": CONNECT_SECONDS,
        "socket_timeout": 10.0,  # above kombu's 1 s BRPOP; a broker gone silent does not block a publish forever
    }


def build_celery(settings: Settings) -> Celery:
    """A Celery app for these settings (intake sends with it; a worker registers its tasks on it first).
    Tasks are acknowledged after they ran (a worker that dies mid-task leaves its task to another), one task is
    reserved per process at a time, and no results are kept: the ticket store holds every outcome."""
    from celery import Celery
    from kombu import Queue

    url = broker_url(settings)
    app = Celery("triage", broker=url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_queues=[Queue(name) for name in QUEUES],
        task_default_queue=FAST,
        task_routes=ROUTES,
        broker_transport_options=transport_options(settings, url),
        broker_connection_timeout=CONNECT_SECONDS,
        broker_connection_retry_on_startup=True,
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1},
        worker_cancel_long_running_tasks_on_connection_loss=True,  # not acknowledgeable any more: redelivered
        worker_enable_remote_control=False,
        worker_send_task_events=False,
        enable_utc=True,
    )
    return app
