"""Language detection: the labelled short messages of tests/data/languages.csv, texts too short to
tell, and the channel's hint deciding only when the text does not."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from libs.domain.language import (
    MAX_DETECT_CHARS,
    detect_language,
    language_tag,
    languages,
    text_language,
)

DATA = Path(__file__).parent.parent / "data" / "languages.csv"


def _rows() -> list[dict[str, str]]:
    with DATA.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_sms_and_tweet_length_messages_get_their_language() -> None:
    rows = [r for r in _rows() if r["language"] and r["length"] != "words"]
    assert len(rows) >= 7 * 30
    answers = [detect_language(r["text"]) for r in rows]
    assert [(r["text"], a) for r, a in zip(rows, answers, strict=True) if a != r["language"]] == []


def test_a_few_words_are_right_or_unsure_and_rarely_wrong() -> None:
    rows = [r for r in _rows() if r["language"] and r["length"] == "words"]
    answers = [detect_language(r["text"]) for r in rows]
    right = sum(a == r["language"] for a, r in zip(answers, rows, strict=True))
    wrong = sum(a not in (None, r["language"]) for a, r in zip(answers, rows, strict=True))
    assert right >= 0.6 * len(rows)
    assert wrong <= 0.1 * len(rows)


@pytest.mark.parametrize(
    "text", ["ok", "OK", "k", "?", "!!", "👍", ":)", "12345", "#88231", "SB-7K2M-Q9", "", "   "]
)
def test_texts_too_short_to_tell_get_no_language(text: str) -> None:
    assert detect_language(text) is None


def test_every_no_language_row_of_the_data_gets_none() -> None:
    assert [r["text"] for r in _rows() if not r["language"] and detect_language(r["text"])] == []


@pytest.mark.parametrize(
    ("text", "hint", "expected"),
    [
        ("ok", "es-ES", "es"),
        ("danke", "de", "de"),
        ("👍", "fr-CA, en;q=0.5", "fr"),
        ("ok", "x-klingon", None),
        ("ok", None, None),
    ],
)
def test_the_hint_decides_when_the_text_does_not(
    text: str, hint: str | None, expected: str | None
) -> None:
    assert detect_language(text, hint) == expected


def test_a_clear_text_wins_over_the_hint() -> None:
    text = "¿Dónde está mi pedido? Llevo dos semanas esperando y nadie me contesta."
    assert detect_language(text, hint="en-US") == "es"
    assert detect_language("Mein Paket ist immer noch nicht angekommen", hint="es") == "de"


@pytest.mark.parametrize(
    ("tag", "code"),
    [
        ("de-DE, en;q=0.8", "de"),
        ("EN", "en"),
        ("es_MX", "es"),
        ("zh-Hant-TW", "zh"),
        (" pt-BR ", "pt"),
        ("*", None),
        ("xx", None),
        ("eng", None),
        ("la", None),
        ("", None),
        (None, None),
    ],
)
def test_language_tags_give_their_iso_639_1_code(tag: str | None, code: str | None) -> None:
    assert language_tag(tag) == code


def test_languages_are_iso_639_1_codes() -> None:
    codes = languages()
    assert {"en", "es", "de", "fr", "pt", "it", "nl", "tr", "ja"} <= codes
    assert all(len(code) == 2 and code.islower() for code in codes)


def test_only_the_start_of_a_long_text_is_read() -> None:
    spanish = "necesito ayuda urgente con mi pedido, por favor. "
    text = spanish * (MAX_DETECT_CHARS // len(spanish) + 1) + "the end is in English " * 500
    assert text_language(text)[0] == "es"
