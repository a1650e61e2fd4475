"""A worker's thread pools are sized from the cores it may use and the processes that share them: checked in fresh
worker processes (the limits are per process), pinned with `taskset` as an operator would pin them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agents.workers.threads import thread_budget, usable_cores

REPO = Path(__file__).resolve().parent.parent
# what a worker process builds before its first task, and the limits it ends up with
PROBE = """
import json, sys
import faiss
from threadpoolctl import threadpool_info
from agents.settings import Settings
from agents.workers.runtime import WorkerRuntime

runtime = WorkerRuntime(Settings(data_dir=sys.argv[1], embedder="minilm-int8"), processes=int(sys.argv[2]))
embedder = runtime.embedder()
blas = sorted({pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"})
print(json.dumps({"budget": runtime.budget.model_dump(), "onnx": embedder.threads, "faiss": faiss.omp_get_max_threads(),
                  "blas": blas}))
"""


def probe(tmp_path: Path, processes: int, pin: list[int] | None = None) -> dict:
    cmd = [sys.executable, "-c", PROBE, str(tmp_path), str(processes)]
    if pin is not None:
        cmd = ["taskset", "-c", ",".join(map(str, pin)), *cmd]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_usable_cores_are_shared_equally_and_never_below_one_thread() -> None:
    assert thread_budget(1, cores=2).threads == 2
    assert thread_budget(2, cores=2).threads == 1
    assert thread_budget(3, cores=2).threads == 1  # more processes than cores: one each, not zero
    assert thread_budget(2, cores=8).threads == 4
    assert thread_budget(0, cores=4).processes == 1
    assert thread_budget(1).cores == usable_cores() == len(os.sched_getaffinity(0))


def test_a_worker_sized_for_two_processes_runs_half_the_threads_on_every_library(tmp_path: Path) -> None:
    cores = usable_cores()
    found = probe(tmp_path, processes=2)
    share = max(1, cores // 2)
    assert found["budget"] == {"cores": cores, "processes": 2, "threads": share}
    assert found["onnx"] == 1  # the int8 model embeds one text at a time: onnxruntime's pool is one thread
    assert found["faiss"] == 1  # one vector per search
    assert found["blas"] and set(found["blas"]) == {share}


def test_a_worker_alone_on_its_cores_keeps_one_thread_for_the_per_ticket_pools(tmp_path: Path) -> None:
    cores = usable_cores()
    found = probe(tmp_path, processes=1)
    assert found["budget"]["threads"] == cores
    assert found["blas"] and max(found["blas"]) <= cores
    assert found["onnx"] == 1 and found["faiss"] == 1


@pytest.mark.skipif(shutil.which("taskset") is None, reason="no taskset on this machine (util-linux)")
def test_a_worker_pinned_to_one_core_runs_one_thread(tmp_path: Path) -> None:
    first = sorted(os.sched_getaffinity(0))[0]
    found = probe(tmp_path, processes=1, pin=[first])
    assert found["budget"] == {"cores": 1, "processes": 1, "threads": 1}
    assert found["onnx"] == 1
    assert set(found["blas"]) == {1}
