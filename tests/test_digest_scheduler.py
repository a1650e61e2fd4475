"""The schedule: time zones (unknown ones are a clear error), weekdays only, per-team times, and the CLI's answer."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from agents.cli.digest import parse_at
from agents.cli.main import main
from agents.digest.scheduler import BadSchedule, Schedule, UnknownTimeZone, digest_job, plan, schedule_jobs
from agents.settings import Settings

TEAMS = ["network", "identity"]
LONDON = ZoneInfo("Europe/London")


def settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(data_dir=tmp_path, **values)  # type: ignore[arg-type]


def test_an_unknown_time_zone_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UnknownTimeZone) as err:
        plan(settings(tmp_path, digest_timezone="Europe/Atlantis"), TEAMS)
    assert err.value.zone == "Europe/Atlantis" and "digest_timezone" in str(err.value)
    with pytest.raises(UnknownTimeZone, match=r"digest_team_schedules\[network\]"):
        plan(settings(tmp_path, digest_team_schedules={"network": "07:00 Mars/Olympus_Mons"}), TEAMS)


def test_bad_times_and_teams_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(BadSchedule, match="HH:MM"):
        plan(settings(tmp_path, digest_team_schedules={"network": "7am"}), TEAMS)
    with pytest.raises(BadSchedule, match="no such team"):
        plan(settings(tmp_path, digest_team_schedules={"nobody": "07:00"}), TEAMS)


def test_weekdays_only_skips_the_weekend_in_local_time(tmp_path: Path) -> None:
    plans = plan(settings(tmp_path, digest_time="08:30", digest_timezone="Europe/London"), TEAMS)
    assert plans == [Schedule(None, 8, 30, "Europe/London", True)]
    friday_after = datetime(2026, 7, 17, 9, 0, tzinfo=LONDON)
    nxt = plans[0].trigger().get_next_fire_time(None, friday_after)
    assert nxt == datetime(2026, 7, 20, 8, 30, tzinfo=LONDON)  # Monday, 07:30 UTC in summer time
    every_day = plan(settings(tmp_path, digest_weekdays_only=False, digest_timezone="Europe/London"), TEAMS)[0]
    assert every_day.trigger().get_next_fire_time(None, friday_after) == datetime(2026, 7, 18, 8, 30, tzinfo=LONDON)


def test_each_team_at_its_own_time_and_zone(tmp_path: Path) -> None:
    values = {"digest_team_schedules": {"network": "07:15 America/Chicago", "identity": "09:00"}}
    plans = plan(settings(tmp_path, digest_timezone="Europe/London", **values), TEAMS)
    assert [(p.team, p.hour, p.minute, p.timezone) for p in plans] == [
        (None, 8, 30, "Europe/London"),
        ("identity", 9, 0, "Europe/London"),
        ("network", 7, 15, "America/Chicago"),
    ]
    scheduler = BackgroundScheduler()
    schedule_jobs(scheduler, plans, lambda item: None)
    assert sorted(job.id for job in scheduler.get_jobs()) == ["digest-all", "digest-identity", "digest-network"]


def test_the_cli_answers_an_unknown_zone_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["digest", "--data-dir", str(tmp_path), "--embedder", "hashing", "--timezone", "Nowhere/City"])
    assert code == 2
    assert "unknown time zone 'Nowhere/City'" in capsys.readouterr().err
    assert not (tmp_path / "triage.db").exists()  # refused before touching the store


def test_at_is_read_in_the_digest_zone_and_may_not_be_in_the_future() -> None:
    now = datetime(2026, 7, 14, 12, 0, tzinfo=ZoneInfo("UTC"))
    assert parse_at("2026-07-14T09:00", "Europe/London", now) == datetime(2026, 7, 14, 8, 0, tzinfo=ZoneInfo("UTC"))
    with pytest.raises(ValueError, match="in the future"):
        parse_at("2026-07-15T09:00+00:00", "UTC", now)
    with pytest.raises(ValueError, match="ISO time"):
        parse_at("yesterday", "UTC", now)


def test_the_cli_writes_a_digest_of_an_empty_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "d.html"
    code = main(
        [
            "digest",
            "--data-dir",
            str(tmp_path),
            "--embedder",
            "hashing",
            "--format",
            "html",
            "--out",
            str(out),
            "--team",
            "network",
        ]
    )
    assert code == 0
    assert "Nothing came in" in out.read_text() and "Network Operations" in out.read_text()
    assert (tmp_path / "digests" / "latest-network.json").is_file()
    assert main(["digest", "--data-dir", str(tmp_path), "--embedder", "hashing", "--team", "nobody"]) == 2
    assert "no team 'nobody'" in capsys.readouterr().err


def test_a_scheduled_run_writes_the_digest_and_survives_a_bad_day(tmp_path: Path) -> None:
    job = digest_job(settings(tmp_path, embedder="hashing"))
    job(Schedule("network", 8, 30, "Europe/London", True))
    assert "Network Operations" in (tmp_path / "digests" / "latest-network.md").read_text()
    job(Schedule("nobody", 8, 30, "UTC", True))  # an unknown team is logged, not raised
    assert not (tmp_path / "digests" / "latest-nobody.md").exists()
