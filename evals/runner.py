"""`triage eval run`: every backend on every data set and field, failures counted, Ctrl-C leaves partial results."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from tqdm import tqdm

from agents.errors import DataError, TriageError
from evals.outputs import REFERENCE, EvalBackend, RowOutput, Skipped
from evals.scoring import backend_figures, field_metrics
from evals.specs import DataAbsent, DatasetSpec, SplitData, Table, load_split, read_table
from retrieval.embedders import Embedder

BackendFactory = Callable[[str, DatasetSpec], "EvalBackend | Skipped"]


class EvalRunner:
    """Runs specs through backends. Results fill `summary` as they come, so an interruption keeps them."""

    def __init__(
        self,
        embedder: Embedder,
        make_backend: BackendFactory,
        *,
        target: float = 0.9,
        limit: int | None = None,
        latency_sample: int = 100,
        progress: bool = True,
        on_row: Callable[[int], None] | None = None,
        answers_hook: Callable[[DatasetSpec, list[dict[str, Any]]], dict[str, Any]] | None = None,
    ) -> None:
        self.embedder = embedder
        self.make_backend = make_backend
        self.target = target
        self.limit = limit
        self.latency_sample = latency_sample
        self.progress = progress
        self.on_row = on_row
        self.answers_hook = answers_hook

    def run(self, specs: list[DatasetSpec | DataError], backends: list[str]) -> dict[str, Any]:
        started = time.time()
        summary: dict[str, Any] = {
            "format": "triage-eval-summary.v1",
            "partial": False,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "embedder": self.embedder.name,
            "embed_precision": getattr(self.embedder, "precision", None),  # MiniLM runs in float32 or bfloat16
            "backends": backends,
            "reference": REFERENCE,
            "precision_target": self.target,
            "limit": self.limit,
            "datasets": {},
        }
        try:
            for spec in specs:
                if isinstance(spec, DataError):  # a spec file that did not load
                    summary["datasets"][spec.path] = {"status": "error", "reason": str(spec)}
                    continue
                record: dict[str, Any] = {"status": "running", "spec": spec.model_dump(), "results": {}}
                summary["datasets"][spec.id] = record
                try:
                    self._dataset(spec, backends, record)
                    record["status"] = "ok"
                except DataAbsent as exc:
                    record.update(status="skipped", reason=str(exc))
                except (TriageError, ValueError) as exc:
                    record.update(status="error", reason=str(exc))
                except Exception as exc:  # noqa: BLE001 - one broken data set or plug-in must not lose the others
                    record.update(status="error", reason=f"{type(exc).__name__}: {exc}")
        except KeyboardInterrupt:
            summary["partial"] = True
            for record in summary["datasets"].values():
                if record.get("status") == "running":
                    record["status"] = "partial"
        summary["seconds"] = round(time.time() - started, 1)
        return summary

    def _dataset(self, spec: DatasetSpec, backends: list[str], record: dict[str, Any]) -> None:
        if spec.kind == "retrieval":
            return self._retrieval(spec, record)
        if spec.kind == "answers":
            return self._answers(spec, record)
        data = load_split(spec, self.limit)
        record["data"] = data.info
        fields = self._usable_fields(data, record)
        if not fields:
            raise DataError(spec.path, "no label field has two classes in the training split")
        vectors = self._embed(data.train.texts, spec.id) if "classical" in backends else None
        names = list(dict.fromkeys([*backends, REFERENCE]))
        record["backends"], record["skipped_backends"] = {}, {}
        for name in names:
            backend = self.make_backend(name, spec)
            if isinstance(backend, Skipped):
                record["skipped_backends"][name] = backend.reason
                continue
            try:
                self._backend(backend, data, fields, vectors, spec, record)
            except Exception as exc:  # noqa: BLE001 - a backend that crashes is reported, the others still run
                record["backends"][name] = {"status": "error", "reason": f"{type(exc).__name__}: {exc}"}

    def _usable_fields(self, data: SplitData, record: dict[str, Any]) -> list[str]:
        """Fields with 2+ training classes; test classes never seen in training are counted, not fatal."""
        fields, record["fields"] = [], {}
        for name, train_y in data.train.labels.items():
            seen, test_y = set(train_y), data.test.labels[name]
            unseen = sorted(set(test_y) - seen)
            info: dict[str, Any] = {
                "classes_train": len(seen),
                "classes_test": len(set(test_y)),
                "test_classes_unseen_in_train": {
                    "count": len(unseen),
                    "rows": sum(y in unseen for y in test_y),
                    "labels": unseen[:20],
                },
            }
            if len(seen) < 2:
                info["error"] = f"one class only in training ({sorted(seen)}): nothing to learn, field skipped"
            else:
                fields.append(name)
            record["fields"][name] = info
        return fields

    def _embed(self, texts: list[str], desc: str, batch: int = 256) -> np.ndarray:
        parts = []
        with tqdm(total=len(texts), unit="text", desc=f"{desc} embedding", disable=not self.progress) as bar:
            for start in range(0, len(texts), batch):
                parts.append(self.embedder.embed([t or " " for t in texts[start : start + batch]]))
                bar.update(len(parts[-1]))
        return np.vstack(parts) if parts else np.zeros((0, self.embedder.dim), dtype=np.float32)

    def _backend(
        self,
        backend: EvalBackend,
        data: SplitData,
        fields: list[str],
        vectors: np.ndarray | None,
        spec: DatasetSpec,
        record: dict[str, Any],
    ) -> None:
        train = Table(data.train.rows, data.train.texts, {f: data.train.labels[f] for f in fields})
        info: dict[str, Any] = {"status": "fitting"}
        record["backends"][backend.name] = info
        t0 = time.perf_counter()
        try:
            backend.fit(train, vectors)
        except KeyboardInterrupt:
            info["status"] = "interrupted while fitting"
            raise
        info["fit_seconds"] = round(time.perf_counter() - t0, 2)
        outputs: list[RowOutput] = []
        single_ms: list[float] = []
        test = data.test
        info["status"] = "predicting"
        try:
            with tqdm(
                total=len(test), unit="ticket", desc=f"{spec.id} {backend.name}", disable=not self.progress
            ) as bar:
                busy = 0.0
                for start in range(0, len(test), backend.batch_size):
                    stop = min(start + backend.batch_size, len(test))
                    t0 = time.perf_counter()
                    outputs.extend(self._predict(backend, test.rows[start:stop], test.texts[start:stop]))
                    busy += time.perf_counter() - t0
                    if backend.batch_size == 1:
                        single_ms.append((time.perf_counter() - t0) * 1000)
                    for i in range(start, stop):
                        bar.update(1)
                        if self.on_row:
                            self.on_row(i)
            info["tickets_per_s"] = round(len(outputs) / busy, 1) if busy else None
            if backend.batch_size > 1:
                for row, text in list(zip(test.rows, test.texts, strict=True))[: self.latency_sample]:
                    t0 = time.perf_counter()
                    self._predict(backend, [row], [text])
                    single_ms.append((time.perf_counter() - t0) * 1000)
            info["status"] = "ok"
        except KeyboardInterrupt:
            info["status"] = "partial"
            raise
        finally:
            info.update(backend_figures(outputs, single_ms, len(test)))
            for name in fields:
                metrics = field_metrics(test.labels[name], outputs, name, backend.thresholds.get(name), self.target)
                record["results"].setdefault(name, {})[backend.name] = metrics

    def _predict(self, backend: EvalBackend, rows: list[dict[str, Any]], texts: list[str]) -> list[RowOutput]:
        """A batch that raises becomes failed rows (counted as wrong), never dropped ones."""
        try:
            out = backend.predict(rows, texts)
        except (TriageError, ValueError, RuntimeError, OSError) as exc:
            return [RowOutput(error=f"{type(exc).__name__}: {exc}") for _ in texts]
        if len(out) != len(texts):
            return [RowOutput(error=f"backend returned {len(out)} answers for {len(texts)} tickets") for _ in texts]
        return out

    def _retrieval(self, spec: DatasetSpec, record: dict[str, Any]) -> None:
        from evals.retrieval_eval import evaluate_retrieval
        from retrieval.corpus import load_chunks
        from retrieval.hybrid import HybridSearcher
        from retrieval.index import SopIndex

        table, _ = read_table(spec, spec.path)
        corpus = spec.resolve(spec.corpus or "")
        if not corpus.is_dir():
            raise (DataAbsent if spec.optional else DataError)(str(corpus), "corpus folder is not on this machine")
        t0 = time.perf_counter()
        index = SopIndex.build(load_chunks(corpus), self.embedder)
        record["data"] = {
            "n_pairs": len(table),
            "n_chunks": len(index),
            "index_build_s": round(time.perf_counter() - t0, 2),
        }
        (name, column), query = next(iter(spec.labels.items())), spec.text_columns[0]
        pairs = [{**r, query: text} for r, text in zip(table.rows, table.texts, strict=True)]
        # every mode, and the hybrid with each fusion (sections, whole documents), so neither regresses unseen
        record["results"][name] = evaluate_retrieval(
            HybridSearcher(index), pairs, query, column, ["lexical", "dense", "hybrid"], fusions=["chunks", "documents"]
        )

    def _answers(self, spec: DatasetSpec, record: dict[str, Any]) -> None:
        table, _ = read_table(spec, spec.path)
        if self.answers_hook is None:
            raise DataAbsent("answers", "evals/answers_eval.py is not in this tree yet: answers not scored")
        record["results"]["answers"] = {"service": self.answers_hook(spec, table.rows)}
