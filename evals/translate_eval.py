"""Other languages: catalogue words in five languages against translation by the LLM, owner accuracy side by side."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from agents.answers.answer import Answerer
from agents.llm.evidence import verdict
from agents.llm.translate import LlmTranslator
from evals.mcnemar import PairedCounts
from evals.metrics import llm_cost

ARMS = ("words", "english_only", "translated", "translated+words")
PAIRS = (("english_only", "translated"), ("words", "translated"), ("words", "translated+words"))


def english_only_kb(kb_dir: Path, into: Path) -> Path:
    """A copy of the knowledge base whose catalogue has no words in other languages (`aliases_in` removed): the
    catalogue of a helpdesk that never wrote words for a language."""
    shutil.copytree(kb_dir, into, dirs_exist_ok=True)
    path = into / "catalogue.yaml"
    catalogue = yaml.safe_load(path.read_text(encoding="utf-8"))
    for service in catalogue.get("services", []):
        service.pop("aliases_in", None)
    path.write_text(yaml.safe_dump(catalogue, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return into


def owner_of(answerer: Answerer, text: str) -> str | None:
    result = answerer.ask(text)
    return result.owner.team if result.owner else None


def measure(
    rows: Sequence[dict[str, Any]],
    words: Answerer,
    english_only: Answerer,
    translator: LlmTranslator,
    progress: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """Owner team per arm and row, on the same rows; the LLM's failures, latency and prompt tokens."""
    records = []
    for i, row in enumerate(rows, start=1):
        text = str(row["text"])
        translated = translator.translate(text)
        record = {
            "id": row.get("id"),
            "lang": row.get("lang"),
            "split": row.get("split"),
            "team": row.get("team"),
            "english": translated.text if translated.call else None,
            "reason": translated.reason,
            "llm_ms": translated.call.latency_ms if translated.call else None,
            "prompt_tokens": translated.call.prompt_tokens if translated.call else None,
            "words": owner_of(words, text),
            "english_only": owner_of(english_only, text),
            "translated": owner_of(english_only, translated.text),
            "translated+words": owner_of(words, translated.text),
        }
        records.append(record)
        progress(f"{i}/{len(rows)} {record['id']}: {record['english_only']} -> {record['translated']}")
    return summarise(records)


def _accuracy(records: Sequence[dict[str, Any]], arm: str) -> float:
    return sum(r[arm] == r["team"] for r in records) / len(records) if records else 0.0


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    truth = [str(r["team"]) for r in records]
    tests = {}
    for first, second in PAIRS:
        counts = PairedCounts.of(truth, [str(r[first]) for r in records], [str(r[second]) for r in records])
        tests[f"{second} vs {first}"] = {
            "fixed": counts.c,
            "broke": counts.b,
            "p_value": round(counts.p_value, 4),
            "verdict": verdict(_accuracy(records, first), _accuracy(records, second), counts.p_value),
        }
    langs = sorted({str(r["lang"]) for r in records})
    return {
        "n": len(records),
        "accuracy": {arm: round(_accuracy(records, arm), 4) for arm in ARMS},
        "by_lang": {
            lang: {arm: round(_accuracy([r for r in records if r["lang"] == lang], arm), 4) for arm in ARMS}
            for lang in langs
        },
        "by_split": {
            split: {arm: round(_accuracy([r for r in records if r["split"] == split], arm), 4) for arm in ARMS}
            for split in sorted({str(r["split"]) for r in records})
        },
        "mcnemar": tests,
        "llm_failures": sum(1 for r in records if r["reason"] and r["reason"].startswith("translation failed")),
        "untranslated": sum(1 for r in records if r["english"] is None),
        **llm_cost(records),
        "rows": records,
    }


def report_markdown(result: dict[str, Any], command: str) -> str:
    lines = [
        "# Other languages: catalogue words against translation by the LLM",
        "",
        f"Date {result['date']}; model `{result['model']}`; embedder `{result['embedder']}`; {result['n']} rows of "
        f"`{result['data']}`; owner team of `ask` on the classical path.",
        "",
        "```",
        command,
        "```",
        "",
        "Arms: `words` the catalogue as shipped (words in German, Spanish, French, Portuguese and Dutch); "
        "`english_only` the same catalogue without them (a language nobody wrote words for); `translated` the LLM's "
        "English translation asked of the English-only catalogue; `translated+words` the translation asked of the "
        "catalogue as shipped.",
        "",
        "| | " + " | ".join(ARMS) + " |",
        "|---|" + "---|" * len(ARMS),
        "| all | " + " | ".join(f"{result['accuracy'][a]:.3f}" for a in ARMS) + " |",
    ]
    for split, acc in result["by_split"].items():
        lines.append(f"| {split} half | " + " | ".join(f"{acc[a]:.3f}" for a in ARMS) + " |")
    for lang, acc in result["by_lang"].items():
        lines.append(f"| {lang} | " + " | ".join(f"{acc[a]:.3f}" for a in ARMS) + " |")
    lines += ["", "| comparison | fixed | broke | McNemar p | verdict |", "|---|---|---|---|---|"]
    for name, t in result["mcnemar"].items():
        lines.append(f"| {name} | {t['fixed']} | {t['broke']} | {t['p_value']} | {t['verdict']} |")
    p50 = result["llm_ms_p50"]
    lines += [
        "",
        f"LLM: {result['untranslated']} of {result['n']} rows not translated ({result['llm_failures']} failed calls, "
        "the rest not detected as another language); "
        + (f"latency p50 {p50 / 1000:.1f} s, prompt tokens p50 {result['prompt_tokens_p50']}." if p50 else "no call."),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """`python -m evals.translate_eval --out DIR`: owner accuracy with catalogue words against LLM translation."""
    import argparse
    import shlex
    import sys
    import tempfile

    from agents.app import build_answerer
    from agents.llm.factory import llm_problem, make_chat
    from agents.settings import Settings
    from evals.tables import split_rows
    from retrieval.factory import make_embedder

    parser = argparse.ArgumentParser(prog="python -m evals.translate_eval", description=main.__doc__)
    parser.add_argument("--data", default="evals/data/multilingual.v1.jsonl", help="rows with text, lang and team")
    parser.add_argument("--split", default="all", help="tune, test or all (%(default)s)")
    parser.add_argument("--out", required=True, help="folder for report.md and result.json")
    args = parser.parse_args(argv)
    settings = Settings()
    problem = llm_problem(settings)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    rows = split_rows(args.data, args.split)
    embedder = make_embedder(settings.embedder, settings.embed_precision)
    chat = make_chat(settings)
    with tempfile.TemporaryDirectory() as tmp:
        plain = settings.model_copy(update={"kb_dir": english_only_kb(settings.kb_dir, Path(tmp) / "kb")})
        words = build_answerer(settings, embedder=embedder, in_memory=True)
        english_only = build_answerer(plain, embedder=embedder, in_memory=True)
        result = measure(
            rows, words, english_only, LlmTranslator(chat), lambda line: print(line, file=sys.stderr, flush=True)
        )
    result.update(date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), model=chat.name, embedder=settings.embedder)
    result["data"] = args.data
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = shlex.join(["python", "-m", "evals.translate_eval", *(argv if argv is not None else sys.argv[1:])])
    (out / "result.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "report.md").write_text(report_markdown(result, command), encoding="utf-8")
    print(report_markdown(result, command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
