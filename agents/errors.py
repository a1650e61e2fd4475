"""The TriageError family: every member carries the data a caller needs to act on it."""

from __future__ import annotations


class TriageError(Exception):
    """Base of the service's own errors."""


class InvalidTicket(TriageError):
    def __init__(self, field: str, problem: str) -> None:
        self.field, self.problem = field, problem
        super().__init__(f"{field}: {problem}")


class DataError(TriageError):
    """A data set (CSV, JSONL, zip) cannot be used as asked."""

    def __init__(self, path: str, problem: str) -> None:
        self.path, self.problem = path, problem
        super().__init__(f"{path}: {problem}")


class ModelNotTrained(TriageError):
    def __init__(self, path: str, reason: str = "") -> None:
        self.path, self.reason = path, reason
        found = f"the model at {path} is unusable ({reason})" if reason else f"no trained model at {path}"
        super().__init__(f"{found}: run `triage train` (or start the service once)")


class BackendUnavailable(TriageError):
    """The LLM endpoint could not be reached, timed out, or answered with an error status."""

    def __init__(self, backend: str, reason: str, status: int | None = None) -> None:
        self.backend, self.reason, self.status = backend, reason, status
        super().__init__(f"{backend} unavailable: {reason}")


class NoTimeLeft(BackendUnavailable):
    """The ticket's LLM time (TRIAGE_LLM_TIMEOUT) was spent before this call: not the endpoint's fault, so the
    circuit breaker ignores it."""

    def __init__(self, backend: str, task: str) -> None:
        self.task = task
        super().__init__(backend, f"no time left of this ticket's LLM time for {task}")


class InvalidModelOutput(TriageError):
    """The model answered, but not with something that validates."""

    def __init__(self, reason: str, raw: str = "") -> None:
        self.reason, self.raw = reason, raw[:2000]
        super().__init__(f"invalid model output: {reason}")


class UnknownLabel(InvalidModelOutput):
    """The model named a label outside the taxonomy."""

    def __init__(self, field: str, label: str, allowed: list[str]) -> None:
        self.field, self.label, self.allowed = field, label, allowed
        super().__init__(f"{field}={label!r} is not one of {allowed}", raw=label)


class StoreUnreadable(TriageError):
    """The store's SQLite file exists but SQLite cannot read it (not a database, or damaged)."""

    def __init__(self, path: str, problem: str) -> None:
        self.path, self.problem = path, problem
        super().__init__(
            f"the store {path} {problem}: move it aside (or restore a backup) and run again, "
            "or point TRIAGE_DATA_DIR / TRIAGE_DATABASE_URL at another store"
        )
