"""The LLM path from settings: the one client factory, its start-up check, and the classifier picked by policy."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from agents.classical.calibration import budgeted_threshold
from agents.classical.training import TriageModels
from agents.classify import Classifier
from agents.llm.chat import ChatModel
from agents.llm.classify import ExampleBank, LlmClassifier
from agents.llm.client import OpenAICompatibleChat
from agents.llm.evidence import FIELDS, FieldGateClassifier
from agents.llm.plan import LlmPlan
from agents.llm.write import ReplyWriter, SummaryWriter
from agents.policy import CascadeClassifier, CircuitBreaker, FallbackClassifier, LlmGuard
from agents.settings import Settings
from kb.loader import KnowledgeBase
from retrieval.embedders import Embedder

log = logging.getLogger(__name__)


@dataclass
class LlmParts:
    """What the service gets from the policy: a classifier and the two writers."""

    classifier: Classifier
    summary_writer: SummaryWriter
    reply_writer: ReplyWriter


PROBE_SECONDS = 2.0  # at most this long to ask the endpoint for /models at start-up


def url_problem(url: str | None) -> str | None:
    """Why a base URL cannot work, or None (no URL means the OpenAI default)."""
    if url is None:
        return None
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        return f"TRIAGE_LLM_BASE_URL={url!r} is not an http(s) URL"
    return None


def llm_problem(settings: Settings) -> str | None:
    """Why no LLM can be used with these settings (none configured, or a URL that cannot work), or None."""
    if not settings.llm_model:
        return "no LLM configured (set TRIAGE_LLM_MODEL, and TRIAGE_LLM_BASE_URL for a local server)"
    return url_problem(settings.llm_base_url)


def api_key(settings: Settings) -> str | None:
    return settings.llm_api_key or settings.openai_api_key


def probe(settings: Settings, http_client: Any = None) -> str | None:
    """Ask the endpoint for its models once: a warning for the log when it does not answer as expected."""
    from openai import OpenAI, OpenAIError

    base_url, model = settings.llm_base_url, settings.llm_model
    client = OpenAI(
        base_url=base_url,
        api_key=api_key(settings) or "not-needed",
        timeout=min(PROBE_SECONDS, settings.llm_timeout),
        max_retries=0,
        http_client=http_client,
    )
    try:
        names = [m.id for m in client.models.list()]
    except OpenAIError as exc:
        return f"the LLM endpoint {base_url or 'OpenAI'} did not answer /models ({type(exc).__name__}: {exc})"[:400]
    if names and model not in names:
        return f"the LLM endpoint serves {names[:10]}, not {model!r}: check TRIAGE_LLM_MODEL"
    return None


def make_chat(settings: Settings, http_client: Any = None) -> OpenAICompatibleChat:
    """The one place an LLM client is built from settings (check `llm_problem` first)."""
    assert settings.llm_model is not None, "make_chat needs TRIAGE_LLM_MODEL: check llm_problem(settings) first"
    return OpenAICompatibleChat(
        settings.llm_model,
        base_url=settings.llm_base_url,
        api_key=api_key(settings),
        llm_timeout=settings.llm_timeout,
        max_tokens=settings.llm_max_tokens,
        http_client=http_client,
    )


def start_chat(settings: Settings, http_client: Any = None) -> ChatModel | None:
    """The client for a starting service, or None (logged) when no LLM can be used; an endpoint that does not
    answer yet is only a warning: results fall back to classical until it does."""
    if settings.policy == "classical_only":
        return None
    problem = llm_problem(settings)
    if problem:
        log.log(logging.INFO if not settings.llm_model else logging.WARNING, "%s: classical only", problem)
        return None
    warning = probe(settings, http_client)
    if warning:
        log.warning("%s; starting anyway: results fall back to classical until it answers", warning)
    return make_chat(settings, http_client)


def template_replies(settings: Settings, kb: KnowledgeBase, embedder: Embedder) -> ReplyWriter:
    """The template reply writer of `settings.reply_relevance`: the aligned rule in `embedder`'s vector space (the
    SOP index's), or the top hit's dense similarity alone."""
    return ReplyWriter(kb, embedder=embedder if settings.reply_relevance == "aligned" else None)


def build_llm_parts(
    settings: Settings,
    kb: KnowledgeBase,
    models: TriageModels,
    classical: Classifier,
    example_rows: Callable[[], list[dict[str, Any]]],
    chat: ChatModel | None,
    breaker: CircuitBreaker,
    plan: LlmPlan,
    embedder: Embedder,
) -> LlmParts:
    """The classifier and writers for `settings.policy`; without a chat model (none configured, or a URL that
    cannot work), classical only, no error. The LLM classifies only the fields `plan` names and writes only the
    summaries or replies it names: what the evidence files say it does better (agents/llm/plan.py, decided once in
    build_shared). Template replies judge an SOP's relevance by `settings.reply_relevance` (template_replies)."""
    template = template_replies(settings, kb, embedder)
    if settings.policy == "classical_only" or chat is None:
        return LlmParts(classical, SummaryWriter(), template)
    log.info("LLM %s at %s, policy %s", chat.name, settings.llm_base_url or "OpenAI", settings.policy)
    llm_first = settings.policy == "llm_first"
    llm_fields = list(plan.fields)
    guard = LlmGuard(chat.name, breaker)
    writers = (SummaryWriter(), template)
    if llm_first:  # the LLM writes only what the writers' evidence says it writes better
        writers = (
            SummaryWriter(chat=chat, guard=guard) if "summary" in plan.writers else writers[0],
            ReplyWriter(kb, chat, guard=guard, rule=template.rule) if "reply" in plan.writers else writers[1],
        )
    if not llm_fields:
        return LlmParts(classical, *writers)
    try:
        examples = ExampleBank.from_rows(example_rows())
    except (OSError, ValueError) as exc:
        log.warning("no few-shot examples for the LLM (%s): it classifies from the taxonomy alone", exc)
        examples = ExampleBank([])
    llm = LlmClassifier(chat, kb.taxonomy, examples=examples)
    if llm_first:  # the LLM labels every ticket; only the fields with evidence are taken
        classifier: Classifier = FallbackClassifier(llm, classical, breaker=breaker)
        if set(llm_fields) != set(FIELDS):
            classifier = FieldGateClassifier(classifier, classical, llm_fields)
        return LlmParts(classifier, *writers)
    # cascade: the LLM only where the classical model is unsure; summaries and replies stay extractive
    choices, share = models.thresholds, settings.cascade_max_share
    thresholds: dict[str, float] = {f: budgeted_threshold(choices[f], share) for f in llm_fields if f in choices}
    classifier = CascadeClassifier(classical, llm, thresholds, breaker=breaker, top_k=settings.cascade_top_k)
    return LlmParts(classifier, *writers)
