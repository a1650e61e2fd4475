"""Intake fields as tokens (spec feature_columns) and the title block (svmt): real models trained on a few rows."""

from __future__ import annotations

import csv
import pickle
import random
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agents.classical.field_tokens import field_token, found_tokens, one_hot, with_field_tokens
from agents.classical.members import LogRegMember, SvmMember, Views, parse_members, title_of
from agents.classical.text_models import tfidf_features, transform
from agents.errors import DataError
from agents.settings import Settings
from evals.registry import make_backend
from evals.runner import EvalRunner
from evals.specs import load_spec, load_split
from retrieval.embedders import HashingEmbedder

ROOMS = ["printer jam floor", "vpn drops home", "mailbox full again", "badge door stuck", "laptop fan noise"]


def _rows(n: int, seed: int = 3) -> list[dict[str, str]]:
    """The service is decided by the ticket type alone: the words are drawn from the same pool for both."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        kind = str(i % 2)
        out.append(
            {
                "title": rng.choice(ROOMS),
                "body": " ".join(rng.sample(" ".join(ROOMS).split(), 5)),
                "ticket_type": kind,
                "service": "access" if kind == "0" else "hardware",
                "category": f"c{i % 3}",
            }
        )
    return out


def _spec(tmp_path: Path, rows: list[dict[str, str]], extra: str = "feature_columns: [ticket_type]\n") -> Path:
    data = tmp_path / "t.csv"
    with open(data, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    path = tmp_path / "tickets.v1.yaml"
    path.write_text(
        f"name: tickets\nversion: 1\npath: {data}\ntext_columns: [title, body]\n{extra}"
        "labels:\n  service: service\nsplit:\n  test_size: 0.25\n  seed: 42\nfolds: 3\n"
        "licence: MIT\nsource: generated in the test\n",
        encoding="utf-8",
    )
    return path


def test_field_tokens_are_one_word_appended_to_the_last_line() -> None:
    assert field_token("ticket_type", "1") == "field_ticket_type_1"
    assert field_token("Form Kind", "Service request") == "field_form_kind_service_request"
    text = with_field_tokens("vpn down\nsince monday", {"ticket_type": "0", "empty": ""}, ["ticket_type", "empty"])
    assert text == "vpn down\nsince monday field_ticket_type_0"
    assert title_of(text) == "vpn down" and title_of("one line only field_ticket_type_0") == ""
    vocab = found_tokens([text, "x field_ticket_type_1", "plain ticket"])
    assert vocab == ["field_ticket_type_0", "field_ticket_type_1"]
    assert one_hot(["a field_ticket_type_1", "b field_other_9", "c"], vocab).tolist() == [[0, 1], [0, 0], [0, 0]]


def test_the_spec_adds_the_tokens_and_refuses_a_label_as_a_feature(tmp_path: Path) -> None:
    rows = _rows(40)
    split = load_split(load_spec(_spec(tmp_path, rows)))
    assert all(t.endswith(("field_ticket_type_0", "field_ticket_type_1")) for t in split.train.texts)
    plain = load_split(load_spec(_spec(tmp_path, rows, extra="")))
    assert not found_tokens(plain.train.texts)  # opt-in: without feature_columns the texts are as before
    with pytest.raises(DataError, match="would leak"):
        load_spec(_spec(tmp_path, rows, extra="feature_columns: [service]\n"))
    with pytest.raises(DataError, match="no column 'channel'"):
        load_split(load_spec(_spec(tmp_path, rows, extra="feature_columns: [channel]\n")))


def test_logistic_member_learns_from_the_one_hot_when_the_vectors_say_nothing() -> None:
    rows = _rows(60)
    texts = [with_field_tokens(f"{r['title']}\n{r['body']}", r, ["ticket_type"]) for r in rows]
    labels = np.array([r["service"] for r in rows])
    noise = np.random.default_rng(0).normal(size=(len(rows), 8)).astype(np.float32)  # vectors unrelated to labels
    classes = np.unique(labels)
    member = LogRegMember().fit(Views(texts[:40], None, noise[:40]), labels[:40])
    assert member.fields_ == ["field_ticket_type_0", "field_ticket_type_1"]
    scores = member.scores(Views(texts[40:], None, noise[40:]), classes)
    assert np.mean(classes[scores.argmax(axis=1)] == labels[40:]) == 1.0
    plain = LogRegMember().fit(Views([t.rsplit(" ", 1)[0] for t in texts[:40]], None, noise[:40]), labels[:40])
    assert plain.fields_ == [] and plain._matrix(Views(texts[40:], None, noise[40:])).shape[1] == 8


def test_svmt_adds_a_title_block_that_survives_pickling() -> None:
    titles = {"hardware": "laptop broken", "access": "need permission"}
    rng = random.Random(5)
    texts, labels = [], []
    for i in range(40):  # bodies share the same words: the title decides
        label = "hardware" if i % 2 else "access"
        texts.append(f"{titles[label]}\n{' '.join(rng.sample(' '.join(ROOMS).split(), 6))}")
        labels.append(label)
    features = tfidf_features().fit(texts)
    views = Views(texts, transform(features, texts), np.zeros((len(texts), 4)))
    y = np.array(labels)
    member = SvmMember(title=True).fit(views.rows(np.arange(30)), y[:30])
    assert member.name == "svmt" and member.title_ is not None
    test = views.rows(np.arange(30, 40))
    scores = member.scores(test, np.unique(y))
    assert np.mean(np.unique(y)[scores.argmax(axis=1)] == y[30:]) == 1.0
    assert np.allclose(pickle.loads(pickle.dumps(member)).scores(test, np.unique(y)), scores)
    one_line = Views(["no title here"] * 4, transform(features, ["no title here"] * 4), np.zeros((4, 4)))
    assert SvmMember(title=True).fit(one_line, np.array(["a", "b", "a", "b"])).title_ is None
    assert [m.name for m in parse_members("svmt,svm,lr")] == ["svmt", "svm", "lr"]
    with pytest.raises(DataError, match="no number"):
        parse_members("svmt2")


def test_eval_run_uses_the_spec_feature_and_the_members(tmp_path: Path) -> None:
    spec = load_spec(_spec(tmp_path, _rows(80)))
    options: dict[str, Any] = {"_env_file": None}  # no .env from the developer's tree
    settings = Settings(data_dir=tmp_path / "state", llm_model=None, members="svmt,lr", **options)
    embedder = HashingEmbedder()
    runner = EvalRunner(embedder, partial(make_backend, settings=settings, embedder=embedder), progress=False)
    summary = runner.run([spec], ["classical"])
    result = summary["datasets"]["tickets.v1"]["results"]["service"]
    assert result["classical"]["accuracy"] == 1.0  # only the ticket type tells the services apart
