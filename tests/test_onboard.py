"""`triage onboard`: a small export written here becomes a helpdesk the service, the API and `triage ticket` run on;
bad input (missing columns, empty or rare or dominant labels, mixed encodings, repeated ids, empty files, zips of
two) is a one-line error or a counted warning, never a traceback or a silently dropped row."""

from __future__ import annotations

import csv
import io
import json
import random
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from agents.classical.constant import ConstantClassifier
from agents.classical.training import load_models, save_models, train_models
from agents.cli.main import main
from agents.errors import DataError
from agents.onboard.derive import derive
from agents.onboard.export import OnboardSpec, parse_fields, read_export
from agents.onboard.run import onboard
from agents.onboard.sops import HtmlToMarkdown
from agents.onboard.summary import OnboardSummary
from agents.onboard.tables import read_table
from agents.settings import Settings
from kb.loader import load_kb
from retrieval.embedders import HashingEmbedder

REPO = Path(__file__).resolve().parent.parent
COLUMNS = ["Ticket ID", "Subject", "Description", "Category", "Assignment group", "Priority"]
KINDS = {  # category -> (things, problems, team)
    "Network": (
        ["VPN", "office wifi", "router", "network cable", "internet"],
        ["drops", "is slow", "disconnects"],
        "Net Ops",
    ),
    "Hardware": (
        ["laptop", "screen", "keyboard", "docking station", "mouse"],
        ["is broken", "is cracked", "is dead"],
        "Desk Support",
    ),
    "Access": (
        ["password", "account", "MFA code", "login", "share permission"],
        ["is locked", "expired", "was denied"],
        "Identity",
    ),
}
PRIORITIES = ["High", "Medium", "Low"]


def ticket_rows(per_kind: int = 30, seed: int = 0) -> list[dict[str, str]]:
    """Tickets whose words say their category; the team follows the category but for a few; priority at random."""
    rng = random.Random(seed)
    rows = []
    for kind, (things, problems, team) in KINDS.items():
        for _ in range(per_kind):
            thing, problem = rng.choice(things), rng.choice(problems)
            other = rng.random() < 0.1
            rows.append(
                {
                    "Subject": f"{thing} {problem}",
                    "Description": f"Since this morning my {thing} {problem}; please help, the {thing} matters to me.",
                    "Category": kind,
                    "Assignment group": rng.choice([t for *_, t in KINDS.values()]) if other else team,
                    "Priority": rng.choice(PRIORITIES),
                }
            )
    rng.shuffle(rows)
    for n, row in enumerate(rows, start=1):
        row["Ticket ID"] = f"T-{n:04d}"
    return rows


def csv_line(row: dict[str, str]) -> str:
    buffer = io.StringIO()
    csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n").writerow(row)
    return buffer.getvalue()


def write_messy_csv(path: Path) -> dict[str, int]:
    """The tickets plus what real exports hold: repeated ids, empty and rare categories, a row without text and two
    lines in cp1252 among UTF-8 ones. Returns what was planted."""
    rows = ticket_rows()
    planted = {"duplicates": 3, "empty_category": 2, "rare": 3, "no_text": 1, "cp1252": 2}
    extra = [dict(rows[i], Subject="a later copy", Description="repeats an id") for i in range(3)]
    extra += [dict(rows[0], **{"Ticket ID": f"E-{i}", "Category": ""}) for i in range(2)]
    extra += [
        dict(rows[1], **{"Ticket ID": f"R-{i}", "Category": "Printing", "Subject": "printer jam"}) for i in range(3)
    ]
    extra += [dict(rows[2], **{"Ticket ID": "N-1", "Subject": "", "Description": ""})]
    encoded = [("\ufeff" + ",".join(COLUMNS) + "\n").encode("utf-8")]
    encoded += [csv_line(r).encode("utf-8") for r in rows + extra]
    for i, text in enumerate(["Café wifi drops at the naïve router", "Café VPN drops, señor"]):
        row = {"Ticket ID": f"W-{i}", "Subject": text, "Description": f"{text}: the network is down"}
        row.update({"Category": "Network", "Assignment group": "Net Ops", "Priority": "High"})
        encoded.append(csv_line(row).encode("cp1252"))
    path.write_bytes(b"".join(encoded))
    return planted


