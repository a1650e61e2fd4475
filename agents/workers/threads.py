"""The threads a worker process's numeric libraries may use: the cores it may run on, shared by its processes."""

from __future__ import annotations

import logging
import os

from pydantic import BaseModel, ConfigDict

log = logging.getLogger(__name__)


class ThreadBudget(BaseModel):
    """What one worker process may use: `threads` for BLAS and torch, out of `cores` shared by `processes`.
    Two pools get one thread whatever the share, because they work on one ticket's data at a time, where a second
    thread costs more than it gives (evals/reports/scale.md, workers): FAISS (one vector per search; its OpenMP
    threads spin against the embedder's) and an onnxruntime MiniLM (`torch_threads`, 1 by default: agents/app.py
    server_embedder). To use more cores, run more processes (`triage worker --concurrency N`)."""

    model_config = ConfigDict(extra="forbid")

    cores: int
    processes: int
    threads: int


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity (`taskset`, a container's cpuset), else every core."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity on this platform
        return os.cpu_count() or 1


def thread_budget(processes: int, cores: int | None = None) -> ThreadBudget:
    """Each of `processes` worker processes on `cores` cores (the usable ones by default) gets an equal share,
    at least one thread: two processes on two cores run one thread each instead of four spinning on two."""
    cores = cores if cores is not None else usable_cores()
    processes = max(1, processes)
    return ThreadBudget(cores=cores, processes=processes, threads=max(1, cores // processes))


def limit_threads(budget: ThreadBudget, embedder_kind: str) -> None:
    """Cap this process's thread pools: BLAS (numpy, scikit-learn), FAISS's OpenMP, and torch's for the torch
    embedder. Call it in the process that triages (after a fork), before the first task."""
    import faiss
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=budget.threads, user_api="blas")
    faiss.omp_set_num_threads(1)
    if embedder_kind == "minilm":
        import torch

        torch.set_num_threads(budget.threads)
    log.info(
        "worker threads: %d per process for BLAS and torch (%d usable core(s), %d process(es)); FAISS 1",
        budget.threads,
        budget.cores,
        budget.processes,
    )
