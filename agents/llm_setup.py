"""Wiring of the LLM path for the composition root: check the endpoint, then pick the classifier by policy."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from agents.calibration import budgeted_threshold
from agents.classify import Classifier
from agents.llm import ChatModel
from agents.llm_classify import ExampleBank, LlmClassifier
from agents.llm_openai import OpenAICompatibleChat
from agents.llm_write import ReplyWriter, SummaryWriter
from agents.policy import CascadeClassifier, CircuitBreaker, FallbackClassifier, LlmGuard
from agents.training import TriageModels
from kb.loader import KnowledgeBase

log = logging.getLogger(__name__)


@dataclass
class LlmParts:
    """What the service gets from the policy: a classifier, the two writers, the breaker and the LLM budget."""

    classifier: Classifier
    summary_writer: SummaryWriter
    reply_writer: ReplyWriter
    breaker: CircuitBreaker | None = None
    budget: float | None = None
    policy: str = "classical_only"


def url_problem(url: str | None) -> str | None:
    """Why a base URL cannot work, or None (no URL means the OpenAI default)."""
    if url is None:
        return None
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        return f"TRIAGE_LLM_BASE_URL={url!r} is not an http(s) URL"
    return None


def probe(base_url: str | None, model: str, api_key: str | None, timeout: float, http_client: Any = None) -> str | None:
    """Ask the endpoint for its models once at start-up: a warning for the log when it does not answer as expected."""
    from openai import OpenAI, OpenAIError

    client = OpenAI(
        base_url=base_url, api_key=api_key or "not-needed", timeout=timeout, max_retries=0, http_client=http_client
    )
    try:
        names = [m.id for m in client.models.list()]
    except OpenAIError as exc:
        return f"the LLM endpoint {base_url or 'OpenAI'} did not answer /models ({type(exc).__name__}: {exc})"[:400]
    if names and model not in names:
        return f"the LLM endpoint serves {names[:10]}, not {model!r}: check TRIAGE_LLM_MODEL"
    return None


def build_llm_parts(
    settings: Any,
    kb: KnowledgeBase,
    models: TriageModels,
    classical: Classifier,
    example_rows: Callable[[], list[dict[str, Any]]],
    *,
    chat: ChatModel | None = None,
    http_client: Any = None,
) -> LlmParts:
    """The classifier for `settings.policy`. No LLM configured, or a URL that cannot work: classical only, no error."""
    classical_only = LlmParts(classical, SummaryWriter(), ReplyWriter(kb))
    if settings.policy == "classical_only":
        return classical_only
    if chat is None:
        if not settings.llm_model:
            log.info("no LLM configured (TRIAGE_LLM_MODEL unset): classical only")
            return classical_only
        problem = url_problem(settings.llm_base_url)
        if problem:
            log.warning("%s: the LLM is disabled, triage runs classical only", problem)
            return classical_only
        key = settings.llm_api_key or settings.openai_api_key
        warning = probe(settings.llm_base_url, settings.llm_model, key, min(2.0, settings.llm_timeout), http_client)
        if warning:
            log.warning("%s; starting anyway: results fall back to classical until it answers", warning)
        chat = OpenAICompatibleChat(
            settings.llm_model,
            base_url=settings.llm_base_url,
            api_key=key,
            timeout=settings.llm_timeout,
            max_tokens=settings.llm_max_tokens,
            http_client=http_client,
        )
    breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown)
    guard = LlmGuard(chat.name, breaker)
    try:
        examples = ExampleBank.from_rows(example_rows())
    except (OSError, ValueError) as exc:
        log.warning("no few-shot examples for the LLM (%s): it classifies from the taxonomy alone", exc)
        examples = ExampleBank([])
    llm = LlmClassifier(chat, kb.taxonomy, examples=examples)
    if settings.policy == "llm_first":
        classifier: Classifier = FallbackClassifier(llm, classical, breaker=breaker)
        writers = SummaryWriter(chat=chat, guard=guard), ReplyWriter(kb, chat, guard=guard)
    else:  # cascade: the LLM only where the classical model is unsure; summaries and replies stay classical
        choices, share = models.thresholds, settings.cascade_max_share
        thresholds = {f: budgeted_threshold(choices[f], share) for f in settings.cascade_fields if f in choices}
        classifier = CascadeClassifier(classical, llm, thresholds, breaker=breaker, top_k=settings.cascade_top_k)
        writers = SummaryWriter(), ReplyWriter(kb)
    log.info("LLM %s at %s, policy %s", chat.name, settings.llm_base_url or "OpenAI", settings.policy)
    return LlmParts(classifier, *writers, breaker=breaker, budget=settings.llm_timeout, policy=settings.policy)