def write_sops(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "vpn-reset.md").write_text("# Reset the VPN client\n\n## Steps\n1. Quit the VPN.\n2. Start it again.\n")
    (folder / "Laptop Screen.html").write_text(
        "<html><head><title>Laptop screen problems</title><style>p {color: red}</style></head><body>"
        "<h1>Laptop screen</h1><p>When the   screen is dark:</p>"
        "<ol><li>Plug in the charger.</li><li>Press F7.</li></ol>"
        "<script>alert('x')</script></body></html>"
    )
    (folder / "notes.txt").write_text("not an SOP")
    return folder


def spec(data: Path, **kwargs: object) -> OnboardSpec:
    base: dict[str, object] = {
        "data": data,
        "text_cols": ["Subject", "Description"],
        "fields": {"category": "Category", "team": "Assignment group", "priority": "Priority"},
        "id_col": "Ticket ID",
        "priority_order": PRIORITIES,
    }
    return OnboardSpec.model_validate({**base, **kwargs})


@pytest.fixture(scope="module")
def onboarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, OnboardSummary, dict[str, int]]]:
    """The messy CSV onboarded once (hashing embedder, 3 folds), with two SOPs to import."""
    root = tmp_path_factory.mktemp("onboard")
    planted = write_messy_csv(root / "export.csv")
    sops = write_sops(root / "sops")
    out = root / "helpdesk"
    summary = onboard(spec(root / "export.csv", sops=sops), out, HashingEmbedder(), folds=3, commands={"onboard": "x"})
    yield out, summary, planted


def test_the_helpdesk_folder_holds_a_kb_the_loader_accepts(onboarded) -> None:
    out, summary, _ = onboarded
    kb = load_kb(out / "kb")
    assert set(kb.taxonomy.category_ids) == {"network", "hardware", "access", "printing"}
    assert kb.services == {}  # an empty catalogue
    assert set(kb.teams) == {"net-ops", "desk-support", "identity"}
    for team in kb.teams.values():
        assert [(m.handle, m.role) for m in team.members] == [(f"{team.id}-queue", "queue")]
    assert kb.taxonomy.category("network").default_team == "net-ops"
    assert [(p.id, p.name) for p in kb.taxonomy.priorities[:3]] == [("P1", "High"), ("P2", "Medium"), ("P3", "Low")]
    assert "edit `kb/teams.yaml` to add people" in (out / "report.md").read_text()


def test_sops_are_imported_from_markdown_and_html_and_the_rest_is_listed(onboarded) -> None:
    out, summary, _ = onboarded
    kb = load_kb(out / "kb")
    assert {s.title for s in kb.sops.values()} == {"Reset the VPN client", "Laptop screen problems"}
    assert {s.service for s in kb.sops.values()} == {"general"}
    assert summary.sops is not None and summary.sops.skipped == {"notes.txt": "not Markdown or HTML"}
    html = (out / "kb" / "sops" / "sop-laptop-screen.md").read_text()
    assert "1. Plug in the charger." in html and "alert" not in html and "color: red" not in html


def test_labels_json_maps_every_export_label_to_its_id(onboarded) -> None:
    out, _, _ = onboarded
    labels = json.loads((out / "labels.json").read_text())["fields"]
    assert labels["category"]["ids"] == {
        "Network": "network",
        "Hardware": "hardware",
        "Access": "access",
        "Printing": "printing",
    }
    assert labels["category"]["not_learnt"] == ["Printing"]
    assert labels["priority"]["ids"] == {"High": "P1", "Medium": "P2", "Low": "P3"}
    assert set(labels["team"]["ids"].values()) == {"net-ops", "desk-support", "identity"}


