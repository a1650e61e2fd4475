"""`triage scheduler`: APScheduler runs the digest every day at a set local time, per team, optionally weekdays only."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.cron import CronTrigger

from agents.errors import TriageError
from agents.settings import Settings
from retrieval.embedders import Embedder

log = logging.getLogger(__name__)
TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class UnknownTimeZone(TriageError):
    def __init__(self, zone: str, where: str) -> None:
        self.zone, self.where = zone, where
        super().__init__(f"{where}: unknown time zone {zone!r}; use an IANA name such as Europe/London or UTC")


class BadSchedule(TriageError):
    def __init__(self, where: str, value: str, problem: str) -> None:
        self.where, self.value, self.problem = where, value, problem
        super().__init__(f"{where}: {value!r}: {problem}")


@dataclass(frozen=True)
class Schedule:
    """One daily digest: `team` None is the all-teams digest."""

    team: str | None
    hour: int
    minute: int
    timezone: str
    weekdays_only: bool

    @property
    def job_id(self) -> str:
        return f"digest-{self.team or 'all'}"

    def trigger(self) -> CronTrigger:
        return CronTrigger(
            hour=self.hour,
            minute=self.minute,
            day_of_week="mon-fri" if self.weekdays_only else "*",
            timezone=zone(self.timezone, self.job_id),
        )


def zone(name: str, where: str) -> ZoneInfo:
    """A time zone by IANA name; anything else is a clear error, not a crash inside the scheduler."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise UnknownTimeZone(name, where) from None


def parse_time(value: str, where: str) -> tuple[int, int]:
    match = TIME.match(value.strip())
    if not match:
        raise BadSchedule(where, value, "expected a time as HH:MM (24-hour clock)")
    return int(match.group(1)), int(match.group(2))


def plan(settings: Settings, teams: Iterable[str]) -> list[Schedule]:
    """The all-teams digest at `digest_time` in `digest_timezone`, and one digest per team named in
    `digest_team_schedules` ("HH:MM" in the default zone, or "HH:MM Area/City"). Every zone is checked up front."""
    known = set(teams)
    hour, minute = parse_time(settings.digest_time, "digest_time")
    zone(settings.digest_timezone, "digest_timezone")
    plans = [Schedule(None, hour, minute, settings.digest_timezone, settings.digest_weekdays_only)]
    for team, value in sorted(settings.digest_team_schedules.items()):
        where = f"digest_team_schedules[{team}]"
        if team not in known:
            raise BadSchedule(where, value, f"no such team; expected one of {sorted(known)}")
        parts = value.split()
        if len(parts) not in (1, 2):
            raise BadSchedule(where, value, "expected 'HH:MM' or 'HH:MM Area/City'")
        t_hour, t_minute = parse_time(parts[0], where)
        tz = parts[1] if len(parts) == 2 else settings.digest_timezone
        zone(tz, where)
        plans.append(Schedule(team, t_hour, t_minute, tz, settings.digest_weekdays_only))
    return plans


def schedule_jobs(scheduler: BaseScheduler, plans: list[Schedule], job: Callable[[Schedule], object]) -> None:
    """One cron job per plan; a run missed by up to an hour (the host slept) still runs once."""
    for item in plans:
        scheduler.add_job(
            job,
            item.trigger(),
            args=[item],
            id=item.job_id,
            name=item.job_id,
            replace_existing=True,
            coalesce=True,
            misfire_grace_time=3600,
            max_instances=1,
        )


def digest_job(settings: Settings) -> Callable[[Schedule], object]:
    """The scheduled work: a digest run that logs instead of raising, so one bad day never stops the scheduler.
    On PostgreSQL it runs once per scope and day however many schedulers share the database (digest/once.py)."""

    embedders: list[Embedder] = []  # made on the first run, then kept: MiniLM loads once per process

    def run(item: Schedule) -> None:
        from agents.digest.once import run_scheduled_digest
        from retrieval.factory import make_embedder

        try:
            if not embedders:
                embedders.append(make_embedder(settings.embedder, settings.embed_precision))
            outcome = run_scheduled_digest(
                settings,
                day=_now(item.timezone).date(),  # the slot: one digest per scope and local day, whoever runs it
                team=item.team,
                post=settings.digest_webhook_url,
                timezone=item.timezone,
                embedder=embedders[0],
            )
        except TriageError as exc:
            log.error("%s failed: %s", item.job_id, exc)
            return
        if outcome is None:
            log.info("%s: made by another scheduler on the same database; skipped here", item.job_id)
            return
        status = "posted" if outcome.posted else ("not posted: " + outcome.error if outcome.error else "saved")
        log.info("%s saved to %s; %s", item.job_id, outcome.files["md"], status)

    return run


def run_scheduler(settings: Settings, teams: Iterable[str]) -> None:
    """Block and run the digests until interrupted (the process a container or systemd keeps alive)."""
    from apscheduler.schedulers.blocking import BlockingScheduler

    plans = plan(settings, teams)
    scheduler = BlockingScheduler()
    schedule_jobs(scheduler, plans, digest_job(settings))
    for item in plans:
        next_run = item.trigger().get_next_fire_time(None, _now(item.timezone))
        print(
            f"{item.job_id}: {item.hour:02d}:{item.minute:02d} {item.timezone}"
            f"{' (weekdays)' if item.weekdays_only else ''}; next {next_run:%Y-%m-%d %H:%M %Z}"
        )
    scheduler.start()


def _now(tz: str) -> datetime:
    return datetime.now(ZoneInfo(tz))
