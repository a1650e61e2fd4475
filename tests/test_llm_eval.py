"""The LLM policies as eval backends: who decided each field, what the LLM cost, and failures counted not dropped."""

from __future__ import annotations

import pytest

from agents.errors import BackendUnavailable
from agents.llm.chat import ScriptedChat
from agents.settings import Settings
from evals.backends import ClassicalBackend
from evals.llm_eval import CachingChat, LlmPolicyBackend, label_fields, make_backend
from evals.specs import Table
from kb.loader import load_kb
from retrieval.embedders import HashingEmbedder


@pytest.fixture(scope="module")
def tables(demo_rows) -> tuple[Table, Table]:
    def table(rows):
        texts = [f"{r['title']}\n{r['body']}" for r in rows]
        return Table(rows, texts, {f: [r[f] for r in rows] for f in ("category", "priority")})

    return table(demo_rows[:80]), table(demo_rows[80:92])


@pytest.fixture(scope="module")
def classical(tables) -> ClassicalBackend:
    """Fitted once; every policy backend below shares it, as scripts/eval_llm.py does."""
    backend = ClassicalBackend(HashingEmbedder(), folds=2)
    backend.fit(tables[0], None)
    return backend


def fitted(name: str, chat, train: Table, classical: ClassicalBackend) -> LlmPolicyBackend:  # type: ignore[no-untyped-def]
    backend = LlmPolicyBackend(name, chat, HashingEmbedder(), kb=load_kb(Settings().kb_dir), classical=classical)
    backend.fit(train, None)
    return backend


def echo_truth(test: Table):  # type: ignore[no-untyped-def]
    """A scripted model that knows the answers: it finds the ticket's text in the prompt."""

    def fn(messages, schema):
        user = messages[-1]["content"]
        i = next(i for i, t in enumerate(test.texts) if " ".join(t.split())[:60] in user)
        return {"category": test.labels["category"][i], "priority": test.labels["priority"][i], "confidence": 0.9}

    return fn


def test_label_fields_describe_taxonomy_labels_and_name_others() -> None:
    kb = load_kb(Settings().kb_dir)
    fields = label_fields({"category": ["network", "email"], "topic": ["Hardware", "Access"]}, kb)
    assert fields[0].labels["network"].startswith("Network and connectivity")
    assert len(fields[0].labels) == len(kb.taxonomy.categories)  # every category stays allowed
    assert fields[1].labels == {"Access": "", "Hardware": ""}


@pytest.mark.parametrize("name", ["llm", "llm_first"])
def test_llm_policies_ask_about_every_ticket(tables, classical, name: str) -> None:
    train, test = tables
    backend = fitted(name, ScriptedChat(fn=echo_truth(test), name="llm:test"), train, classical)
    out = backend.predict(test.rows, test.texts)
    assert all(o.fields["category"].decided_by == "llm:test" for o in out)
    assert [o.fields["category"].label for o in out] == test.labels["category"]
    assert all(o.llm_calls == 1 and o.tokens > 0 for o in out)
    assert backend.stats["valid_first_try"] == len(test) and backend.thresholds == {}
    assert len(backend.latency_ms) == len(test)


def test_cascade_asks_only_about_fields_under_the_threshold(tables, classical) -> None:
    train, test = tables
    chat = ScriptedChat(fn=echo_truth(test), name="llm:test")
    backend = fitted("cascade", chat, train, classical)
    backend.cascade_thresholds = {"category": 1.01, "priority": -1.0}  # category always in doubt, priority never
    out = backend.predict(test.rows, test.texts)
    assert all(o.fields["category"].decided_by == "llm:test" for o in out)
    assert all(o.fields["priority"].decided_by == "classical:ensemble" for o in out)
    backend.cascade_thresholds = {"category": -1.0, "priority": -1.0}
    calls = len(chat.calls)
    quiet = backend.predict(test.rows, test.texts)
    assert len(chat.calls) == calls and all(o.llm_calls == 0 for o in quiet)


def test_llm_first_failures_fall_back_and_are_counted(tables, classical) -> None:
    train, test = tables
    failures = [BackendUnavailable("llm:test", "HTTP 500")] + [
        {"category": "ceo", "priority": "P0", "confidence": 1}
    ] * 2
    backend = fitted("llm_first", ScriptedChat(failures, name="llm:test"), train, classical)
    out = backend.predict(test.rows[:2], test.texts[:2])
    assert [o.fields["category"].decided_by for o in out] == ["classical:ensemble (fallback)"] * 2
    assert [o.llm_calls for o in out] == [1, 2]  # unavailable: one request; invalid: asked and re-asked
    assert backend.stats["unavailable"] == backend.stats["invalid"] == 1 and backend.stats["fallbacks"] == 2


def test_the_llm_alone_raises_its_failures_for_the_runner_to_score_as_failed_rows(tables, classical) -> None:
    train, test = tables
    backend = fitted(
        "llm", ScriptedChat([BackendUnavailable("llm:test", "HTTP 500")], name="llm:test"), train, classical
    )
    with pytest.raises(BackendUnavailable):
        backend.predict(test.rows[:1], test.texts[:1])
    assert backend.stats["unavailable"] == 1 and backend.stats["fallbacks"] == 0


def test_caching_chat_replays_the_same_request() -> None:
    inner = ScriptedChat([{"category": "network", "confidence": 1.0}])
    chat = CachingChat(inner)
    messages = [{"role": "user", "content": "vpn"}]
    first = chat.complete(messages, {"type": "object"})
    assert chat.complete(messages, {"type": "object"}) is first
    assert chat.live_calls == 1 and len(inner.calls) == 1


def test_the_plug_in_reports_a_missing_llm_as_unavailable(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path, _env_file=None, llm_model=None)
    with pytest.raises(BackendUnavailable, match="no LLM configured"):
        make_backend("llm", settings=settings, embedder=HashingEmbedder())


def test_caching_chat_on_disk_lets_an_interrupted_run_resume(tmp_path) -> None:
    path = tmp_path / "replies.jsonl"
    messages = [{"role": "user", "content": "vpn"}]
    CachingChat(ScriptedChat([{"category": "network", "confidence": 1.0}]), path).complete(messages, {"type": "object"})
    resumed = CachingChat(ScriptedChat([]), path)  # would raise if it asked the model again
    assert resumed.complete(messages, {"type": "object"}).parsed == {"category": "network", "confidence": 1.0}
    assert resumed.live_calls == 0
