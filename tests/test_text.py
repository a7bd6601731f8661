"""Tests for :mod:`ragcast.text`: the script rule for joining words, Chinese scripts."""

from __future__ import annotations

from ragcast.pipeline.script import in_script
from ragcast.pipeline.types import Segment, Transcript, Word
from ragcast.text import fold_chinese, join_words, tight, to_script


def test_tight_only_between_two_unspaced_characters() -> None:
    assert tight("廣", "州") and tight("ギ、", "キ") and tight("。", "「") and tight("ก", "ข")
    assert tight("ｶ", "ﾀ") and tight("Ａ", "中")  # half- and full-width forms
    assert not tight("Hello", "world") and not tight("很", "iPhone") and not tight("안", "녕")
    assert not tight("", "中") and not tight("中", "")


def test_join_words() -> None:
    assert join_words(["廣", "州", "", "市"]) == "廣州市"
    assert join_words(["Ask", "not,", "what"]) == "Ask not, what"
    assert join_words(["東京", "Tower", "に", "行く"]) == "東京 Tower に行く"


def test_folding_writes_traditional_as_simplified_character_by_character() -> None:
    assert fold_chinese("廣州市房地產中介協會") == "广州市房地产中介协会"
    assert fold_chinese("广州市") == "广州市"
    assert fold_chinese("電球 Straße 東京") == "电球 Straße 东京"
    # alone or in a sentence, a character folds the same
    assert fold_chinese("頭髮") == fold_chinese("頭") + fold_chinese("髮")


def test_to_script_converts_phrases() -> None:
    assert to_script("廣州市房地產中介協會", "simplified") == "广州市房地产中介协会"
    assert to_script("广州市房地产中介协会", "traditional") == "廣州市房地產中介協會"
    assert to_script("廣州 广州", "as_spoken") == "廣州 广州"


def test_a_chinese_transcript_in_the_script_asked_for() -> None:
    words = [Word(c, n * 0.2, n * 0.2 + 0.1) for n, c in enumerate(["廣", "州", "市", "協會"])]
    data = Transcript("asr", "zh", 1.0, [Segment("廣州市協會", 0.0, 1.0, words)])
    in_script(data, "simplified")
    assert data.segments[0].text == "广州市协会"
    assert [w.text for w in data.segments[0].words] == ["广", "州", "市", "协会"]
    japanese = Transcript("asr", "ja", 1.0, [Segment("電球", 0.0, 1.0, [Word("電球")])])
    assert in_script(japanese, "simplified").segments[0].text == "電球"  # not Chinese
