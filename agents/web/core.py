"""What every route reads: the Core built once in the server's lifespan, the scope check, and model metrics."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict

from agents.app import NodeWatch
from agents.connectors.service import ConnectorService
from agents.models.live import LiveService, SwapStatus
from agents.models.stored_memory import MemoryStatus
from agents.settings import Settings
from agents.store.review import Review
from agents.store.tickets import Store
from agents.web.auth import Gate, KeyRing, Principal, Scope
from agents.web.desk import Desk
from agents.web.metrics import ServiceMetrics

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from agents.answers.answer import Answerer
    from agents.service import TriageService


class ApiOut(BaseModel):
    """The base of every response body the routes build: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class ModelsOut(ApiOut):
    """The model version this replica serves (and what the pointer names) and how current its ticket memory is."""

    version: SwapStatus
    trained_tickets: int  # the version's own tickets in the memory
    memory: MemoryStatus | None  # the stored tickets in the memory; None: TRIAGE_MEMORY_POLL=0


@dataclass
class Core:
    """Everything the routes use, built once in the lifespan."""

    settings: Settings
    store: Store
    live: LiveService
    desk: Desk
    review: Review
    gate: Gate
    keys: KeyRing
    metrics: ServiceMetrics
    answerer: Answerer
    connectors: ConnectorService
    started: float
    node: NodeWatch | None = None
    recovered: int = 0

    @property
    def service(self) -> TriageService:
        """The current model version's service (a promoted version replaces it while the server runs)."""
        return self.live.current

    def models_out(self) -> ModelsOut:
        memory = self.node.memory if self.node is not None else None
        return ModelsOut(
            version=self.live.status(),
            trained_tickets=len(self.service.memory),
            memory=memory.status() if memory is not None else None,
        )


class ModelCollector:
    """/metrics lines for the served model version and the ticket memory's freshness (read at each scrape)."""

    def __init__(self) -> None:
        self.state: Core | None = None

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        if self.state is None:
            return
        out = self.state.models_out()
        info = GaugeMetricFamily("triage_model_version_info", "the model version served", labels=["version"])
        info.add_metric([out.version.loaded or "none"], 1.0)
        yield info
        yield CounterMetricFamily("triage_model_swaps", "model versions swapped in since start", out.version.swaps)
        failed = GaugeMetricFamily("triage_model_load_failed", "1: the pointer names a version that failed to load")
        failed.add_metric([], 1.0 if out.version.failed else 0.0)
        yield failed
        if out.memory is not None:
            yield GaugeMetricFamily("triage_memory_stored_tickets", "stored tickets in the memory", out.memory.stored)
            if out.memory.refreshed_at is not None:
                age = (datetime.now(UTC) - out.memory.refreshed_at).total_seconds()
                yield GaugeMetricFamily("triage_memory_age_seconds", "seconds since the memory's last look", age)


def core(request: Request) -> Core:
    return request.app.state.core  # type: ignore[no-any-return]


def need(scope: Scope):  # type: ignore[no-untyped-def]
    async def check(request: Request) -> Principal:
        host = request.client.host if request.client else "-"
        return core(request).gate.check(request.headers, scope, host)

    return Depends(check)
