"""Translation by the LLM of a question or ticket in another language into English, for the English catalogue."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from agents.language import detect_language
from agents.llm.calls import ask
from agents.llm.chat import ChatModel
from agents.llm.classify import wire_schema
from agents.llm.readers import text_reader
from agents.types import Deadline, LlmCall
from prompts import Prompt, data_block, load_prompt

MAX_CHARS = 2000  # longer text is cut before it goes to the model


class TranslationAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    english: str = Field(min_length=2, max_length=4000)


read_translation = text_reader(TranslationAnswer, "english", "translate")


class Translated(BaseModel):
    """The text to use, the language detected, the call (None when the LLM was not asked) and why not."""

    model_config = ConfigDict(extra="forbid")

    text: str
    lang: str
    call: LlmCall | None = None
    reason: str | None = None


class LlmTranslator:
    """Translates text detected as another language; English or undetected text, and any failure of the LLM path,
    leave the text as it came (with the reason)."""

    def __init__(self, chat: ChatModel, *, prompt: Prompt | None = None) -> None:
        self.chat = chat
        self.prompt = prompt or load_prompt("translate", "v1")

    def translate(self, text: str, deadline: Deadline | None = None) -> Translated:
        detection = detect_language(text)
        if not detection.foreign:
            return Translated(text=text, lang=detection.lang, reason="not detected as another language")
        messages = self.prompt.render(language=detection.name, text=data_block(text[:MAX_CHARS], "text"))
        try:
            english, call = ask(
                self.chat,
                "translate",
                self.prompt.id,
                messages,
                wire_schema(TranslationAnswer),
                read_translation,
                schema_name="translation",
                max_tokens=min(len(text) // 2 + 64, 1000),
                deadline=deadline,
            )
        except Exception as exc:  # noqa: BLE001 - an untranslated text is still answered (or abstained on)
            reason = f"translation failed ({type(exc).__name__}: {exc})"[:300]
            return Translated(text=text, lang=detection.lang, reason=reason)
        return Translated(text=english, lang=detection.lang, call=call)
