"""scripts/local_llm.sh: llama.cpp gets the cores left to it, or TRIAGE_LLM_THREADS, checked before use."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "local_llm.sh"


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_LLM_")}
    clean |= {"TRIAGE_MODELS_DIR": str(tmp_path / "models"), **env}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=clean, timeout=60)


@pytest.mark.parametrize("reserved", ["0", "1", "999"])
def test_the_default_thread_count_is_the_cores_left_to_the_server(tmp_path: Path, reserved: str) -> None:
    cores = int(subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout)
    out = run(tmp_path, "help", TRIAGE_LLM_RESERVED=reserved)
    assert out.returncode == 0, out.stderr
    want = max(1, cores - int(reserved))  # 0 reserved: every core; more than there are: still one thread
    assert f"(default here: {want}, the cores left: nproc {cores} minus TRIAGE_LLM_RESERVED)" in out.stdout


@pytest.mark.parametrize("threads", ["0", "two", "-1"])
def test_a_bad_thread_count_stops_the_start_before_anything_runs(tmp_path: Path, threads: str) -> None:
    out = run(tmp_path, "start", "8799", TRIAGE_LLM_THREADS=threads)
    assert out.returncode == 1
    assert f"TRIAGE_LLM_THREADS must be a number of 1 or more, got '{threads}'" in out.stderr
    assert not (tmp_path / "models" / "llm.pid").exists()


def test_without_a_model_the_start_says_what_to_run(tmp_path: Path) -> None:
    out = run(tmp_path, "start", "8799", TRIAGE_LLM_THREADS="1")
    assert out.returncode == 1 and "run scripts/local_llm.sh install first" in out.stderr


def test_bench_needs_a_running_server(tmp_path: Path) -> None:
    out = run(tmp_path, "bench", "9")  # nothing listens on port 9
    assert out.returncode == 1 and "no server answers on 127.0.0.1:9" in out.stderr
