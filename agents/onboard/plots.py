"""PNG plots of an onboarding (matplotlib, no display): the threshold sweep and the label counts of each field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agents.onboard.summary import FieldSummary

MAX_BARS = 40


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def sweep_plot(name: str, field: FieldSummary, path: Path) -> Path:
    """Stacked shares (correct, wrong, no prediction) against the threshold, with the chosen threshold marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    x = [p.threshold for p in field.sweep]
    ax.stackplot(
        x,
        [p.correct for p in field.sweep],
        [p.wrong for p in field.sweep],
        [p.no_prediction for p in field.sweep],
        labels=["correct", "wrong", "no prediction (to a human)"],
        colors=["#4c9a5b", "#c8553d", "#b8b8b8"],
        alpha=0.9,
    )
    chosen = field.threshold.value
    if chosen <= 1.0:
        ax.axvline(chosen, color="black", ls="--", lw=1, label=f"chosen {chosen:.2f}")
    ax.set(xlabel="confidence threshold", ylabel="share of held-out tickets", xlim=(x[0], x[-1]), ylim=(0, 1))
    ax.set_title(f"{name}: {field.n_test} held-out tickets, accuracy {field.accuracy:.3f}", fontsize=10)
    ax.legend(fontsize=8, loc="lower left")
    return save_figure(plt, fig, path)


def labels_plot(name: str, field: FieldSummary, min_rows: int, path: Path) -> Path:
    """Rows per label (the most frequent MAX_BARS), with the --min-label-rows line under which labels go to review."""
    plt = _pyplot()
    items = list(field.labels.items())[:MAX_BARS]
    fig, ax = plt.subplots(figsize=(max(5, 0.25 * len(items) + 2), 4))
    review = {r.id for r in field.review}
    ax.bar(
        range(len(items)),
        [n for _, n in items],
        color=["#c8553d" if i in review else "#4c72b0" for i, _ in items],
    )
    ax.axhline(min_rows, color="grey", ls="--", lw=1, label=f"--min-label-rows {min_rows}")
    ax.set_yscale("log")
    ax.set_xticks(range(len(items)), [i for i, _ in items], rotation=90, fontsize=7)
    more = f" (the {MAX_BARS} most frequent of {len(field.labels)})" if len(field.labels) > MAX_BARS else ""
    ax.set_title(f"{name}: rows per label{more}; red: for review", fontsize=10)
    ax.legend(fontsize=8)
    return save_figure(plt, fig, path)


def save_figure(plt: Any, fig: Any, path: Path) -> Path:
    """Lay out, write (folders made as needed) and close a matplotlib figure; the one way plots are saved."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
