"""Errors of the retrieval layer; each carries the data a caller needs to act on it."""

from __future__ import annotations


class RetrievalError(Exception):
    """Base of retrieval errors; `hint` says what to do about it."""

    hint = ""

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base} ({self.hint})" if self.hint else base


class CorpusError(RetrievalError):
    def __init__(self, path: str, problem: str) -> None:
        self.path, self.problem = path, problem
        super().__init__(f"{path}: {problem}")


class IndexMissing(RetrievalError):
    def __init__(self, path: str, rebuild: str) -> None:
        self.path, self.hint = path, f"build it with: {rebuild}"
        super().__init__(f"no index at {path}")


class IndexMismatch(RetrievalError):
    """The saved index was built with another embedder or from other content."""

    def __init__(self, path: str, what: str, saved: str, wanted: str, rebuild: str) -> None:
        self.path, self.what, self.saved, self.wanted = path, what, saved, wanted
        self.hint = f"rebuild it with: {rebuild}"
        super().__init__(f"index at {path} was built with {what} {saved!r}, expected {wanted!r}")


class EmptyQuery(RetrievalError):
    def __init__(self) -> None:
        super().__init__("the query is empty")
