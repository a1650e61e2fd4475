"""Policies around the LLM: a circuit breaker, fallback on named errors, and the classical-first cascade."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from agents.classify import Classification, Classifier, TicketContext
from agents.errors import BackendUnavailable, InvalidModelOutput
from agents.llm.calls import error_text, recording
from agents.llm.chat import NoTimeLeft
from agents.types import FieldDecision, LlmCall, Ticket

log = logging.getLogger(__name__)
FALLBACK_ON: tuple[type[Exception], ...] = (BackendUnavailable, InvalidModelOutput)  # UnknownLabel included
FIELDS = ("category", "priority")
T = TypeVar("T")


class CircuitBreaker:
    """After `failures` consecutive failures the LLM is not called for `cooldown` seconds; then one trial call."""

    def __init__(self, failures: int = 3, cooldown: float = 60.0, clock: Callable[[], float] = time.monotonic):
        if failures < 1 or cooldown <= 0:
            raise ValueError("failures must be >= 1 and cooldown > 0")
        self.failures = failures
        self.cooldown = cooldown
        self.clock = clock
        self._lock = threading.Lock()
        self._consecutive = 0
        self._opened_at: float | None = None
        self._trial_at: float | None = None  # when the half-open trial call was let through
        self.times_opened = 0
        self.last_error: str | None = None

    def _state(self, now: float) -> str:
        if self._opened_at is None:
            return "closed"
        return "half_open" if now - self._opened_at >= self.cooldown else "open"

    @property
    def state(self) -> str:
        with self._lock:
            return self._state(self.clock())

    def allow(self) -> bool:
        """May a call go out now? In half-open state one trial at a time (a lost trial frees up after a cool-down)."""
        with self._lock:
            now = self.clock()
            state = self._state(now)
            if state == "closed":
                return True
            if state == "half_open" and (self._trial_at is None or now - self._trial_at >= self.cooldown):
                self._trial_at = now
                return True
            return False

    def record_success(self) -> None:
        with self._lock:
            self._consecutive, self._opened_at, self._trial_at = 0, None, None

    def record_failure(self, error: str) -> None:
        with self._lock:
            now = self.clock()
            self._consecutive += 1
            self.last_error = error[:300]
            trial_failed = self._trial_at is not None
            if trial_failed or (self._opened_at is None and self._consecutive >= self.failures):
                if self._opened_at is None:
                    self.times_opened += 1
                self._opened_at, self._trial_at = now, None

    def retry_in(self) -> float:
        with self._lock:
            if self._opened_at is None:
                return 0.0
            return max(0.0, self._opened_at + self.cooldown - self.clock())

    def describe(self) -> str:
        return (
            f"circuit open after {self._consecutive} consecutive LLM failures (last: {self.last_error}); "
            f"next try in {self.retry_in():.0f}s"
        )

    def snapshot(self) -> dict[str, Any]:
        """For /metrics: state, failure count, when the next trial may go out."""
        return {
            "state": self.state,
            "consecutive_failures": self._consecutive,
            "failures_to_open": self.failures,
            "cooldown_s": self.cooldown,
            "retry_in_s": round(self.retry_in(), 1),
            "times_opened": self.times_opened,
            "last_error": self.last_error,
        }


@dataclass
class Attempt(Generic[T]):
    """What a guarded LLM call gave: a value, or None with the reason and the failed call."""

    value: T | None
    reason: str | None = None
    calls: list[LlmCall] = field(default_factory=list)


class LlmGuard:
    """Runs an LLM task unless the breaker is open; no failure of the task escapes as an exception.

    The errors in `fallback_on` are the expected ones (the endpoint, its answer); any other Exception (a bug in a
    client, a reply nobody foresaw) is logged with its traceback and falls back all the same, its type in the
    reason: one ticket must never fail over the LLM. KeyboardInterrupt and SystemExit still propagate. The task's
    calls, failed ones with their input and raw output, come back in the Attempt for the audit trail.
    """

    def __init__(
        self, backend: str, breaker: CircuitBreaker | None = None, fallback_on: Iterable[type[Exception]] = FALLBACK_ON
    ) -> None:
        self.backend = backend
        self.breaker = breaker
        self.fallback_on = tuple(fallback_on)

    def run(self, task: str, fn: Callable[[], T]) -> Attempt[T]:
        if self.breaker is not None and not self.breaker.allow():
            return Attempt(None, f"{self.backend} not called: {self.breaker.describe()}")
        started = time.perf_counter()
        with recording() as calls:
            try:
                value = fn()
            except Exception as exc:  # noqa: BLE001 - every failure becomes a fallback with its reason
                return self._failed(task, exc, list(calls), started)
        if self.breaker is not None:
            self.breaker.record_success()
        return Attempt(value)

    def _failed(self, task: str, exc: Exception, calls: list[LlmCall], started: float) -> Attempt[Any]:
        error = error_text(exc)
        if not isinstance(exc, self.fallback_on):
            error = f"unexpected {error}"[:300]
            log.error("%s failed for %s with an unexpected error; falling back", self.backend, task, exc_info=exc)
        if self.breaker is not None and not isinstance(exc, NoTimeLeft):
            self.breaker.record_failure(error)
        if calls and calls[-1].ok:  # its answer came back but failed a check after the call (e.g. its citations)
            calls[-1] = calls[-1].model_copy(update={"ok": False, "error": error})
        if not calls:  # it failed before any request: one failed call tells the audit trail why
            raw = str(getattr(exc, "raw", "") or "")
            latency = round((time.perf_counter() - started) * 1000, 1)
            calls = [
                LlmCall(task=task, backend=self.backend, ok=False, latency_ms=latency, error=error, output=raw or None)
            ]
        return Attempt(None, f"{self.backend} failed for {task} ({error})", calls)


def as_fallback(decision: FieldDecision, reason: str) -> FieldDecision:
    """The same decision, marked as a fallback in its backend and its reasons."""
    return decision.model_copy(
        update={"backend": f"{decision.backend} (fallback)", "reasons": [*decision.reasons, reason]}
    )


def calibrated(llm: FieldDecision, classical: FieldDecision, context: TicketContext, field_name: str) -> FieldDecision:
    """The LLM's label with the classical model's probability of that label as its confidence, and the classical
    alternatives: the model's own confidence number is never the field's confidence (it is only a claim, and a
    ticket can make the model claim anything). An LLM label the classical model finds unlikely gets a low
    confidence, so the service's threshold sends it to a human.
    """
    confidence = context.classical_probability(field_name, llm.label)
    if confidence is None:  # no batch probabilities: the classical decision's own view (0 outside its top labels)
        confidence = (
            classical.confidence if llm.label == classical.label else classical.alternatives.get(llm.label, 0.0)
        )
    why = f"{field_name} confidence {confidence:.2f} is the classical probability of {llm.backend}'s label {llm.label}"
    return llm.model_copy(
        update={"confidence": confidence, "alternatives": classical.alternatives, "reasons": [*llm.reasons, why]}
    )


class FallbackClassifier:
    """The primary (LLM) classifier, and the fallback's answer when it fails with one of the named errors."""

    def __init__(
        self,
        primary: Classifier,
        fallback: Classifier,
        fallback_on: Iterable[type[Exception]] = FALLBACK_ON,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self.breaker = breaker
        self.name = f"{primary.name}, fallback {fallback.name}"
        self.guard = LlmGuard(primary.name, breaker, fallback_on)

    def classify(self, ticket: Ticket, context: TicketContext) -> Classification:
        attempt = self.guard.run("classify", lambda: self.primary.classify(ticket, context))
        backup = self.fallback.classify(ticket, context)  # cheap: the batch computed its probabilities
        if attempt.value is not None:
            return Classification(
                **{f: calibrated(getattr(attempt.value, f), getattr(backup, f), context, f) for f in FIELDS},
                llm_calls=[*backup.llm_calls, *attempt.value.llm_calls],
            )
        reason = f"{attempt.reason}: {self.fallback.name} decided"
        return Classification(
            **{f: as_fallback(getattr(backup, f), reason) for f in FIELDS},
            llm_calls=[*backup.llm_calls, *attempt.calls],
        )


def among_top(ranked: list[str], label: str, k: int) -> bool:
    """Whether `label` is one of the first `k` of the classical model's ranked labels (k = 0: any label will do).

    The cascade's guard: a small LLM that disagrees with every likely classical answer is usually wrong
    (measured in evals/reports/llm/), so there it only breaks ties between the classical model's best guesses.
    """
    return k <= 0 or label in ranked[:k]


def ranked_labels(decision: FieldDecision) -> list[str]:
    """The decision's labels, most likely first (its alternatives, or the label alone)."""
    return sorted(decision.alternatives, key=lambda name: -decision.alternatives[name]) or [decision.label]


class CascadeClassifier:
    """Classical first; the LLM decides only the fields whose classical confidence is under the threshold.

    `thresholds` names the fields the LLM may decide; with `top_k` the LLM's label is taken only when it is one of
    the classical model's `top_k` most likely labels, else the classical label stays (with the reason).
    """

    def __init__(
        self,
        classical: Classifier,
        llm: Classifier,
        thresholds: dict[str, float],
        fallback_on: Iterable[type[Exception]] = FALLBACK_ON,
        breaker: CircuitBreaker | None = None,
        top_k: int = 0,
    ) -> None:
        self.classical = classical
        self.llm = llm
        self.thresholds = thresholds
        self.top_k = top_k
        self.breaker = breaker
        self.name = f"cascade {classical.name} -> {llm.name}"
        self.guard = LlmGuard(llm.name, breaker, fallback_on)

    def unsure(self, result: Classification) -> dict[str, FieldDecision]:
        return {f: d for f in FIELDS if (d := getattr(result, f)).confidence < self.thresholds.get(f, float("-inf"))}

    def classify(self, ticket: Ticket, context: TicketContext) -> Classification:
        base = self.classical.classify(ticket, context)
        unsure = self.unsure(base)
        if not unsure:
            return base
        attempt = self.guard.run("classify", lambda: self.llm.classify(ticket, context))
        decided = {f: getattr(base, f) for f in FIELDS}
        if attempt.value is None:
            for f, d in unsure.items():
                decided[f] = as_fallback(d, f"{attempt.reason}: kept the classical {f}")
            return Classification(**decided, llm_calls=[*base.llm_calls, *attempt.calls])
        for f, d in unsure.items():
            llm = getattr(attempt.value, f)
            why = f"classical {f} {d.label} at {d.confidence:.2f} is under the threshold {self.thresholds[f]:.2f}"
            if not among_top(ranked_labels(d), llm.label, self.top_k):
                why += f": {self.llm.name} said {llm.label}, not among the classical top {self.top_k}; kept {d.label}"
                decided[f] = d.model_copy(update={"reasons": [*d.reasons, why]})
                continue
            why += f": {self.llm.name} decided {llm.label}"
            decided[f] = calibrated(llm.model_copy(update={"reasons": [*llm.reasons, why]}), d, context, f)
        return Classification(**decided, llm_calls=[*base.llm_calls, *attempt.value.llm_calls])
