"""Prometheus metrics of the service: HTTP traffic by route, triage decisions by backend, fallbacks, abstentions,
the LLM breaker and tokens. One registry per app, no global state."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agents.types import TriageResult

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BREAKER_STATES = ("closed", "half_open", "open")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def used_fallback(result: TriageResult) -> bool:
    """A field was decided by a fallback backend (the LLM path names those `...fallback...`)."""
    return any("fallback" in backend for backend in result.backend.values())


class _Derived(Collector):
    """Values computed at scrape time: fallback and abstention rates, breaker state, tickets by status."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        with m.lock:
            total, fallbacks, abstentions = m.counts["results"], m.counts["fallbacks"], m.counts["abstentions"]
        for name, count, doc in (
            ("triage_fallback_rate", fallbacks, "share of triage results where a fallback backend decided a field"),
            ("triage_abstention_rate", abstentions, "share of triage results sent to a human (needs_human)"),
        ):
            yield GaugeMetricFamily(name, doc + " since start", value=count / total if total else 0.0)
        if m.breaker_state is not None:
            state = m.breaker_state()
            family = GaugeMetricFamily(
                "triage_llm_breaker_state", "LLM circuit breaker: 1 for the current state", labels=["state"]
            )
            for name in BREAKER_STATES:
                family.add_metric([name], 1.0 if state == name else 0.0)
            yield family
        if m.agreement is not None:
            shares = GaugeMetricFamily(
                "triage_shadow_agreement", "share of outcomes (last 7 days) equal to the decision", labels=["field"]
            )
            counts = GaugeMetricFamily(
                "triage_shadow_outcomes", "outcomes recorded in the last 7 days", labels=["field"]
            )
            for field, (n, share) in sorted(m.agreement().items()):
                shares.add_metric([field], share)
                counts.add_metric([field], float(n))
            yield shares
            yield counts
        if m.ticket_counts is not None:
            family = GaugeMetricFamily("triage_tickets", "stored tickets by status", labels=["status"])
            for status, count in sorted(m.ticket_counts().items()):
                family.add_metric([status], float(count))
            yield family
        if m.queue_depths is not None:
            family = GaugeMetricFamily("triage_queue_depth", "tasks waiting on each worker queue", labels=["queue"])
            for queue, depth in sorted(m.queue_depths().items()):
                family.add_metric([queue], float(depth))
            yield family
        if m.outbox_counts is not None:
            family = GaugeMetricFamily(
                "triage_outbox_items", "connector write-backs by system and status", labels=["system", "status"]
            )
            for (system, status), count in sorted(m.outbox_counts().items()):
                family.add_metric([system, status], float(count))
            yield family


class ServiceMetrics:
    """Counters and histograms on a private registry; `render()` is the /metrics body."""

    def __init__(
        self,
        breaker_state: Callable[[], str] | None = None,
        ticket_counts: Callable[[], dict[str, int]] | None = None,
        agreement: Callable[[], dict[str, tuple[int, float]]] | None = None,
    ) -> None:
        self.registry = CollectorRegistry()
        self.breaker_state = breaker_state
        self.ticket_counts = ticket_counts
        self.agreement = agreement  # per field: outcomes and agreement of the last 7 days (agents/store/outcomes.py)
        self.outbox_counts: Callable[[], dict[tuple[str, str], int]] | None = None  # connector write-backs
        self.queue_depths: Callable[[], dict[str, int]] | None = None  # with a broker: tasks waiting per queue
        self.lock = threading.Lock()
        self.counts = {"results": 0, "fallbacks": 0, "abstentions": 0}
        r = self.registry
        self.requests = Counter("triage_http_requests", "HTTP requests", ["route", "method", "status"], registry=r)
        self.latency = Histogram(
            "triage_http_request_duration_seconds",
            "HTTP request latency",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.results = Counter("triage_results", "triage results produced", registry=r)
        self.decisions = Counter("triage_decisions", "field decisions by backend", ["field", "backend"], registry=r)
        self.fallbacks = Counter("triage_fallbacks", "results where a fallback backend decided a field", registry=r)
        self.abstentions = Counter("triage_abstentions", "results flagged needs_human", registry=r)
        self.actions = Counter(
            "triage_field_actions",
            "what each field's mode did: applied, suggested, shadow, none",
            ["field", "action"],
            registry=r,
        )
        self.llm_calls = Counter("triage_llm_calls", "LLM calls", ["model", "outcome"], registry=r)
        self.llm_tokens = Counter("triage_llm_tokens", "LLM tokens", ["model", "kind"], registry=r)
        self.llm_latency = Histogram(
            "triage_llm_call_duration_seconds", "LLM call latency", ["model"], buckets=LATENCY_BUCKETS, registry=r
        )
        r.register(_Derived(self))

    def observe_results(self, results: Iterable[TriageResult]) -> None:
        for result in results:
            fallback = used_fallback(result)
            self.results.inc()
            for field, backend in result.backend.items():
                self.decisions.labels(field, backend).inc()
            for field, action in result.actions.items():
                self.actions.labels(field, action.action).inc()
            if fallback:
                self.fallbacks.inc()
            if result.needs_human:
                self.abstentions.inc()
            for call in getattr(result, "llm_calls", []):
                seconds = call.latency_ms / 1000 if call.latency_ms else None
                outcome = "ok" if call.ok else "error"
                self.observe_llm_call(call.backend, outcome, seconds, call.prompt_tokens, call.completion_tokens)
            with self.lock:
                self.counts["results"] += 1
                self.counts["fallbacks"] += fallback
                self.counts["abstentions"] += result.needs_human

    def observe_llm_call(
        self,
        model: str,
        outcome: str,
        seconds: float | None = None,
        tokens_in: int | None = None,
        tokens_out: int | None = None,
    ) -> None:
        self.llm_calls.labels(model, outcome).inc()
        if seconds is not None:
            self.llm_latency.labels(model).observe(seconds)
        if tokens_in:
            self.llm_tokens.labels(model, "prompt").inc(tokens_in)
        if tokens_out:
            self.llm_tokens.labels(model, "completion").inc(tokens_out)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def route_template(scope: Scope) -> str:
    """The route a request was meant for, when a middleware answered before routing (a 413, say)."""
    for route in getattr(scope.get("app"), "routes", []):
        if route.matches(scope)[0] == Match.FULL:
            return str(getattr(route, "path", "unmatched"))
    return "unmatched"


class HttpMetrics:
    """ASGI middleware: counts and times every request under its route template (never the raw path)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [500]

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route: Any = scope.get("route")
            name = getattr(route, "path", None) or route_template(scope)
            method = scope["method"] if scope["method"] in METHODS else "other"  # bounded label values
            self.metrics.requests.labels(name, method, str(status[0])).inc()
            self.metrics.latency.labels(name, method).observe(time.perf_counter() - started)
