"""MiniLM run by onnxruntime: exported once from the bundled weights, fused, optionally int8, cached on disk."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.embedders import MINILM_INT8_NAME, MINILM_NAME, _normalise, minilm_path, model_fingerprint

log = logging.getLogger(__name__)
RECIPE = "minilm-onnx.v1"  # bump when the export below changes: cached files carry it in their name


def _fingerprint(model_dir: Path, quantize: bool) -> str:
    """Weights, tokenizer, recipe and onnxruntime version: a change in any of them means a new export."""
    import onnxruntime

    return model_fingerprint(model_dir, f"{RECIPE}|{onnxruntime.__version__}|int8={quantize}")


def export_minilm(model_dir: Path, out: Path, quantize: bool) -> Path:
    """Export encoder + mean pooling to ONNX, fuse attention and layer norms, and quantise weights to int8 if asked.

    The export needs torch and transformers (already installed for sentence-transformers) and the `onnx` package;
    it takes a few seconds and reads nothing but `model_dir`. The file is written elsewhere and renamed into place.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".export-", dir=out.parent))
    with warnings.catch_warnings():  # tracer and quantiser advice meant for model authors, not for our users
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            os.replace(_export_steps(model_dir, work, quantize), out)
        finally:
            logging.disable(logging.NOTSET)
            shutil.rmtree(work, ignore_errors=True)
    return out


def _export_steps(model_dir: Path, work: Path, quantize: bool) -> Path:
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers import optimizer
    from transformers import AutoModel

    # eager attention exports the matmul-softmax pattern that onnxruntime fuses into one Attention node
    encoder = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()

    class MeanPooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    # a padded pair, so the trace keeps the masking path that batches of unequal texts need
    ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]])
    axes = {0: "batch", 1: "tokens"}
    torch.onnx.export(
        MeanPooled(),
        (ids, (ids != 0).long()),
        str(work / "raw.onnx"),
        input_names=["input_ids", "attention_mask"],
        output_names=["embedding"],
        dynamic_axes={"input_ids": axes, "attention_mask": axes, "embedding": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    config = encoder.config
    fused = optimizer.optimize_model(
        str(work / "raw.onnx"), model_type="bert", num_heads=config.num_attention_heads, hidden_size=config.hidden_size
    )
    fused.save_model_to_file(str(work / "fused.onnx"))
    if not quantize:
        return work / "fused.onnx"
    quantize_dynamic(
        str(work / "fused.onnx"),
        str(work / "int8.onnx"),
        weight_type=QuantType.QInt8,
        per_channel=True,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},  # the fused ops have no inferred types
    )
    return work / "int8.onnx"


class OnnxMiniLMEmbedder:
    """all-MiniLM-L6-v2 under onnxruntime, same tokenizer, pooling and normalisation as sentence-transformers.

    Float32 gives the torch model's vectors (cosine >= 0.9999, so it shares MINILM_NAME); int8 (`quantize=True`)
    is faster and has a name of its own, so saved indexes and models built with one are never mixed with the other.
    Int8 quantises activations with one range per batch, so a text's vector would depend on the texts batched
    with it (cosine down to 0.97); it therefore runs one text at a time by default, which costs little because
    int8 gains little from batching. Measured speeds are in evals/reports/embedding_runtimes.md.
    """

    dim = 384

    def __init__(
        self,
        cache_dir: Path,
        quantize: bool = True,
        batch_size: int | None = None,
        threads: int | None = None,
        model_dir: Path | None = None,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.quantize = quantize
        self.batch_size = batch_size or (1 if quantize else 8)  # float32: 8 measured faster than 32 or 1
        self.threads = threads
        self.model_dir = model_dir or minilm_path()
        self.name = MINILM_INT8_NAME if quantize else MINILM_NAME
        self._session: Any = None
        self._tokenizer: Any = None

    @property
    def path(self) -> Path:
        variant = "int8" if self.quantize else "fp32"
        return self.cache_dir / f"minilm-{variant}-{_fingerprint(self.model_dir, self.quantize)}.onnx"

    def _open(self, path: Path) -> Any:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        if self.threads:
            options.intra_op_num_threads = self.threads
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def load(self) -> None:
        """Open the cached model, exporting it first when it is missing or unreadable."""
        from tokenizers import Tokenizer

        path = self.path
        if path.exists():
            try:
                self._session = self._open(path)
            except Exception as exc:  # a truncated or foreign file: export again rather than fail the service
                log.warning("cached ONNX model %s is unreadable (%s): exporting it again", path, exc)
                path.unlink()
        if self._session is None:
            log.info("exporting MiniLM to %s (once)", path)
            self._session = self._open(export_minilm(self.model_dir, path, self.quantize))
        config = json.loads((self.model_dir / "sentence_bert_config.json").read_text(encoding="utf-8"))
        tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        tokenizer.enable_truncation(int(config["max_seq_length"]))
        tokenizer.enable_padding(pad_id=tokenizer.token_to_id("[PAD]") or 0, pad_token="[PAD]")
        self._tokenizer = tokenizer

    def embed_ids(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Mean-pooled (not normalised) vectors for token ids already made: what the static table distils."""
        if self._session is None:
            self.load()
        return np.asarray(self._session.run(None, {"input_ids": input_ids, "attention_mask": attention_mask})[0])

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._session is None:
            self.load()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths: little padding
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            encoded = self._tokenizer.encode_batch([texts[i] for i in rows])
            out[rows] = self.embed_ids(
                np.array([e.ids for e in encoded], dtype=np.int64),
                np.array([e.attention_mask for e in encoded], dtype=np.int64),
            )
        return _normalise(out)
