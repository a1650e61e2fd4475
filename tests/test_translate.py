"""Translation by an LLM over HTTP for the English catalogue: what it fixes, and a failing LLM loses nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fake_openai_server import FakeOpenAI, fake_openai

from agents.answers.answer import Answerer
from agents.app import build_answerer
from agents.llm.client import OpenAICompatibleChat
from agents.llm.translate import LlmTranslator
from agents.settings import Settings
from evals.translate_eval import english_only_kb, measure, report_markdown
from kb import KB_DIR
from retrieval.embedders import HashingEmbedder

GERMAN = {"id": "x1", "lang": "de", "split": "test", "team": "workplace"}
GERMAN["text"] = "Der Drucker im dritten Stock druckt nicht, die Aufträge bleiben in der Warteschlange hängen."
ENGLISH = "The printer on the third floor does not print; the jobs stay stuck in the queue."


@pytest.fixture(scope="module")
def answerers(tmp_path_factory: pytest.TempPathFactory) -> tuple[Answerer, Answerer]:
    plain_kb = english_only_kb(KB_DIR, tmp_path_factory.mktemp("plain") / "kb")
    settings = Settings(_env_file=None, kb_dir=KB_DIR)  # type: ignore[call-arg]
    embedder = HashingEmbedder()
    words = build_answerer(settings, embedder=embedder, in_memory=True)
    plain = build_answerer(settings.model_copy(update={"kb_dir": plain_kb}), embedder=embedder, in_memory=True)
    return words, plain


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with fake_openai() as srv:
        srv.answers = {"english": ENGLISH}
        yield srv


def translator(server: FakeOpenAI) -> LlmTranslator:
    return LlmTranslator(OpenAICompatibleChat("fake-model", base_url=server.url, api_key="k", llm_timeout=2.0))


def test_the_english_only_catalogue_has_no_foreign_words(tmp_path: Path) -> None:
    catalogue = yaml.safe_load((english_only_kb(KB_DIR, tmp_path / "kb") / "catalogue.yaml").read_text())
    assert catalogue["services"] and not any("aliases_in" in s for s in catalogue["services"])
    assert (tmp_path / "kb" / "sops").is_dir()  # the rest of the knowledge base comes along


def test_translation_gives_the_english_catalogue_its_owner(server: FakeOpenAI, answerers) -> None:  # type: ignore[no-untyped-def]
    words, plain = answerers
    result = measure([GERMAN], words, plain, translator(server))
    (row,) = result["rows"]
    assert row["english"] == ENGLISH and row["translated"] == "workplace" == row["words"]
    assert row["english_only"] != "workplace"  # without its German words the catalogue cannot tell
    assert "German" in server.requests[-1]["body"]["messages"][0]["content"]  # the detected language is named
    assert result["accuracy"]["translated"] == 1.0 and result["untranslated"] == 0


def test_english_text_is_not_sent(server: FakeOpenAI) -> None:
    got = translator(server).translate("The printer on the third floor does not print at all today.")
    assert got.call is None and got.reason == "not detected as another language" and server.requests == []


@pytest.mark.parametrize("scenario", ["500", "invalid_json", "deep_nesting", "huge"])
def test_a_failing_llm_leaves_the_text_as_written(scenario: str, server: FakeOpenAI, answerers) -> None:  # type: ignore[no-untyped-def]
    server.scenario = scenario
    words, plain = answerers
    result = measure([GERMAN], words, plain, translator(server))
    (row,) = result["rows"]
    assert row["english"] is None and row["reason"].startswith("translation failed")
    assert row["translated"] == row["english_only"] and result["llm_failures"] == 1
    report = report_markdown({**result, "date": "d", "model": "m", "embedder": "e", "data": "x"}, "cmd")
    assert "1 of 1 rows not translated (1 failed calls" in report


def test_ask_translates_only_a_language_the_catalogue_has_no_words_for(server: FakeOpenAI, tmp_path: Path) -> None:
    """German with the shipped catalogue: matched as written, no LLM call. The same question with a catalogue
    without German words: translated, answered with the right owner, and the translation said."""
    settings = Settings(_env_file=None, kb_dir=KB_DIR)  # type: ignore[call-arg]
    embedder = HashingEmbedder()
    plain = settings.model_copy(update={"kb_dir": english_only_kb(KB_DIR, tmp_path / "kb")})
    words = build_answerer(settings, embedder=embedder, in_memory=True)
    words.translator = translator(server)
    assert words.ask(GERMAN["text"]).owner.team == "workplace" and server.requests == []
    english = build_answerer(plain, embedder=embedder, in_memory=True)
    untranslated = english.ask(GERMAN["text"])
    english.translator = translator(server)
    answered = english.ask(GERMAN["text"])
    assert answered.owner is not None and answered.owner.team == "workplace" != getattr(
        untranslated.owner, "team", None
    )
    assert "translated from German by the LLM" in answered.reasons[0] and len(answered.llm_calls) == 1
    server.scenario = "500"  # a failing LLM: the question is asked as written, and the reason says why
    failed = english.ask(GERMAN["text"])
    assert failed.reasons[0].startswith("German, which the catalogue has no words for: translation failed")
