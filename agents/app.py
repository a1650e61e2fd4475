"""The composition root: the one place that picks concrete classes and wires the service from settings."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from agents.jsonl import read_jsonl
from agents.llm.plan import LlmPlan
from agents.settings import Settings

if TYPE_CHECKING:  # the heavy parts are imported when something is built, so importing this module stays cheap
    from agents.answers.answer import Answerer
    from agents.classical.training import TriageModels
    from agents.llm.chat import ChatModel
    from agents.models.live import Every, LiveService
    from agents.models.stored_memory import StoredMemorySync
    from agents.policy import CircuitBreaker
    from agents.service import TriageService
    from agents.similar import TicketMemory
    from agents.store.tickets import Store
    from kb.loader import KnowledgeBase
    from retrieval.embedders import Embedder
    from retrieval.index import SopIndex

log = logging.getLogger(__name__)


@dataclass
class Shared:
    """What the triage service and the answerer share in one process: built once, never twice."""

    settings: Settings
    kb: KnowledgeBase
    embedder: Embedder
    index: SopIndex
    chat: ChatModel | None
    breaker: CircuitBreaker
    llm_plan: LlmPlan = field(default_factory=LlmPlan)  # what the LLM classifies and writes, from the evidence


@dataclass
class Engine:
    """Everything a running service needs: triage and answers over the same KB, index, LLM client and breaker.
    `live` swaps in a promoted model version; `stored` is the memory of stored tickets every version searches."""

    service: TriageService
    answerer: Answerer
    breaker: CircuitBreaker
    live: LiveService | None = None
    stored: TicketMemory | None = None


def load_sop_index(settings: Settings, embedder: Embedder, *, in_memory: bool = False) -> SopIndex:
    """The saved SOP index when it matches the KB and the embedder; else built (and saved unless in_memory)."""
    from retrieval.corpus import content_hash, load_chunks
    from retrieval.errors import IndexMismatch, IndexMissing
    from retrieval.index import SopIndex

    sops = settings.kb_dir / "sops"
    if sops.is_dir() and not any(p.is_file() for p in sops.rglob("*.md")):  # no SOPs yet (an onboarded helpdesk)
        return SopIndex.build([], embedder, source=str(sops))  # searched as nothing; built in no time, never saved
    digest = content_hash(sops)
    try:
        return SopIndex.load(settings.index_dir, embedder, expected_hash=digest)
    except (IndexMissing, IndexMismatch) as exc:
        log.info("building the SOP index (%s)", exc)
    index = SopIndex.build(
        load_chunks(sops), embedder, content_hash=digest, source=str(sops), approximate=settings.approximate_index
    )
    if not in_memory:
        index.save(settings.index_dir)
    return index


def server_embedder(settings: Settings) -> Embedder:
    """The embedder of a serving or worker process: an onnxruntime MiniLM on `torch_threads` threads (1 by default),
    not onnxruntime's pool of one spinning thread per core, which costs twice the CPU per text for the same vectors
    when the event loop, other requests or tasks and the rest of the triage want the cores too (measured in
    evals/reports/scale.md, HTTP and workers); the torch MiniLM gets the same limit where the process starts."""
    from retrieval.factory import make_embedder

    return make_embedder(settings.embedder, settings.embed_precision, threads=settings.torch_threads)


def build_shared(
    settings: Settings,
    *,
    embedder: Embedder | None = None,
    chat: ChatModel | None = None,
    http_client: Any = None,
    in_memory: bool = False,
) -> Shared:
    """Load the KB, the embedder, the SOP index and the LLM client once (`chat` may be passed in ready-made)."""
    from agents.llm.factory import start_chat
    from agents.llm.plan import plan_llm
    from agents.policy import CircuitBreaker
    from kb.loader import load_kb
    from retrieval.factory import make_embedder

    kb = load_kb(settings.kb_dir)
    embedder = embedder or make_embedder(settings.embedder, settings.embed_precision)
    index = load_sop_index(settings, embedder, in_memory=in_memory)
    if chat is None:
        chat = start_chat(settings, http_client)
    breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown)
    return Shared(settings, kb, embedder, index, chat, breaker, plan_llm(settings, usable=chat is not None))


def build_service(
    settings: Settings,
    *,
    shared: Shared | None = None,
    chat: ChatModel | None = None,
    http_client: Any = None,
    progress: bool = False,
    models: TriageModels | None = None,
) -> TriageService:
    """Wire the triage service on `models`, or on the current version's (trained and saved on a first start)."""
    from agents.classical.training import load_or_train
    from agents.classify import ClassicalClassifier
    from agents.llm.factory import build_llm_parts
    from agents.modes import ModeTable
    from agents.route import Router
    from agents.service import TriageService
    from retrieval.hybrid import HybridSearcher

    shared = shared or build_shared(settings, chat=chat, http_client=http_client)
    if models is None:
        models = load_or_train(settings, shared.embedder, shared.kb, progress=progress)
    classifier = ClassicalClassifier(models.fields["category"], models.fields["priority"])
    llm = build_llm_parts(
        settings,
        shared.kb,
        models,
        classifier,
        lambda: read_jsonl(settings.training_data),
        shared.chat,
        shared.breaker,
        shared.llm_plan,
        shared.embedder,
    )
    modes = ModeTable.build(
        settings.default_mode,
        settings.field_modes,
        models.thresholds,
        {name: [str(c) for c in model.classes_] for name, model in models.fields.items()},
        writes_enabled=settings.writes_enabled,
        single_label=models.info.get("single_label"),
    )
    for name, why in modes.demoted.items():
        log.warning("%s: the default mode auto is not granted (%s); its decisions are suggested", name, why)
    if not settings.writes_enabled:
        log.warning("writes are switched off (TRIAGE_WRITES_ENABLED=false): every decision is recorded in shadow")
    return TriageService(
        shared.kb,
        models,
        shared.embedder,
        llm.classifier,
        Router(shared.kb),
        HybridSearcher(shared.index),
        summary_writer=llm.summary_writer,
        reply_writer=llm.reply_writer,
        llm_timeout=settings.llm_timeout if shared.chat is not None else None,
        modes=modes,
    )


