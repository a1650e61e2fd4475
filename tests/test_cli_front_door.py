"""The command line for a new user: API keys without a server, help and examples everywhere, one-line errors that
say what to change, and progress bars on the long first steps."""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from serverkit import KEY, ServerProcess

from agents.cli.main import build_parser, main, report
from agents.store.tickets import Store
from agents.types import MAX_BODY_CHARS
from agents.web.auth import SCOPES, KeyRing
from retrieval.factory import EMBEDDERS

ESTIMATE = re.compile(r"\d\d:\d\d<\d\d:\d\d")  # tqdm's [elapsed<remaining]


@pytest.fixture
def clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in tmp_path, where no .env can leak settings in, with no TRIAGE_* variable set."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("TRIAGE_") or n == "OPENAI_API_KEY"]:
        monkeypatch.delenv(name)
    return tmp_path


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None, stdin: str = "") -> subprocess.CompletedProcess:
    """`python -m agents.cli.main ARGS` in its own process, with a clean TRIAGE_* environment plus `env`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")}
    return subprocess.run(
        [sys.executable, "-m", "agents.cli.main", *args],
        cwd=cwd,
        env={**base, **(env or {})},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_clean_line(err: str) -> str:
    """The only line of an error output, after checking there is no traceback and no pydantic URL in it."""
    assert "Traceback" not in err and "https://errors.pydantic.dev" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def small_tickets(rows: list[dict], path: Path, n: int = 150) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in random.Random(0).sample(rows, n)), encoding="utf-8")
    return path


# --- triage keys -------------------------------------------------------------------------------------------------


def test_keys_create_list_revoke_round_trip(clean: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = ["--data-dir", str(clean / "data")]
    assert main(["keys", "create", "--name", "helpdesk-bot", "--scope", "triage", "--scope", "read", *data]) == 0
    out = capsys.readouterr().out
    (secret,) = KEY.findall(out)
    assert "only time" in out and "hash" in out
    key_id = secret.split("_")[1]

    store = Store.open(clean / "data")
    principal = KeyRing(store).verify(secret)  # the running service's own check accepts it
    assert principal is not None and principal.scopes == {"triage", "read"} and principal.name == "helpdesk-bot"
    store.close()

    assert main(["keys", "list", *data]) == 0
    listed = capsys.readouterr().out
    assert key_id in listed and "active" in listed and "helpdesk-bot" in listed
    assert secret.split("_", 2)[2] not in listed  # never the secret
    assert main(["keys", "list", "--json", *data]) == 0
    (info,) = json.loads(capsys.readouterr().out)
    assert set(info) == {"id", "name", "scopes", "created_at", "revoked_at"} and info["revoked_at"] is None

    assert main(["keys", "revoke", key_id, *data]) == 0
    assert "revoked" in capsys.readouterr().out
    assert main(["keys", "list", *data]) == 0
    assert re.search(rf"{key_id}\s+revoked", capsys.readouterr().out)
    store = Store.open(clean / "data")
    assert KeyRing(store).verify(secret) is None
    store.close()
    assert main(["keys", "revoke", key_id, *data]) == 0
    assert "already revoked" in capsys.readouterr().out


def test_revoking_an_unknown_key_is_one_line_and_exit_1(clean: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "revoke", "nosuchkey", "--data-dir", str(clean)]) == 1
    captured = capsys.readouterr()
    line = one_clean_line(captured.err)
    assert line.startswith("triage: ") and "'nosuchkey'" in line and "triage keys list" in line
    assert captured.out == ""


def test_an_unknown_scope_is_a_usage_error(clean: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["keys", "create", "--name", "x", "--scope", "superuser", "--data-dir", str(clean)])
    assert exit_.value.code == 2
    line = one_clean_line(capsys.readouterr().err)
    assert "'superuser'" in line and all(scope in line for scope in SCOPES)
    assert not (clean / "triage.db").exists()


def test_the_scope_help_names_every_scope(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["keys", "create", "--help"])
    out = capsys.readouterr().out
    assert all(f"{scope} (" in out for scope in SCOPES)


# --- help ----------------------------------------------------------------------------------------------------------


def walk(parser: argparse.ArgumentParser, path: str = "triage", summary: str | None = None):  # type: ignore[no-untyped-def]
    """(command path, parser, its description or its line in the parent's list) for it and every sub-command."""
    yield path, parser, parser.description or summary
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield from walk(sub, f"{path} {name}", helps.get(name))


def test_every_command_has_help_an_example_and_help_on_every_option() -> None:
    commands = list(walk(build_parser()))
    assert len(commands) > 20
    assert {"triage keys create", "triage eval run", "triage bench", "triage demo seed"} <= {p for p, _, _ in commands}
    for path, parser, summary in commands:
        assert summary, f"{path}: no description or help"
        epilog = parser.epilog or ""
        assert re.search("example", epilog, re.I) or re.search(r"^\s*triage ", epilog, re.M), f"{path}: no example"
        for action in parser._actions:
            if not isinstance(action, argparse._HelpAction):
                assert action.help and action.help.strip(), (
                    f"{path}: {action.option_strings or action.dest} has no help"
                )
        assert path in parser.format_help()  # renders (a stray % in a help text would raise here)


def test_no_command_prints_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    out = capsys.readouterr().out
    assert "COMMAND" in out and "keys" in out and "triage serve" in out


# --- one-line errors -------------------------------------------------------------------------------------------------


def test_a_bad_embedder_setting_is_one_line_naming_the_variable_and_the_choices(tmp_path: Path) -> None:
    done = run_cli("ticket", "x", cwd=tmp_path, env={"TRIAGE_EMBEDDER": "minilm-int4"})
    assert done.returncode == 2
    line = one_clean_line(done.stderr)
    assert line.startswith("triage: TRIAGE_EMBEDDER='minilm-int4'")
    assert all(f"'{name}'" in line for name in EMBEDDERS)


def test_every_bad_setting_gets_its_own_line(clean: Path, monkeypatch, capsys: pytest.CaptureFixture[str]) -> None:
    bad = {
        "TRIAGE_PRECISION_TARGET": ("2", "at most 1"),
        "TRIAGE_TRAIN_FOLDS": ("five", "whole number"),
        "TRIAGE_AUTH_DEV_MODE": ("maybe", "true or false"),
        "TRIAGE_CASCADE_FIELDS": ('["team"]', "'category' or 'priority'"),
        "TRIAGE_LLM_TIMEOUT": ("-1", "above 0"),
    }
    for name, (value, _) in bad.items():
        monkeypatch.setenv(name, value)
    assert main(["keys", "list"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == len(bad)
    for name, (_, allowed) in bad.items():
        (line,) = [line for line in lines if line.startswith(f"triage: {name}=")]
        assert allowed in line
    assert not (clean / "data").exists()  # nothing was opened


def test_a_setting_that_is_not_json_says_so(clean: Path, monkeypatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TRIAGE_DIGEST_TEAM_SCHEDULES", "{network: 07:30}")
    assert main(["keys", "list"]) == 2
    assert "TRIAGE_DIGEST_TEAM_SCHEDULES is not valid JSON" in one_clean_line(capsys.readouterr().err)


def test_a_port_out_of_range_is_one_line(tmp_path: Path) -> None:
    done = run_cli("serve", "--port", "99999", "--data-dir", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 2
    line = one_clean_line(done.stderr)
    assert "--port" in line and "'99999'" in line and "1 to 65535" in line
    assert not (tmp_path / "triage.db").exists()


def test_training_on_a_csv_without_a_label_column_says_it_is_missing(
    clean: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (clean / "some.csv").write_text("a,b\nvpn down,network\n", encoding="utf-8")
    assert main(["train", "--data", "some.csv", "--text-col", "a", "--embedder", "hashing"]) == 2
    line = one_clean_line(capsys.readouterr().err)
    assert "some.csv" in line and "--label-col is missing" in line and "Expecting value" not in line
    assert main(["train", "--data", "some.csv", "--embedder", "hashing"]) == 2  # a CSV and no columns at all
    line = one_clean_line(capsys.readouterr().err)
    assert "a CSV needs --text-col and --label-col" in line
    assert not (clean / "data" / "models").exists()


def test_a_2_mb_ticket_is_one_line_naming_the_limit(tmp_path: Path) -> None:
    done = run_cli("ticket", "-", "--data-dir", str(tmp_path), cwd=tmp_path, stdin="a" * 2_000_000)
    assert done.returncode == 2
    line = one_clean_line(done.stderr)
    assert "body" in line and "2,000,000 characters" in line and f"{MAX_BODY_CHARS:,}" in line
    assert "MAX_BODY_CHARS" in line
    assert not (tmp_path / "models").exists()  # refused before anything was loaded or trained


def test_a_corrupt_store_is_one_line_naming_the_file(tmp_path: Path) -> None:
    garbage = bytes(random.Random(1).randrange(256) for _ in range(8192))
    (tmp_path / "triage.db").write_bytes(garbage)
    done = run_cli("keys", "list", "--data-dir", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 2
    line = one_clean_line(done.stderr)
    assert str((tmp_path / "triage.db").resolve()) in line and "is not a SQLite database" in line
    assert (tmp_path / "triage.db").read_bytes() == garbage  # left as it was, for whoever wants to look at it


def test_an_unexpected_error_is_one_line_unless_debug(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        {}["missing"]
    except KeyError as exc:
        error = exc
    assert report(error) == 1
    line = one_clean_line(capsys.readouterr().err)
    assert line.startswith("triage: unexpected error: KeyError") and "run with --debug for the traceback" in line
    assert report(error, debug=True) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and 'test_cli_front_door.py", line' in err


def test_debug_is_taken_before_or_after_the_command() -> None:
    parser = build_parser()
    assert parser.parse_args(["--debug", "keys", "list"]).debug is True
    assert parser.parse_args(["keys", "list", "--debug"]).debug is True
    assert parser.parse_args(["keys", "list"]).debug is False


# --- progress --------------------------------------------------------------------------------------------------------


def test_train_shows_a_progress_bar_with_a_time_estimate_unless_quiet(
    clean: Path, demo_rows: list[dict], monkeypatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TRIAGE_TRAIN_FOLDS", "2")
    data = small_tickets(demo_rows, clean / "tickets.jsonl")
    assert main(["train", "--data", str(data), "--embedder", "hashing", "--out", str(clean / "m1")]) == 0
    captured = capsys.readouterr()
    assert "training on 150 tickets" in captured.err and ESTIMATE.search(captured.err)
    assert "trained on 150 tickets" in captured.out
    args = ["train", "--data", str(data), "--embedder", "hashing", "--out", str(clean / "m2"), "--quiet"]
    assert main(args) == 0
    assert "training on" not in capsys.readouterr().err
    assert (clean / "m2" / "manifest.json").is_file()


@pytest.mark.slow  # a real process or a retrain: `make test` only
def test_the_first_start_of_serve_trains_with_a_progress_bar(
    tmp_path: Path, served_data_dir: Path, demo_rows: list[dict]
) -> None:
    import shutil

    data_dir = tmp_path / "data"
    shutil.copytree(served_data_dir / "index", data_dir / "index")  # an index, but no models yet
    env = {"TRIAGE_TRAINING_DATA": str(small_tickets(demo_rows, tmp_path / "t.jsonl")), "TRIAGE_TRAIN_FOLDS": "2"}
    first = ServerProcess(data_dir, tmp_path / "first.log", env=env).start(timeout=120)
    try:
        output = first.output()
        assert "first start: training the triage models" in output and "training on 150 tickets" in output
        assert ESTIMATE.search(output)
        (secret,) = first.printed_keys()
        assert httpx.get(f"{first.url}/v1/tickets", headers={"X-API-Key": secret}).status_code == 200
    finally:
        first.stop()
    from agents.models.versions import current_model_dir  # the model folder a start loads (models/versions/...)

    assert (current_model_dir(data_dir / "models") / "manifest.json").is_file()
    second = ServerProcess(data_dir, tmp_path / "second.log", env=env).start(timeout=60)
    try:
        assert "training on" not in second.output() and second.printed_keys() == []  # loads what the first saved
    finally:
        second.stop()
