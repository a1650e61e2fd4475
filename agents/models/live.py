"""Hot swap: a process serves the model version models/current.json names, loading a new one in the background."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from agents.errors import DataError
from agents.models.versions import VersionStore

if TYPE_CHECKING:
    from agents.service import TriageService
    from agents.types import Ticket, TriageResult

log = logging.getLogger(__name__)


class SwapStatus(BaseModel):
    """Which model version this process serves, what the pointer names, and what went wrong loading it."""

    model_config = ConfigDict(extra="forbid")

    loaded: str | None  # the version whose models answer requests now (None: models not from a version folder)
    loaded_at: datetime
    pointer: str | None = None  # the version current.json named at the last look
    checked_at: datetime | None = None
    swaps: int = 0  # versions swapped in since the start
    load_seconds: float | None = None  # time to load the last version swapped in
    failed: str | None = None  # the last version that could not be loaded: the loaded one stayed
    error: str | None = None  # why (a load error, or a damaged pointer)
    poll_seconds: float = 0.0  # 0: no hot swap, a restart loads another version


class PointerWatch:
    """The version current.json names, re-read only when the file changed: a look costs one stat().
    Writers replace the file (os.replace), so a new pointer is a new inode even within one mtime tick."""

    def __init__(self, versions: VersionStore) -> None:
        self.versions = versions
        self._seen: tuple[int, int, int] | None = None
        self._named: str | None = None

    def current(self) -> str | None:
        """The version id, None before the first version; a damaged pointer is a DataError (and read again)."""
        try:
            st = os.stat(self.versions.pointer_path)
        except FileNotFoundError:
            self._seen = self._named = None
            return None
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp != self._seen:
            self._named = self.versions.current_id()  # raises before _seen moves: a damaged file is read again
            self._seen = stamp
        return self._named


class LiveService:
    """The triage service of the current version. A request takes the service when it starts, so requests in
    flight finish on the old one and new ones get the new one; `check` (a background thread) loads a version the
    pointer names and swaps it in with one assignment; a version that fails to load is reported, never served."""

    def __init__(
        self,
        service: TriageService,
        version: str | None,
        *,
        load: Callable[[str], TriageService] | None = None,
        watch: PointerWatch | None = None,
        poll_seconds: float = 0.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._active = (version, service)
        self.load, self.watch, self.clock = load, watch, clock
        self._status = SwapStatus(loaded=version, loaded_at=clock(), pointer=version, poll_seconds=poll_seconds)
        self._checking = threading.Lock()

    @property
    def current(self) -> TriageService:
        return self._active[1]

    @property
    def version(self) -> str | None:
        return self._active[0]

    def triage_batch(self, tickets: list[Ticket]) -> list[TriageResult]:
        return self.current.triage_batch(tickets)

    def status(self) -> SwapStatus:
        return self._status.model_copy()

    def check(self) -> bool:
        """One look at the pointer: a version it names that is neither loaded nor failed before is loaded here
        (blocking: call from a background thread) and swapped in. True when a new version is now served."""
        if self.load is None or self.watch is None or not self._checking.acquire(blocking=False):
            return False
        try:
            return self._check(self.load, self.watch)
        finally:
            self._checking.release()

    def _check(self, load: Callable[[str], TriageService], watch: PointerWatch) -> bool:
        now = self.clock()
        try:
            named = watch.current()
        except DataError as exc:
            if self._status.error != str(exc):
                log.error("model pointer unreadable, version %s stays: %s", self.version, exc)
            self._status = self._status.model_copy(update={"checked_at": now, "error": str(exc)})
            return False
        self._status = self._status.model_copy(update={"checked_at": now, "pointer": named})
        if named is None or named in (self.version, self._status.failed):
            return False
        started = time.perf_counter()
        try:
            service = load(named)
        except Exception as exc:  # a broken version: say so and keep serving the one that works
            error = f"{type(exc).__name__}: {exc}"[:1000]
            log.error("model version %s could not be loaded, %s stays: %s", named, self.version, error)
            self._status = self._status.model_copy(update={"failed": named, "error": error})
            return False
        seconds = round(time.perf_counter() - started, 3)
        before, self._active = self.version, (named, service)
        self._status = self._status.model_copy(
            update={
                "loaded": named,
                "loaded_at": self.clock(),
                "swaps": self._status.swaps + 1,
                "load_seconds": seconds,
                "failed": None,
                "error": None,
            }
        )
        log.warning("model version %s now served (was %s; loaded in %.2f s)", named, before, seconds)
        return True


class Every:
    """A daemon thread that runs `job` at once and then every `seconds` until stop(); a job that raises is logged
    and run again at its next turn. A long job may watch `stopping` to end early."""

    def __init__(self, seconds: float, job: Callable[[], object], name: str, stopping: threading.Event | None = None):
        self.seconds, self.job, self.name = seconds, job, name
        self._stop = stopping or threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Every:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.job()
            except Exception:
                log.exception("%s failed; trying again in %.1f s", self.name, self.seconds)
            self._stop.wait(self.seconds)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