def build_answerer(
    settings: Settings,
    *,
    shared: Shared | None = None,
    embedder: Embedder | None = None,
    in_memory: bool = False,
    clock: Callable[[], datetime] | None = None,
    chat: ChatModel | None = None,
) -> Answerer:
    """The `ask` path: SOP index, ownership from the catalogue, and with policy llm_first, an LLM and evidence that
    it answers better, the LLM writer (the extractive answer stays the fallback). No trained models are needed."""
    from agents.answers.answer import Answerer
    from agents.answers.llm_writer import LlmAnswerWriter
    from agents.answers.owners import OwnerResolver
    from agents.errors import TriageError
    from agents.llm.translate import LlmTranslator
    from agents.policy import LlmGuard
    from retrieval.hybrid import HybridSearcher

    shared = shared or build_shared(settings, embedder=embedder, chat=chat, in_memory=in_memory)
    timing: dict[str, Any] = {"clock": clock} if clock is not None else {}
    writer = guard = None
    if "answer" in shared.llm_plan.writers and shared.chat is not None:  # llm_first, and measured to answer better
        writer = LlmAnswerWriter(shared.chat, llm_timeout=settings.llm_timeout)
        guard = LlmGuard(shared.chat.name, shared.breaker, fallback_on=(TriageError,))
    # an LLM translates questions in languages the catalogue has no words for (measured to help there only)
    translator = LlmTranslator(shared.chat) if shared.chat is not None else None
    return Answerer(
        HybridSearcher(shared.index),
        OwnerResolver(shared.kb, shared.embedder, **timing),
        writer=writer,
        guard=guard,
        translator=translator,
        threshold=settings.answer_threshold,
        stale_after_days=settings.stale_after_days,
        **timing,
    )


