"""Other languages: which one a text is in (function words, no model) and the word forms to match its words by."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["LANGUAGE_NAMES", "Detection", "detect_language", "loose_key", "unaccent"]

WORD = re.compile(r"[^\W\d_]+")
MIN_HITS = 2  # function words needed before a language is named; one word ("de", "is") says little
MIN_SHARE = 0.15  # of the text's words; a product name list with one "de" in it is no language
LETTER_BONUS = 0.5  # per distinctive letter or letter pair found ("ß", "ñ", "ã", "ij")

LANGUAGE_NAMES = {
    "en": "English",
    "de": "German",
    "es": "Spanish",
    "fr": "French",
    "pt": "Portuguese",
    "nl": "Dutch",
    "it": "Italian",
    "pl": "Polish",
}


def _vocabulary(words: str) -> frozenset[str]:
    return frozenset(words.split())


# The most frequent function words of each language, as people write them in a ticket (pronouns, articles,
# prepositions, auxiliaries, negation, question words). Words shared by several languages count for each.
FUNCTION_WORDS: dict[str, frozenset[str]] = {
    "en": _vocabulary(
        "the a an and or but is are was were be been am i my me we our you your it its this that these there "
        "to of in on at for from with by not no can can't cannot could does doesn't don't didn't isn't won't "
        "how what who where when why which have has had will would should please since after any all do did get"
    ),
    "de": _vocabulary(
        "der die das den dem des ein eine einen einem einer und oder aber ist sind war bin hat habe haben wird "
        "ich mein meine meinen meinem mir mich wir unser unsere sie ihr es nicht kein keine keinen mit von zu "
        "zum zur im in auf für bei nach seit aus wie was wer wo warum wann kann können geht mehr noch auch "
        "schon heute mal bitte dass wenn ob"
    ),
    "es": _vocabulary(
        "el la los las un una unos unas y o pero es son está están estoy era fue ha he han hay mi mis me yo "
        "nos nuestro nuestra tu su sus se no ni con de del al en por para desde sin como qué quién quien dónde "
        "cuándo cuando porque puedo puede funciona ya muy más también hoy lo le"
    ),
    "fr": _vocabulary(
        "le la les un une des du de et ou mais est sont suis était ai as avons ont je j mon ma mes moi me m nous "
        "notre vous votre il elle on ne n pas plus rien avec dans sur pour par depuis sans comment quoi qui où "
        "quand pourquoi peux peut arrive marche aussi très ce cette ça qu que l d s aux"
    ),
    "pt": _vocabulary(
        "o a os as um uma uns umas e ou mas é são está estão estou foi tem tenho têm há eu meu minha meus minhas "
        "me nós nosso nossa você seu sua se não nem com de do da dos das no na nos nas em por para pelo pela "
        "desde sem como que quem onde quando porque posso pode consigo já muito mais também hoje ao à"
    ),
    "nl": _vocabulary(
        "de het een en of maar is zijn was waren ben heb heeft hebben wordt word ik mijn mij me we wij ons onze "
        "jij je jouw u uw hij zij ze niet geen met van voor naar bij op in uit sinds zonder hoe wat wie waar "
        "wanneer waarom kan kunnen werkt meer nog ook al vandaag dat dit er om te"
    ),
    "it": _vocabulary(
        "il lo la i gli le un una uno e o ma è sono sei era ho ha hanno io mio mia miei mie mi noi nostro tu tuo "
        "lui lei non né con di del della dei delle da dal in nel nella su sul per senza come che chi dove quando "
        "perché posso può funziona già molto più anche oggi"
    ),
    "pl": _vocabulary(
        "i w z na do nie się jest są był była mam ma mają ja mój moja moje mnie mi my nasz nasza ty twój on ona "
        "to ten ta od po przez dla bez jak co kto gdzie kiedy dlaczego czy mogę może działa już bardzo jeszcze "
        "też dzisiaj że ale lub"
    ),
}

# letters and pairs that occur in one of the languages much more than in the others
LETTERS: dict[str, re.Pattern[str]] = {
    "de": re.compile(r"ß|[äöü]|\bsch|\w(?:ung|keit|lich)\b"),
    "es": re.compile(r"ñ|¿|¡|ción\b"),
    "fr": re.compile(r"[èêàùç]|\w(?:eau|aux)\b|\bqu'|\w'\w"),
    "pt": re.compile(r"[ãõ]|ção\b|ções\b|\blh|nh"),
    "nl": re.compile(r"ij|\w(?:aa|oo|uu)\w|\bsch"),
    "it": re.compile(r"zion[ei]\b|\bgli\b|\bchi\b"),
    "pl": re.compile(r"[łńśźżąę]|\bprz|\bsz|cz"),
}


@dataclass(frozen=True)
class Detection:
    """The detected language ("" when unsure), its name, and the evidence: function words found and their share."""

    lang: str
    name: str
    hits: int
    share: float

    @property
    def known(self) -> bool:
        return bool(self.lang)

    @property
    def foreign(self) -> bool:
        """Detected and not English (the language of the SOPs, the catalogue and the embedding model)."""
        return bool(self.lang) and self.lang != "en"


UNSURE = Detection("", "", 0, 0.0)


def detect_language(text: str) -> Detection:
    """The language whose function words (plus a bonus for its distinctive letters) cover most of the text; unsure
    ("") with fewer than MIN_HITS function words, a share under MIN_SHARE, or a tie between two languages."""
    folded = unicodedata.normalize("NFC", text).casefold().replace("’", "'")
    words = WORD.findall(folded)
    if not words:
        return UNSURE
    scored = []
    for lang, vocabulary in FUNCTION_WORDS.items():
        hits = sum(w in vocabulary for w in words)
        letters = len(LETTERS[lang].findall(folded)) if lang in LETTERS else 0
        scored.append((hits + LETTER_BONUS * min(letters, 4), hits, lang))
    scored.sort(reverse=True)
    (best, hits, lang), (runner_up, _, _) = scored[0], scored[1]
    share = hits / len(words)
    if hits < MIN_HITS or share < MIN_SHARE or best == runner_up:
        return Detection("", "", hits, round(share, 3))
    return Detection(lang, LANGUAGE_NAMES[lang], hits, round(share, 3))


# ---- word forms: how to match words of these languages --------------------------------------------------------

# Inflections of the five other languages, stripped from both the alias and the text's word when the text is in one
# of them: plurals and case endings (de "Druckern", nl "printers", es "impresoras", fr "imprimantes"), longest first
LOOSE_ENDINGS = ("ern", "ers", "ens", "en", "er", "es", "e", "s")
LOOSE_MIN = 4  # letters a loose key keeps


def unaccent(word: str) -> str:
    """The word without diacritics ("vírus" -> "virus", "écran" -> "ecran"); "ß" is already "ss" after fold."""
    return "".join(c for c in unicodedata.normalize("NFD", word) if not unicodedata.combining(c))


@lru_cache(maxsize=65536)
def loose_key(word: str) -> str:
    """The key of a word in text of another language: no accents, up to two inflection endings off, so
    "Bildschirmen" meets "Bildschirm", "impresoras" meets "impresora" and "licença" meets "licenca"."""
    word = unaccent(word)
    for _ in range(2):  # "verrouillées" -> "verrouillee" -> "verrouill", as "verrouillé"
        ending = next((e for e in LOOSE_ENDINGS if word.endswith(e) and len(word) - len(e) >= LOOSE_MIN), "")
        word = word[: len(word) - len(ending)]
    return word
