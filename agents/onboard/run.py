"""One onboarding, start to end: read, derive, import SOPs, measure, and write DIR (staged, then swapped in)."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from agents.errors import DataError
from agents.onboard import measure as m
from agents.onboard.derive import FIELDS, Derived, derive
from agents.onboard.export import Export, OnboardSpec, read_export
from agents.onboard.plots import labels_plot, sweep_plot
from agents.onboard.report import render
from agents.onboard.sops import SopImport, import_sops
from agents.onboard.summary import FieldSummary, OnboardSummary, ReviewLabel, RowAccounting, SourceSummary
from agents.onboard.tables import read_table
from agents.settings import DEFAULT_MEMBERS
from kb.loader import load_kb
from retrieval.embedders import Embedder

OUTPUTS = ("kb", "tickets.jsonl", "labels.json", "report.md", "summary.json", "plots", "helpdesk.json")
STALE = ("data/models", "data/index")  # trained on a previous configuration of the same DIR: the next start retrains


def _yaml(path: Path, header: str, data: Any) -> None:
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120)
    path.write_text(f"# {header}\n{text}", encoding="utf-8")


def write_kb(root: Path, derived: Derived, spec: OnboardSpec) -> SopImport | None:
    """kb/taxonomy.yaml, teams.yaml, catalogue.yaml and sops/ (imported, or empty)."""
    root.mkdir(parents=True)
    made = f"written by `triage onboard` from {spec.data.name}; edit freely"
    _yaml(root / "taxonomy.yaml", f"Categories and priorities {made}.", derived.taxonomy.model_dump(mode="json"))
    _yaml(root / "teams.yaml", f"Teams {made}: add people to each.", derived.teams.model_dump(mode="json"))
    _yaml(root / "catalogue.yaml", f"Services: none yet ({made}).", derived.catalogue.model_dump(mode="json"))
    (root / "sops").mkdir()
    if spec.sops is None:
        return None
    return import_sops(spec.sops, root / "sops", [t.id for t in derived.teams.teams])


def labels_file(derived: Derived, spec: OnboardSpec) -> dict[str, Any]:
    """Every export label -> its id per field (connectors map vendor values through it), and the ones not learnt."""
    fields: dict[str, dict[str, Any]] = {}
    for name in FIELDS:
        found = derived.labels.get(name)
        if found is None:
            fields[name] = {"column": None, "ids": {}, "not_learnt": [], "default": derived.taxonomy.default_priority}
            continue
        fields[name] = {
            "column": found.column,
            "derived_from": found.derived_from,
            "ids": found.ids,
            "not_learnt": found.rare,
        }
    return {"format": "onboard-labels.v1", "source": str(spec.data), "fields": fields}


def field_summary(name: str, derived: Derived, measured: m.Measured) -> FieldSummary:
    found = derived.labels.get(name)
    p, choice = measured.fields[name], measured.thresholds[name]
    default = derived.taxonomy.default_priority  # every row's priority when the export has none
    return FieldSummary(
        column=found.column if found else None,
        derived_from=found.derived_from if found else None,
        labels={found.ids[k]: v for k, v in found.rows.items()} if found else {default: len(derived.ids)},
        review=[ReviewLabel(label=k, id=found.ids[k], rows=found.rows[k]) for k in found.rare] if found else [],
        empty_rows=found.empty_rows if found else 0,
        single_label=measured.single_label.get(name),
        n_train=measured.n_train,
        n_test=len(p.truth),
        accuracy=m.accuracy(p.truth, p.predicted),
        macro_f1=m.macro_f1(p.truth, p.predicted),
        reference=m.reference_figures(p),
        threshold=m.threshold_figures(p, choice),
        sweep=m.sweep(p),
        per_value=m.per_value(p, choice.threshold),
    )


def _prepare(out: Path) -> None:
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "helpdesk.json").is_file())):
        raise DataError(
            str(out), "exists and was not written by `triage onboard` (no helpdesk.json): choose a new --out"
        )
    out.mkdir(parents=True, exist_ok=True)


def _swap_in(stage: Path, out: Path) -> None:
    for name in (*OUTPUTS, *STALE):
        old = out / name
        if old.is_dir():
            shutil.rmtree(old)
        elif old.exists():
            old.unlink()
    for name in OUTPUTS:
        os.replace(stage / name, out / name)


def onboard(
    spec: OnboardSpec,
    out: Path,
    embedder: Embedder,
    *,
    target: float = 0.9,
    folds: int = 5,
    members: str = DEFAULT_MEMBERS,
    commands: dict[str, str] | None = None,
    progress: bool = False,
    say: Callable[[str], None] = lambda _: None,
) -> OnboardSummary:
    """Onboard the export `spec.data` into `out`; nothing in `out` changes unless every step succeeds."""
    started, load = time.perf_counter(), os.getloadavg()[0]
    out = Path(out)
    table = read_table(spec.data)
    export: Export = read_export(table, spec)
    derived = derive(export, spec)
    _prepare(out)  # after the checks of the data: a bad export leaves no folder behind
    say(f"{len(table.rows)} rows read; {len(derived.tickets)} usable for every field; training and measuring ...")
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        sops = write_kb(stage / "kb", derived, spec)
        kb = load_kb(stage / "kb")  # every cross-reference checked, as the service will
        measured = m.measure(
            export, derived, spec, embedder, kb, target=target, folds=folds, members=members, progress=progress
        )
        with open(stage / "tickets.jsonl", "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(t, ensure_ascii=False) + "\n" for t in derived.tickets)
        (stage / "labels.json").write_text(json.dumps(labels_file(derived, spec), indent=2, ensure_ascii=False))
        fields = {name: field_summary(name, derived, measured) for name in FIELDS}
        counted = [n for n in FIELDS if fields[n].column]  # label counts of the fields read from a column
        files = [f"plots/sweep-{n}.png" for n in FIELDS] + [f"plots/labels-{n}.png" for n in counted]
        summary = OnboardSummary(
            created_at=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            machine=f"{os.cpu_count()} CPU cores, {platform.machine()}, Python {platform.python_version()}, "
            f"load average {load:.1f} at the start",
            seconds={**measured.seconds, "total": round(time.perf_counter() - started, 1)},
            commands=commands or {},
            options={**spec.model_dump(mode="json"), "embedder": embedder.name, "members": members, "target": target},
            source=SourceSummary(
                path=str(spec.data),
                sha256=hashlib.sha256(spec.data.read_bytes()).hexdigest(),
                encoding=table.encoding,
                columns=table.columns,
                ragged_rows=table.ragged_rows,
            ),
            rows=_accounting(table.rows, export, derived, measured),
            fields=fields,
            sops=sops,
            warnings=derived.warnings + _sop_warnings(sops),
            files=[*OUTPUTS[:-2], *files, "helpdesk.json"],
        )
        for name in FIELDS:
            sweep_plot(name, fields[name], stage / f"plots/sweep-{name}.png")
        for name in counted:
            labels_plot(name, fields[name], spec.min_label_rows, stage / f"plots/labels-{name}.png")
        (stage / "summary.json").write_text(summary.model_dump_json(indent=2), encoding="utf-8")
        (stage / "report.md").write_text(render(summary, derived), encoding="utf-8")
        helpdesk = {
            "format": "onboard-helpdesk.v1",
            "created_at": summary.created_at,
            "source": {"path": str(spec.data), "sha256": summary.source.sha256, "rows": len(table.rows)},
            "commands": summary.commands,
            # what `--config DIR` (TRIAGE_CONFIG_DIR) sets, relative to DIR, unless each is set explicitly
            "settings": {
                "kb_dir": "kb",
                "training_data": "tickets.jsonl",
                "data_dir": "data",
                "intake_fields": list(spec.intake),  # what the models read of a ticket's intake
            },
            "measured_with": {"embedder": embedder.name, "members": members, "precision_target": target},
        }
        (stage / "helpdesk.json").write_text(json.dumps(helpdesk, indent=2, ensure_ascii=False), encoding="utf-8")
        _swap_in(stage, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return summary


def _sop_warnings(sops: SopImport | None) -> list[str]:
    if sops is not None and not sops.imported:
        return [f"--sops {sops.folder}: no Markdown or HTML file with text was found, so no SOP was imported"]
    return []


def _accounting(rows: list[Any], export: Export, derived: Derived, measured: m.Measured) -> RowAccounting:
    accounting = RowAccounting(
        read=len(rows),
        duplicates=export.duplicates,
        duplicate_examples=export.duplicate_examples,
        missing_ids=export.missing_ids,
        no_text=export.no_text,
        tickets=len(derived.tickets),
        kept_out=len(export.records) - len(derived.tickets),
        kept_out_reasons=derived.kept_out,
        evaluated=measured.evaluated,
        sampled=measured.sampled,
    )
    counted = accounting.duplicates + accounting.no_text + accounting.tickets + accounting.kept_out
    if counted != accounting.read:  # every row is somewhere: a mismatch is a bug here, not bad input
        raise AssertionError(f"rows read {accounting.read} but {counted} accounted for")
    return accounting
