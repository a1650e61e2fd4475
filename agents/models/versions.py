"""Model versions on disk: immutable folders under models/versions/, and current.json naming the one to serve."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agents.errors import DataError, ModelNotTrained
from agents.models.records import NoPreviousVersion, Pointer, UnknownVersion, VersionRecord, legacy_record

POINTER = "current.json"
VERSIONS = "versions"
MODEL = "model"  # the model folder inside a version, as save_models writes it
RECORD = "version.json"
LOCK = ".lock"
LEGACY = "manifest.json"  # a models folder saved before versions has its manifest at the top
VERSION_ID = re.compile(r"^v(\d{4,})-\d{8}T\d{6}Z$")


def file_digest(path: Path) -> str:
    """sha256 of a file, to tell later whether a version's training data is the file that is there now."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_atomically(path: Path, text: str) -> None:
    """Write a small file so that readers see the old content or the new one, never half of either."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _number(version_id: str) -> int:
    found = VERSION_ID.match(version_id)
    return int(found.group(1)) if found else -1


class VersionStore:
    """The versions of one models folder. Versions are never changed once written; only the pointer moves.

    Writers (new versions, promote, rollback, adopting a legacy folder) take an exclusive file lock on
    models/.lock; readers take none: a version folder appears by one rename, the pointer by one replace.
    """

    def __init__(self, root: Path, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.root = Path(root)
        self.clock = clock

    @property
    def pointer_path(self) -> Path:
        return self.root / POINTER

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / LOCK, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # --- reading -------------------------------------------------------------------------------------------------

    def ids(self) -> list[str]:
        """Every version id, oldest first (by number)."""
        folder = self.root / VERSIONS
        found = [p.name for p in folder.iterdir() if p.is_dir() and VERSION_ID.match(p.name)] if folder.is_dir() else []
        return sorted(found, key=_number)

    def folder(self, version_id: str) -> Path:
        return self.root / VERSIONS / version_id

    def model_dir(self, version_id: str) -> Path:
        return self.folder(version_id) / MODEL

    def record(self, version_id: str) -> VersionRecord:
        """The version's version.json; a missing or damaged one is a DataError naming the file."""
        path = self.folder(version_id) / RECORD
        try:
            return VersionRecord.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            raise DataError(str(path), "is missing: this version cannot be described or promoted") from None
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(map(str, problem["loc"])) or "the file"
            raise DataError(str(path), f"is not a valid version record ({where}: {problem['msg']})") from None

    def pointer(self) -> Pointer | None:
        """current.json, or None before the first version; damaged, or naming a missing version: a DataError."""
        try:
            text = self.pointer_path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            pointer = Pointer.model_validate_json(text)
        except ValidationError:
            raise DataError(
                str(self.pointer_path),
                f"is damaged: name the version to serve with `triage models promote ID` ({self._known()})",
            ) from None
        if pointer.current not in self.ids():
            raise DataError(
                str(self.pointer_path),
                f"names version {pointer.current!r}, which is not in {self.root / VERSIONS}: "
                f"`triage models promote ID` ({self._known()})",
            )
        return pointer

    def current_id(self) -> str | None:
        pointer = self.pointer()
        return pointer.current if pointer else None

    def current_model_dir(self, *, adopt: bool = True) -> Path:
        """The model folder to load: the current version's. A legacy folder (models saved before versions) is
        adopted as a version first, or with adopt=False read where it is. Nothing saved: ModelNotTrained."""
        if adopt:
            self.adopt_legacy()
        current = self.current_id()
        if current is not None:
            return self.model_dir(current)
        if (self.root / LEGACY).is_file():
            return self.root
        raise ModelNotTrained(str(self.root))

    def resolve(self, ref: str) -> str:
        """A version id from the id or an unambiguous start of it (`v0003`); otherwise UnknownVersion."""
        ids = self.ids()
        if ref in ids:
            return ref
        matches = [i for i in ids if i.startswith(ref)] if ref else []
        if len(matches) == 1:
            return matches[0]
        raise UnknownVersion(ref, ids, ambiguous=len(matches) > 1)

    def _known(self) -> str:
        ids = self.ids()
        return f"versions: {', '.join(ids)}" if ids else "no versions saved"

    # --- writing -------------------------------------------------------------------------------------------------

    @contextmanager
    def _staging(self) -> Iterator[Path]:
        """A fresh hidden folder under versions/ (same file system, so it can be renamed in); removed on failure."""
        versions = self.root / VERSIONS
        versions.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".new.", dir=versions))
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _publish(self, tmp: Path, record: VersionRecord, make_current: bool) -> VersionRecord:
        """Give the staged folder the next id, write its record, rename it in, maybe move the pointer. Lock held."""
        now = self.clock()
        version_id = f"v{max(map(_number, self.ids()), default=0) + 1:04d}-{now:%Y%m%dT%H%M%SZ}"
        saved = record.model_copy(update={"id": version_id, "created_at": now})
        (tmp / RECORD).write_text(saved.model_dump_json(indent=2), encoding="utf-8")
        os.rename(tmp, self.folder(version_id))
        if make_current:
            self._move_pointer(version_id)
        return saved

    def create(
        self, write_model: Callable[[Path], None], record: VersionRecord, *, make_current: bool
    ) -> VersionRecord:
        """Save a new version: `write_model(folder)` writes the models into a fresh folder, then the version appears
        by one rename and, with make_current, the pointer moves to it. A failure before the rename leaves no
        version behind; the pointer only ever names a complete version."""
        with self._staging() as tmp:
            write_model(tmp / MODEL)
            with self._locked():
                return self._publish(tmp, record, make_current)

    def _move_pointer(self, version_id: str) -> None:
        """Make `version_id` current; the one it replaces goes on the history, for rollback. Lock held."""
        old = self._readable_pointer()
        history = list(old.history) if old else []
        if old and old.current != version_id:
            history.append(old.current)
        pointer = Pointer(current=version_id, history=history, updated_at=self.clock())
        write_atomically(self.pointer_path, pointer.model_dump_json(indent=2))

    def _readable_pointer(self) -> Pointer | None:
        """The pointer for a writer about to replace it: a damaged one is replaced (its history is lost)."""
        try:
            return self.pointer()
        except DataError:
            return None

    def promote(self, ref: str) -> tuple[str | None, str]:
        """Make a version current: (the one it replaced, the new one). Its record must be readable."""
        with self._locked():
            version_id = self.resolve(ref)
            self.record(version_id)
            if not (self.model_dir(version_id) / LEGACY).is_file():
                raise DataError(str(self.model_dir(version_id)), "holds no saved models: it cannot be served")
            old = self._readable_pointer()
            before = old.current if old else None
            if before != version_id:
                self._move_pointer(version_id)
            return before, version_id

    def rollback(self) -> tuple[str, str]:
        """Back to the version that was current before this one: (the one left, the one now current)."""
        with self._locked():
            pointer = self.pointer()
            if pointer is None or not pointer.history:
                raise NoPreviousVersion(pointer.current if pointer else None, self.ids())
            *rest, previous = pointer.history
            if previous not in self.ids():
                raise DataError(str(self.pointer_path), f"the previous version {previous!r} is gone")
            moved = Pointer(current=previous, history=rest, updated_at=self.clock())
            write_atomically(self.pointer_path, moved.model_dump_json(indent=2))
            return pointer.current, previous

    def adopt_legacy(self) -> VersionRecord | None:
        """A models folder saved before versions (manifest.json at its top) becomes the first version and current;
        its files are hard-linked (else copied) into the version, then removed from the top. Once only."""
        legacy = self.root / LEGACY
        if not legacy.is_file() or self.pointer_path.exists():
            return None
        with self._locked():
            if not legacy.is_file() or self.pointer_path.exists():  # another process adopted it meanwhile
                return None
            manifest = _lenient_json(legacy)
            if manifest is None:
                return None  # loading it in place says what is wrong with it
            files = [p for p in self.root.iterdir() if p.is_file() and not p.name.startswith(".")]
            with self._staging() as tmp:
                (tmp / MODEL).mkdir()
                for path in files:
                    try:
                        os.link(path, tmp / MODEL / path.name)
                    except OSError:
                        shutil.copy2(path, tmp / MODEL / path.name)
                saved = self._publish(tmp, legacy_record(manifest), make_current=True)
            for path in files:
                path.unlink(missing_ok=True)
        return saved


def _lenient_json(path: Path) -> dict[str, Any] | None:
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return found if isinstance(found, dict) else None


def current_model_dir(root: Path) -> Path:
    """The model folder a start would load, without changing anything on disk (no legacy adoption)."""
    return VersionStore(root).current_model_dir(adopt=False)
