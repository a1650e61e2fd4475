"""What one worker process builds once and keeps: the ticket store and a triage engine per kind of queue."""

from __future__ import annotations

import dataclasses
import logging
import threading
from datetime import timedelta
from typing import TYPE_CHECKING

from agents.settings import Settings
from agents.workers.config import FAST, LLM

if TYPE_CHECKING:
    from agents.app import Shared
    from agents.service import TriageService
    from agents.store.tickets import Store
    from retrieval.embedders import Embedder

log = logging.getLogger(__name__)


def classical_settings(settings: Settings) -> Settings:
    """The settings of the fast queue: the same models and index, no LLM whatever the policy says."""
    return settings.model_copy(update={"policy": "classical_only"})


class WorkerRuntime:
    """Built lazily in the process that runs the tasks (after the fork, under prefork), then kept for its life.
    Tasks of the fast queue get a classical-only engine; those of the llm queue the engine of the settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._store: Store | None = None
        self._shared: Shared | None = None
        self._embedder: Embedder | None = None
        self._services: dict[str, TriageService] = {}

    def store(self) -> Store:
        """The store with a worker's claim lease (also on SQLite, where several worker processes share a file)."""
        with self._lock:
            if self._store is None:
                from agents.store.tickets import Store, database_url, make_engine

                lease = timedelta(seconds=self.settings.worker_claim_lease)
                url = database_url(self.settings.data_dir, self.settings.database_url)
                store = Store(make_engine(url), claim_lease=lease)
                store.migrate()
                self._store = store
            return self._store

    def _shared_parts(self) -> Shared:
        if self._shared is None:
            from agents.app import build_shared

            self._shared = build_shared(classical_settings(self.settings), embedder=self._embedder)  # llm adds a client
        return self._shared

    def embedder(self) -> Embedder:
        """The engines' embedder once they are built; before that one of its own (no SOP index loaded for it)."""
        with self._lock:
            if self._shared is not None:
                return self._shared.embedder
            if self._embedder is None:
                from retrieval.factory import make_embedder

                self._embedder = make_embedder(self.settings.embedder, self.settings.embed_precision)
            return self._embedder

    def service(self, queue: str) -> TriageService:
        """The engine for one queue's tickets, built on its first task (a failed build is tried again next task)."""
        with self._lock:
            if queue not in self._services:
                self._services[queue] = self._build(queue)
            return self._services[queue]

    def _build(self, queue: str) -> TriageService:
        from agents.app import build_service
        from agents.llm.factory import start_chat

        if queue not in (FAST, LLM):
            raise ValueError(f"no triage engine for the queue {queue!r}")
        shared = self._shared_parts()
        if queue == FAST:
            service = build_service(classical_settings(self.settings), shared=shared)
        else:
            chat = start_chat(self.settings)
            service = build_service(
                self.settings, shared=dataclasses.replace(shared, settings=self.settings, chat=chat)
            )
        log.info("worker engine for the %s queue ready (policy %s)", queue, service_policy(self.settings, queue))
        return service

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


def service_policy(settings: Settings, queue: str) -> str:
    return "classical_only" if queue == FAST else settings.policy
