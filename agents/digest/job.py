"""One digest run: read the store, build, write every format to disk, then (and only then) post to the webhook."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from agents.classical.calibration import ThresholdChoice
from agents.digest.builder import DigestBuilder, NarrativeWriter
from agents.digest.formats import render
from agents.digest.models import Digest
from agents.digest.render import to_slack
from agents.digest.store import load_digest_input
from agents.digest.themes import ThemeFinder, ThemeNamer, VectorCache
from agents.digest.webhook import WebhookFailed, WebhookPoster
from agents.errors import TriageError
from agents.novelty.clusters import default_distance
from agents.novelty.reader import find_new_categories, saved_thresholds
from agents.settings import Settings
from agents.store.tickets import Store
from kb.loader import KnowledgeBase
from retrieval.embedders import Embedder

log = logging.getLogger(__name__)
FORMATS = ("md", "json", "html")


class UnknownTeam(TriageError):
    def __init__(self, team: str, allowed: list[str]) -> None:
        self.team, self.allowed = team, allowed
        super().__init__(f"no team {team!r}; expected one of {allowed}")


class DigestRun(BaseModel):
    """What a run did: where the digest is on disk, and whether the post went through."""

    model_config = ConfigDict(extra="forbid")

    scope: str
    files: dict[str, str]
    out: str | None = None
    posted: bool = False
    attempts: int = 0
    error: str | None = None


def digests_dir(data_dir: Path) -> Path:
    return data_dir / "digests"


def build_digest(
    settings: Settings,
    store: Store,
    kb: KnowledgeBase,
    embedder: Embedder | None,
    *,
    now: datetime,
    at: datetime | None = None,
    team: str | None = None,
    timezone: str | None = None,
    namer: ThemeNamer | None = None,
    writer: NarrativeWriter | None = None,
    thresholds: Mapping[str, ThresholdChoice] | None = None,
) -> Digest:
    """The digest of the 24 hours to `at`; with an embedder, recurring themes, and with the models' `thresholds`
    too, possible new categories (clusters of the last 14 days' tickets every topic field abstained on)."""
    if team is not None and team not in kb.teams:
        raise UnknownTeam(team, sorted(kb.teams))
    at = at or now
    window = timedelta(hours=24)
    cache = VectorCache(digests_dir(settings.data_dir) / f"vectors-{_slug(embedder.name)}.npz") if embedder else None
    themes = ThemeFinder(embedder, namer=namer, cache=cache) if embedder is not None else None
    builder = DigestBuilder(
        kb,
        themes,
        window=window,
        breach_margin=settings.digest_breach_margin,
        writer=writer,
        timezone=timezone or settings.digest_timezone,
    )
    data = load_digest_input(store, at, window=window)
    if embedder is not None and thresholds is not None:
        found = find_new_categories(
            store, embedder, thresholds, now=at, cache=cache, distance=default_distance(embedder.name)
        )
        data = data.model_copy(update={"new_categories": found})
    digest = builder.build(data, now=now, at=at, team=team)
    if cache is not None:
        cache.save()
    return digest


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name)[-60:]


def _write(path: Path, text: str) -> None:
    """Write through a temporary file and rename, so a reader never sees half a digest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def save_digest(digest: Digest, data_dir: Path) -> dict[str, str]:
    """Archive every format under data_dir/digests/<scope>/ and refresh data_dir/digests/latest-<scope>.<ext>."""
    root = digests_dir(data_dir)
    name = f"{digest.window_end.astimezone(UTC):%Y%m%dT%H%MZ}"
    files = {}
    for fmt in FORMATS:
        text = render(digest, fmt)
        _write(root / digest.scope / f"{name}.{fmt}", text)
        _write(root / f"latest-{digest.scope}.{fmt}", text)
        files[fmt] = str(root / digest.scope / f"{name}.{fmt}")
    return files


def latest_digest_html(data_dir: Path, team: str | None = None) -> str | None:
    """The newest saved digest as HTML (for the web console), or None when no digest was made yet."""
    path = digests_dir(data_dir) / f"latest-{team or 'all'}.html"
    return path.read_text(encoding="utf-8") if path.is_file() else None


def deliver(
    digest: Digest,
    data_dir: Path,
    *,
    fmt: str = "md",
    out: Path | None = None,
    post: str | None = None,
    poster: WebhookPoster | None = None,
) -> DigestRun:
    """Disk first: the archive and `out` are written before any post, so a failed post loses nothing."""
    files = save_digest(digest, data_dir)
    if out is not None:
        _write(out, render(digest, fmt))
    run = DigestRun(scope=digest.scope, files=files, out=str(out) if out else None)
    if post is None and poster is None:
        return run
    try:
        sender = poster or WebhookPoster(post or "")
        run.attempts = sender.post(to_slack(digest))
        run.posted = True
    except WebhookFailed as exc:
        run.attempts, run.error = exc.attempts, str(exc)
        log.error("digest %s saved to %s but not posted: %s", digest.scope, files["md"], exc)
    return run


def run_digest(
    settings: Settings,
    *,
    at: datetime | None = None,
    team: str | None = None,
    fmt: str = "md",
    out: Path | None = None,
    post: str | None = None,
    timezone: str | None = None,
    now: datetime | None = None,
    embedder: Embedder | None = None,
) -> tuple[Digest, DigestRun]:
    """The composition root of a digest run (CLI and scheduler): real store, taxonomy and embedder."""
    store = Store.open(settings.data_dir, settings.database_url)
    try:
        digest = digest_from_settings(settings, store, embedder=embedder, now=now, at=at, team=team, timezone=timezone)
    finally:
        store.close()
    return digest, deliver(digest, settings.data_dir, fmt=fmt, out=out, post=post)


def digest_from_settings(
    settings: Settings,
    store: Store,
    *,
    embedder: Embedder | None = None,
    now: datetime | None = None,
    at: datetime | None = None,
    team: str | None = None,
    timezone: str | None = None,
) -> Digest:
    """build_digest with the configured taxonomy and embedder (the one given, else TRIAGE_EMBEDDER's)."""
    from kb.loader import load_kb
    from retrieval.factory import make_embedder

    return build_digest(
        settings,
        store,
        load_kb(settings.kb_dir),
        embedder or make_embedder(settings.embedder, settings.embed_precision),
        now=now or datetime.now(UTC),
        at=at,
        team=team,
        timezone=timezone,
        thresholds=saved_thresholds(settings.model_dir),
    )