def load_current(
    settings: Settings, embedder: Embedder, kb: KnowledgeBase, *, progress: bool = False
) -> tuple[str | None, TriageModels]:
    """The current version's id and its models; on a first start (or for models of another embedder or format)
    models trained on the training data and saved as the new current version (load_or_train says why)."""
    from agents.classical.training import load_models, load_or_train
    from agents.errors import ModelNotTrained
    from agents.models.versions import VersionStore

    versions = VersionStore(settings.model_dir)
    versions.adopt_legacy()
    version = versions.current_id()
    if version is not None:
        try:
            return version, load_models(versions.model_dir(version), embedder)
        except ModelNotTrained:
            pass
    models = load_or_train(settings, embedder, kb, progress=progress)
    return versions.current_id(), models


def build_live(
    settings: Settings, shared: Shared, stored: TicketMemory | None, *, progress: bool = False
) -> LiveService:
    """The triage service of the current version, which loads and swaps in the version the pointer names next.
    Every version searches its own training tickets and `stored` (this process's stored tickets) as one memory."""
    from agents.classical.training import load_models
    from agents.models.live import LiveService, PointerWatch
    from agents.models.versions import VersionStore
    from agents.similar import CombinedMemory

    versions = VersionStore(settings.model_dir)

    def service_on(models: TriageModels) -> TriageService:
        if stored is not None:
            models.memory = CombinedMemory(models.memory, stored)
        return build_service(settings, shared=shared, models=models)

    def load(version_id: str) -> TriageService:
        return service_on(load_models(versions.model_dir(version_id), shared.embedder))

    version, models = load_current(settings, shared.embedder, shared.kb, progress=progress)
    watch = PointerWatch(versions) if settings.models_poll > 0 else None
    return LiveService(service_on(models), version, load=load, watch=watch, poll_seconds=settings.models_poll)


def with_stored_memory(settings: Settings, shared: Shared) -> tuple[Shared, TicketMemory | None]:
    """The shared parts with an embedder that remembers what it embedded (the memory's sync reuses the vectors of
    tickets this process triaged), and an empty memory for the stored tickets; with TRIAGE_MEMORY_POLL=0 the parts
    as they are and None (only each version's own tickets are searched)."""
    from agents.models.stored_memory import RememberingEmbedder
    from agents.similar import TicketMemory

    if settings.memory_poll <= 0:
        return shared, None
    remembering = RememberingEmbedder(shared.embedder)
    return dataclasses.replace(shared, embedder=remembering), TicketMemory(remembering.dim)


@dataclass
class NodeWatch:
    """The background threads of one process: the model pointer's watch and the stored tickets' memory."""

    live: LiveService
    memory: StoredMemorySync | None
    threads: list[Every]

    def stop(self) -> None:
        for thread in self.threads:
            thread.stop()


def watch_node(settings: Settings, live: LiveService, stored: TicketMemory | None, store: Store) -> NodeWatch:
    """Start polling the model pointer every TRIAGE_MODELS_POLL seconds and the stored tickets every
    TRIAGE_MEMORY_POLL seconds (the first look at once), each in a daemon thread of its own."""
    import threading

    from agents.models.live import Every
    from agents.models.stored_memory import StoredMemorySync

    threads, memory = [], None
    if stored is not None:
        stopping = threading.Event()
        memory = StoredMemorySync(
            store,
            live.current.embedder,
            stored,
            max_tickets=settings.memory_max_stored,
            poll_seconds=settings.memory_poll,
            stopping=stopping,
            intake_fields=lambda: live.current.models.intake_fields,
        )
        threads.append(Every(settings.memory_poll, memory.refresh, "triage-memory", stopping).start())
    if live.watch is not None:
        threads.append(Every(settings.models_poll, live.check, "triage-models").start())
    return NodeWatch(live, memory, threads)


def build_engine(settings: Settings, *, chat: ChatModel | None = None, progress: bool = False) -> Engine:
    """Triage and answers for one process, sharing one KB, index, LLM client and circuit breaker; the triage
    service is the current model version's, swapped when another is promoted (NodeWatch polls for it)."""
    shared, stored = with_stored_memory(settings, build_shared(settings, embedder=server_embedder(settings), chat=chat))
    live = build_live(settings, shared, stored, progress=progress)
    return Engine(live.current, build_answerer(settings, shared=shared), shared.breaker, live, stored)