def test_summary_is_typed_and_each_sweep_point_sums_to_one(onboarded) -> None:
    out, summary, _ = onboarded
    loaded = OnboardSummary.model_validate_json((out / "summary.json").read_text())
    assert loaded == summary
    for name, field in loaded.fields.items():
        assert [p.threshold for p in field.sweep] == [round(0.05 * i, 2) for i in range(1, 20)]
        for point in field.sweep:
            assert point.correct + point.wrong + point.no_prediction == pytest.approx(1.0), (name, point)
        assert field.n_test > 0 and 0.0 <= field.accuracy <= 1.0
        assert field.reference.name == "tfidf+logreg" and field.reference.accuracy is not None
        assert field.per_value and all(v.support >= 0 for v in field.per_value.values())
    category = loaded.fields["category"]
    assert category.accuracy > 0.8  # the words say the category: a model that learnt nothing would be near 1/3
    assert set(category.per_value) <= {"network", "hardware", "access"}
    assert category.review[0].model_dump() == {"label": "Printing", "id": "printing", "rows": 3}


def test_report_plots_and_helpdesk_file_are_written(onboarded) -> None:
    out, summary, _ = onboarded
    report = (out / "report.md").read_text()
    for part in ("## Commands", "## Threshold sweep", "| 0.50 |", "printing", "TF-IDF + LR", "## For review"):
        assert part in report
    for plot in ("plots/sweep-category.png", "plots/sweep-team.png", "plots/labels-category.png"):
        assert (out / plot).read_bytes()[:4] == b"\x89PNG"
    helpdesk = json.loads((out / "helpdesk.json").read_text())
    settings = {"kb_dir": "kb", "training_data": "tickets.jsonl", "data_dir": "data", "intake_fields": []}
    assert helpdesk["settings"] == settings


def test_every_row_is_counted_once(onboarded) -> None:
    out, summary, planted = onboarded
    rows = summary.rows
    assert rows.read == 90 + sum(planted.values())
    assert rows.read == rows.duplicates + rows.no_text + rows.tickets + rows.kept_out
    assert (rows.duplicates, rows.no_text) == (planted["duplicates"], planted["no_text"])
    assert rows.kept_out_reasons == {"category: empty": 2, "category: rare label": 3}
    tickets = [json.loads(line) for line in (out / "tickets.jsonl").read_text().splitlines()]
    assert len(tickets) == rows.tickets and len({t["id"] for t in tickets}) == len(tickets)


def test_a_repeated_id_keeps_its_first_row(onboarded) -> None:
    out, summary, _ = onboarded
    tickets = {t["id"]: t for t in map(json.loads, (out / "tickets.jsonl").read_text().splitlines())}
    assert tickets["T-0001"]["title"] != "a later copy"
    assert summary.rows.duplicate_examples == ["T-0001", "T-0002", "T-0003"]


def test_lines_in_cp1252_among_utf8_are_read_and_reported(onboarded) -> None:
    out, summary, planted = onboarded
    assert summary.source.encoding == f"utf-8 with {planted['cp1252']} lines read as cp1252"
    tickets = {t["id"]: t for t in map(json.loads, (out / "tickets.jsonl").read_text().splitlines())}
    assert tickets["W-0"]["title"] == "Café wifi drops at the naïve router"
    assert tickets["T-0001"]["id"] == "T-0001"  # the BOM did not stick to the first column's name


