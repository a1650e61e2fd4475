"""How suggested replies are scored on the hand-written reference set: which SOP a reply quotes, whether a quote is
cut mid-sentence, and the citation shares per threshold of the relevance rules."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from evals.facts import cited, fold

# the reference set is the first 6 tickets of each category (tune: the first 3, test: the next 3); the holdout, the
# 7th and 8th, was written after the summariser and the threshold were settled and is reported apart
GROUPS = {"reference": ("tune", "test"), "tune": ("tune",), "test": ("test",), "holdout": ("holdout",)}
MIN_QUOTE_WORDS = 6  # a reply line whose last 6+ words run as in an SOP quotes it
SWEEP = (0.40, 0.45, 0.50, 0.55, 0.60, 0.65)
ALIGNED_SWEEP = (0.52, 0.54, 0.56, 0.58, 0.60, 0.62)
ALIGNED_CANDIDATES = (1, 3)
STEP_END = re.compile(r"[.!?:;]['\")\]*`]*$")


class SopQuotes:
    """The SOP texts as one word stream, to find what a reply line quotes and whether the quote stops mid-sentence."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.words: list[str] = []
        self.ends: list[bool] = []  # the word ends a sentence, a step or a line of the SOP
        for text in texts:
            for line in text.splitlines():
                raw = [w for w in line.split() if self.norm(w)]
                for j, word in enumerate(raw):
                    self.words.append(self.norm(word))
                    self.ends.append(j == len(raw) - 1 or bool(STEP_END.search(word)))
            self.words.append("\0")  # quotes never run from one section into the next
            self.ends.append(True)
        self.at: dict[str, list[int]] = {}
        for i, word in enumerate(self.words):
            self.at.setdefault(word, []).append(i)

    @staticmethod
    def norm(word: str) -> str:
        return re.sub(r"[^a-z0-9]", "", fold(word))

    def quote_end(self, line: str) -> bool | None:
        """None when the line quotes no SOP; else whether its quote ends where a sentence or step of the SOP ends."""
        words = [w for w in (self.norm(w) for w in line.split()) if w]
        if len(words) < MIN_QUOTE_WORDS:
            return None
        last = words[-1]
        starts = [(i, True) for i in self.at.get(last, [])]
        starts += [(i, False) for w, pos in self.at.items() if w != last and w.startswith(last) for i in pos]
        best: tuple[int, bool] = (0, False)
        for i, exact in starts:
            n = 1
            while n < len(words) and i - n >= 0 and self.words[i - n] == words[-1 - n]:
                n += 1
            ended = exact and self.ends[i]
            if n > best[0] or (n == best[0] and ended):
                best = (n, ended)
        return best[1] if best[0] >= MIN_QUOTE_WORDS else None


def score_replies(rows: Sequence[dict[str, Any]], texts: Sequence[str], sops: SopQuotes, sop_ids: set[str]) -> dict:
    """Per group of rows: citing when no SOP fits (should be 0) and when one does, citing a right one, and the share of
    replies with a quote cut mid-sentence."""
    out: dict[str, Any] = {}
    share = lambda xs: round(sum(xs) / len(xs), 3) if xs else None  # noqa: E731
    for group, splits in GROUPS.items():
        pairs = [(r, t) for r, t in zip(rows, texts, strict=True) if r.get("split") in splits]
        if not pairs:
            continue
        relevant = [(r, t) for r, t in pairs if r["sop_relevant"]]
        irrelevant = [t for r, t in pairs if not r["sop_relevant"]]
        ends = [[e for e in (sops.quote_end(line) for line in t.splitlines()) if e is not None] for _, t in pairs]
        out[group] = {
            "cites_when_irrelevant": share([bool(cited(t, sop_ids)) for t in irrelevant]),
            "cites_when_relevant": share([bool(cited(t, sop_ids)) for _, t in relevant]),
            "right_sop_when_relevant": share([bool(set(cited(t, sop_ids)) & set(r["sops"])) for r, t in relevant]),
            "quoting": sum(bool(e) for e in ends),
            "cut_quote_share": share([not all(e) for e in ends]),
            "n_relevant": len(relevant),
            "n_irrelevant": len(irrelevant),
        }
    return out


def _marks(chosen: Sequence[Any]) -> list[str]:
    return [f"[{hit.doc_id}]" if hit is not None else "" for hit in chosen]


def _halves(scored: dict[str, Any]) -> dict[str, Any]:
    kept = ("cites_when_irrelevant", "cites_when_relevant", "right_sop_when_relevant")
    return {g: {k: scored[g][k] for k in kept} for g in scored if g != "reference"}


def sweep(rows: Sequence[dict[str, Any]], sops: SopQuotes, sop_ids: set[str]) -> dict[str, Any]:
    """The template's citation shares per threshold of the top hit's dense similarity, on the tune and the test half."""
    from agents.answers.relevance import DenseRelevance

    out = {}
    for threshold in SWEEP:
        rule = DenseRelevance(threshold)
        chosen = [rule.choose(r["text"], r["hits"]) for r in rows]
        out[f"{threshold:.2f}"] = _halves(score_replies(rows, _marks(chosen), sops, sop_ids))
    return out


def aligned_sweep(rows: Sequence[dict[str, Any]], sops: SopQuotes, sop_ids: set[str]) -> dict[str, Any]:
    """The same per threshold of the aligned score (row["aligned"], one per top-3 hit), quoting the top hit or the
    best of the top 3."""
    from agents.answers.relevance import best_above

    out: dict[str, Any] = {}
    for candidates in ALIGNED_CANDIDATES:
        for threshold in ALIGNED_SWEEP:
            chosen = [best_above(r["hits"], r["aligned"][:candidates], threshold) for r in rows]
            out[f"{threshold:.2f}, top {candidates}"] = _halves(score_replies(rows, _marks(chosen), sops, sop_ids))
    return out


def separation(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """On the tune half: the AUC of the top hit's dense similarity and of its aligned score for "an SOP fits" and for
    "the top hit is a right SOP"; and the weights of a logistic regression over (dense, alignment) of each top-3 hit
    for "a right SOP", fitted there (normalised to sum 1), the check on the aligned score's plain mean."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    tune = [r for r in rows if r.get("split") == "tune" and r["hits"]]
    out: dict[str, Any] = {"n": len(tune)}
    targets = {"fits": [r["sop_relevant"] for r in tune], "top_right": [r["hits"][0].doc_id in r["sops"] for r in tune]}
    for name, score in (
        ("dense", [r["hits"][0].dense_score for r in tune]),
        ("aligned", [r["aligned"][0] for r in tune]),
    ):
        for target, y in targets.items():
            out[f"{name}_{target}"] = round(float(roc_auc_score(y, score)), 3) if 0 < sum(y) < len(y) else None
    pairs = [
        (h.dense_score, 2 * a - h.dense_score, h.doc_id in r["sops"])
        for r in tune
        for h, a in zip(r["hits"], r["aligned"], strict=True)
    ]
    y = [p[2] for p in pairs]
    if 0 < sum(y) < len(y):
        model = LogisticRegression(class_weight="balanced", max_iter=1000).fit([p[:2] for p in pairs], y)
        weights = model.coef_[0] / model.coef_[0].sum()
        out["fit_weights"] = {"dense": round(float(weights[0]), 3), "alignment": round(float(weights[1]), 3)}
        out["fit_mean_at_half"] = round(float(-model.intercept_[0] / model.coef_[0].sum()), 3)
    return out
