"""PNG plots for eval reports (matplotlib, no display): precision-coverage, reliability, confusion matrix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from agents.onboard.plots import save_figure


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def precision_coverage(by_backend: dict[str, dict[str, Any]], target: float, title: str, path: Path) -> Path:
    """One curve per backend: precision of the answers kept against the share kept, as the threshold falls."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, metrics in by_backend.items():
        curve = metrics.get("precision_coverage") or []
        if curve:
            ax.plot([p["coverage"] for p in curve], [p["precision"] for p in curve], label=name, lw=1.6)
        if "coverage_at_threshold" in metrics:
            ax.scatter([metrics["coverage_at_threshold"]], [metrics["precision_at_threshold"]], marker="o", s=28)
    ax.axhline(target, color="grey", ls="--", lw=1, label=f"target precision {target:.2f}")
    ax.set(xlabel="coverage (share answered automatically)", ylabel="precision", xlim=(0, 1.01), title=title)
    ax.set_ylim(max(0.0, min(ax.get_ylim()[0], target - 0.05)), 1.01)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    return save_figure(plt, fig, path)


def reliability(by_backend: dict[str, dict[str, Any]], title: str, path: Path) -> Path:
    """Accuracy against mean confidence per confidence bin; the diagonal is perfect calibration."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="perfect calibration")
    for name, metrics in by_backend.items():
        bins = metrics.get("reliability") or []
        if bins:
            label = f"{name} (ECE {metrics.get('ece', 0):.3f})"
            ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], marker="o", ms=3, label=label)
    ax.set(xlabel="confidence", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1.01), title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return save_figure(plt, fig, path)


def confusion(metrics: dict[str, Any], title: str, path: Path, max_ticks: int = 30) -> Path:
    """Row-normalised confusion matrix (true class per row); tick labels only when they fit."""
    plt = _pyplot()
    labels = metrics["confusion"]["labels"]
    matrix = np.asarray(metrics["confusion"]["matrix"], dtype=float)
    rows = matrix.sum(axis=1, keepdims=True)
    norm = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    size = min(11.0, 3.0 + 0.32 * len(labels))
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    image = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    if len(labels) <= max_ticks:
        ticks = range(len(labels))
        ax.set_xticks(ticks, [str(x)[:18] for x in labels], rotation=60, ha="right", fontsize=7)
        ax.set_yticks(ticks, [str(x)[:18] for x in labels], fontsize=7)
        if len(labels) <= 12:
            for i in ticks:
                for j in ticks:
                    if matrix[i, j]:
                        colour = "white" if norm[i, j] > 0.5 else "black"
                        ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=7, color=colour)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    return save_figure(plt, fig, path)