def test_a_missing_column_is_one_line_naming_the_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_messy_csv(tmp_path / "export.csv")
    code = main(
        [
            "onboard",
            "--data",
            str(tmp_path / "export.csv"),
            "--text-col",
            "Subject",
            "--field",
            "category=category",
            "--out",
            str(tmp_path / "hd"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "has no column 'category' (--field category=category; did you mean 'Category'?)" in err
    assert "its columns are: Ticket ID, Subject, Description, Category, Assignment group, Priority" in err
    assert not (tmp_path / "hd" / "kb").exists()


def test_one_label_on_95_percent_of_rows_is_a_warning(tmp_path: Path) -> None:
    rows = ticket_rows(per_kind=40)
    for i, row in enumerate(rows):
        row["Category"] = "Network" if i >= 6 else "Hardware"
    write_csv(tmp_path / "x.csv", rows)
    s = spec(tmp_path / "x.csv", min_label_rows=5)
    derived = derive(read_export(read_table(s.data), s), s)
    assert any("'Network', is on 95.0% of the labelled rows" in w for w in derived.warnings)


def test_one_row_per_label_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = ticket_rows(per_kind=4)
    for i, row in enumerate(rows):
        row["Category"] = f"kind {i}"
    write_csv(tmp_path / "x.csv", rows)
    code = main(
        [
            "onboard",
            "--data",
            str(tmp_path / "x.csv"),
            "--text-col",
            "Subject",
            "--field",
            "category=Category",
            "--out",
            str(tmp_path / "hd"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "0 label(s) have at least 20 rows (--min-label-rows), 2 needed to learn category; 12 labels" in err


def test_more_than_four_priorities_is_an_error_naming_them(tmp_path: Path) -> None:
    rows = ticket_rows()
    for i, row in enumerate(rows):
        row["Priority"] = f"U{i % 5}"
    write_csv(tmp_path / "x.csv", rows)
    s = spec(tmp_path / "x.csv", priority_order=None)
    with pytest.raises(DataError, match="5 priority labels, at most 4 map onto P1..P4: U0, U1, U2, U3, U4"):
        derive(read_export(read_table(s.data), s), s)


def test_a_label_column_empty_in_every_row_is_an_error_naming_it(tmp_path: Path) -> None:
    write_csv(tmp_path / "x.csv", [dict(r, Priority="") for r in ticket_rows()])
    s = spec(tmp_path / "x.csv")
    with pytest.raises(DataError, match=r"^--field priority=Priority: the column is empty in every row \(90 rows"):
        derive(read_export(read_table(s.data), s), s)


def test_without_an_order_priorities_sort_naturally_with_a_warning(tmp_path: Path) -> None:
    rows = ticket_rows()
    for i, row in enumerate(rows):
        row["Priority"] = ["10 - low", "2 - high", "9 - mid"][i % 3]
    write_csv(tmp_path / "x.csv", rows)
    s = spec(tmp_path / "x.csv", priority_order=None)
    derived = derive(read_export(read_table(s.data), s), s)
    assert derived.labels["priority"].ids == {"10 - low": "P3", "2 - high": "P1", "9 - mid": "P2"}
    assert any(w.startswith("priority order guessed by natural sort (2 - high -> P1") for w in derived.warnings)


def test_an_empty_file_and_a_header_only_file_are_one_line_errors(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "header.csv").write_text(",".join(COLUMNS) + "\n")
    with pytest.raises(DataError, match="has no rows$"):
        read_table(tmp_path / "empty.csv")
    code = main(
        [
            "onboard",
            "--data",
            str(tmp_path / "header.csv"),
            "--text-col",
            "Subject",
            "--field",
            "category=Category",
            "--out",
            str(tmp_path / "hd"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "has no rows (only the header: Ticket ID, Subject" in err and len(err.splitlines()) == 1


def test_a_zip_must_hold_exactly_one_data_file(tmp_path: Path) -> None:
    write_csv(tmp_path / "a.csv", ticket_rows(per_kind=2))
    with zipfile.ZipFile(tmp_path / "one.zip", "w") as zf:
        zf.write(tmp_path / "a.csv", "export/a.csv")
    assert read_table(tmp_path / "one.zip").rows == read_table(tmp_path / "a.csv").rows
    with zipfile.ZipFile(tmp_path / "two.zip", "w") as zf:
        zf.write(tmp_path / "a.csv", "a.csv")
        zf.write(tmp_path / "a.csv", "b.jsonl")
    with pytest.raises(DataError, match=r"the zip must hold exactly one data file, found \['a.csv', 'b.jsonl'\]"):
        read_table(tmp_path / "two.zip")


def test_bad_field_options_are_one_line_errors() -> None:
    with pytest.raises(DataError, match="category is required"):
        parse_fields(["team=Group"])
    with pytest.raises(DataError, match="'owner' is not a field: use category, team, priority"):
        parse_fields(["category=C", "owner=O"])
    with pytest.raises(DataError, match="is not NAME=COLUMN"):
        parse_fields(["category"])


def test_a_folder_not_written_by_onboard_is_refused(tmp_path: Path) -> None:
    write_csv(tmp_path / "a.csv", ticket_rows())
    (tmp_path / "hd").mkdir()
    (tmp_path / "hd" / "precious.txt").write_text("mine")
    with pytest.raises(DataError, match="was not written by `triage onboard`"):
        onboard(spec(tmp_path / "a.csv"), tmp_path / "hd", HashingEmbedder())
    assert (tmp_path / "hd" / "precious.txt").read_text() == "mine"


def test_html_becomes_markdown_with_the_standard_library() -> None:
    parser = HtmlToMarkdown()
    parser.feed(
        "<title> T </title><h2>Steps</h2><ul><li>one</li><li>two</li></ul><pre>  keep\n  this</pre><p>a &amp; b</p>"
    )
    assert parser.title.strip() == "T"
    assert parser.markdown() == "## Steps\n\n- one\n- two\n\n```\n  keep\n  this\n```\n\na & b"


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_train_models_gives_a_field_with_one_label_a_constant_model(demo_rows, kb_dir: Path, tmp_path: Path) -> None:
    rows = [dict(r, priority="P3") for r in demo_rows[:80]]
    embedder = HashingEmbedder()
    models = train_models(rows, embedder, load_kb(kb_dir), folds=3)
    assert isinstance(models.fields["priority"], ConstantClassifier)
    assert models.info["single_label"] == {"priority": "P3"}
    choice = models.thresholds["priority"]
    assert (choice.threshold, choice.precision, choice.coverage, choice.support) == (1.0, 1.0, 1.0, 80)
    save_models(models, tmp_path / "models")
    loaded = load_models(tmp_path / "models", embedder)
    proba = loaded.fields["priority"].predict_proba(["anything at all"], embedder.embed(["anything at all"]))
    assert proba.tolist() == [[1.0]] and list(loaded.fields["priority"].classes_) == ["P3"]
    assert not isinstance(loaded.fields["category"], ConstantClassifier)


def test_config_dir_sets_the_paths_it_implies_unless_set(onboarded, tmp_path: Path) -> None:
    out, _, _ = onboarded
    s = Settings(config_dir=out)
    assert (s.kb_dir, s.training_data, s.data_dir) == (out / "kb", out / "tickets.jsonl", out / "data")
    assert Settings(config_dir=out, data_dir=tmp_path).data_dir == tmp_path
    with pytest.raises(ValueError, match="written by `triage onboard"):
        Settings(config_dir=tmp_path)


def test_evals_tables_still_reads_through_the_moved_code(tmp_path: Path) -> None:
    from evals.tables import read_rows, texts_and_labels

    write_csv(tmp_path / "a.csv", ticket_rows(per_kind=2))
    texts, labels = texts_and_labels(read_rows(tmp_path / "a.csv"), ["Subject"], "Category")
    assert len(texts) == 6 and set(labels) == set(KINDS)


@pytest.mark.slow
def test_the_service_built_from_the_folder_triages_with_onboarded_labels(onboarded) -> None:
    from agents.app import build_service
    from agents.types import Ticket

    out, _, _ = onboarded
    settings = Settings(config_dir=out, embedder="hashing", policy="classical_only", train_folds=3)
    service = build_service(settings)
    result = service.triage(Ticket(title="VPN drops", body="Since this morning my VPN drops; the router is slow."))
    assert (result.category, result.team) == ("network", "net-ops")
    assert result.priority in {"P1", "P2", "P3"}
    assert result.owner.people == ["net-ops-queue"]
    assert [r.doc_id for r in result.kb_refs][:1] == ["sop-vpn-reset"]
    assert (out / "data" / "models").is_dir()  # trained at first start on tickets.jsonl, saved in the folder


@pytest.fixture(scope="module")
def onboarded_jsonl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A JSONL export with a category and nothing else, onboarded through the command line (no SOPs)."""
    root = tmp_path_factory.mktemp("onboard-jsonl")
    rows = [{"title": r["Subject"], "body": r["Description"], "kind": r["Category"]} for r in ticket_rows()]
    (root / "export.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRIAGE_TRAIN_FOLDS", "3")
        args = ["--text-col", "title", "--text-col", "body", "--field", "category=kind", "--embedder", "hashing"]
        code = main(["onboard", "--data", str(root / "export.jsonl"), *args, "--out", str(root / "hd"), "--quiet"])
    assert code == 0
    return root / "hd"


@pytest.mark.slow
def test_without_team_and_priority_columns_teams_follow_categories_and_priority_is_constant(
    onboarded_jsonl: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = OnboardSummary.model_validate_json((onboarded_jsonl / "summary.json").read_text())
    assert summary.fields["team"].derived_from == "category" and summary.fields["priority"].single_label == "P3"
    assert summary.fields["priority"].reference.accuracy is None
    teams = yaml.safe_load((onboarded_jsonl / "kb" / "teams.yaml").read_text())["teams"]
    assert {t["id"]: t["name"] for t in teams} == {
        "network": "Network team",
        "hardware": "Hardware team",
        "access": "Access team",
    }
    assert list((onboarded_jsonl / "kb" / "sops").iterdir()) == []
    monkeypatch.setenv("TRIAGE_TRAIN_FOLDS", "3")
    monkeypatch.setenv("TRIAGE_POLICY", "classical_only")
    code = main(
        [
            "ticket",
            "--config",
            str(onboarded_jsonl),
            "--embedder",
            "hashing",
            "--json",
            "my laptop screen is cracked and the keyboard is dead",
        ]
    )
    result = json.loads(capsys.readouterr().out)
    assert code == 0
    assert (result["category"], result["team"], result["priority"]) == ("hardware", "hardware", "P3")
    assert result["confidence"]["priority"] == 1.0 and result["kb_refs"] == []
    assert not any("priority" in reason for reason in result["reasons"])


@pytest.mark.slow
def test_the_api_serves_the_onboarded_helpdesk_with_no_sops(onboarded_jsonl: Path) -> None:
    from fastapi.testclient import TestClient

    from server import create_app

    settings = Settings(
        config_dir=onboarded_jsonl, embedder="hashing", policy="classical_only", train_folds=3, auth_dev_mode=True
    )
    with TestClient(create_app(settings)) as client:
        triaged = client.post("/v1/triage", json={"title": "VPN drops", "body": "my office wifi disconnects again"})
        assert triaged.status_code == 200, triaged.text
        assert (triaged.json()["category"], triaged.json()["priority"]) == ("network", "P3")
        asked = client.post("/v1/ask", json={"question": "how do I fix the VPN?"})
        assert asked.status_code == 200, asked.text
        assert asked.json()["citations"] == []


def test_the_constant_model_refuses_two_labels() -> None:
    with pytest.raises(DataError, match="exactly one label, got 2"):
        ConstantClassifier(None).fit(["a", "b"], ["x", "y"], np.zeros((2, 4)))
