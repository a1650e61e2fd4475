"""`triage train --label-col` and `triage predict` on any labelled file: round trip, abstention, clear errors."""

from __future__ import annotations

import csv
import json
import random
import zipfile
from pathlib import Path

import pytest

from agents.cli.main import main


def _write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["subject", "text", "queue"])
        writer.writeheader()
        for r in rows:
            writer.writerow({"subject": r["title"], "text": r["body"], "queue": r["team"]})
    return path


def _train(tmp_path: Path, data: Path, *extra: str) -> list[str]:
    out = tmp_path / "model"
    args = ["train", "--data", str(data), "--text-col", "subject", "--text-col", "text", "--label-col", "queue"]
    return [*args, "--out", str(out), "--embedder", "hashing", *extra]


def test_train_then_predict_round_trip(tmp_path, demo_rows: list[dict], capsys) -> None:
    rows = random.Random(0).sample(demo_rows, len(demo_rows))  # the file is grouped by batch and team
    data = _write_csv(tmp_path / "tickets.csv", rows[:300])
    assert main(_train(tmp_path, data, "--members", "svm,lr,knn10")) == 0
    trained = capsys.readouterr().out
    assert "members svm, lr, knn10" in trained and "threshold" in trained
    manifest = json.loads((tmp_path / "model" / "manifest.json").read_text())
    assert manifest["format"] == "label-model.v1" and manifest["info"]["n_train"] == 300
    held_out = rows[300:360]
    texts = [f"{r['title']}\n{r['body']}".replace("\n", " ") for r in held_out]
    assert main(["predict", "--model", str(tmp_path / "model"), "--embedder", "hashing", "--json", *texts]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == len(texts)
    assert set(lines[0]) == {"text", "label", "confidence", "needs_human", "alternatives"}
    right = sum(line["label"] == r["team"] for line, r in zip(lines, held_out, strict=True))
    assert right / len(held_out) > 0.6  # rows the model never saw; 10 teams
    assert all(line["needs_human"] == (line["confidence"] < manifest["threshold"]["threshold"]) for line in lines)


def test_a_zip_holding_one_file_trains_too(tmp_path, demo_rows: list[dict]) -> None:
    data = _write_csv(tmp_path / "tickets.csv", demo_rows[:120])
    with zipfile.ZipFile(tmp_path / "tickets.zip", "w") as zf:
        zf.write(data, "tickets.csv")
    assert main(_train(tmp_path, tmp_path / "tickets.zip")) == 0
    assert (tmp_path / "model" / "model.joblib").is_file()


@pytest.mark.parametrize(
    ("rows", "extra", "message"),
    [
        ("missing-column", [], "no column 'queue'"),
        ("one-class", [], "at least 2 classes"),
        ("ok", ["--members", "svm,bert"], "unknown member 'bert'"),
    ],
)
def test_bad_training_input_is_a_clear_error_and_writes_nothing(
    tmp_path, demo_rows: list[dict], capsys, rows: str, extra: list[str], message: str
) -> None:
    data = tmp_path / "tickets.csv"
    if rows == "missing-column":
        data.write_text("subject,text\nvpn,down\n", encoding="utf-8")
    else:
        chosen = [dict(r, team="network") for r in demo_rows[:30]] if rows == "one-class" else demo_rows[:60]
        _write_csv(data, chosen)
    assert main(_train(tmp_path, data, *extra)) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "model").exists()


def test_predict_refuses_a_missing_model_or_another_embedder(tmp_path, demo_rows: list[dict], capsys) -> None:
    assert main(["predict", "--model", str(tmp_path / "nothing"), "--embedder", "hashing", "vpn down"]) == 2
    assert "no trained model" in capsys.readouterr().err
    data = _write_csv(tmp_path / "tickets.csv", demo_rows[:80])
    assert main(_train(tmp_path, data)) == 0
    (tmp_path / "model" / "manifest.json").write_text(
        (tmp_path / "model" / "manifest.json").read_text().replace("hashing-512-3", "another-embedder")
    )
    capsys.readouterr()
    assert main(["predict", "--model", str(tmp_path / "model"), "--embedder", "hashing", "vpn down"]) == 2
    assert "trained with embedder 'another-embedder'" in capsys.readouterr().err
