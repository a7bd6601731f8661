"""Terms in every language, and the two fusion functions."""

from __future__ import annotations

import pytest

from ragcast.retrieval.fusion import convex, fuse, rrf
from ragcast.retrieval.search import merge_overlapping
from ragcast.retrieval.tokenize import query_terms, terms


def test_words_are_case_folded_and_keep_their_diacritics() -> None:
    assert terms("Mr. Quilter's CAFÉ, åtta ＡＢＣ") == ["mr", "quilter", "s", "café", "åtta", "abc"]


def test_chinese_and_japanese_become_character_bigrams() -> None:
    assert terms("广州市房地产") == ["广州", "州市", "市房", "房地", "地产"]
    # kana and kanji run together; a lone character stays itself
    assert terms("電柱に電球") == ["电柱", "柱に", "に电", "电球"]  # kanji folded as Chinese
    assert terms("a 猫 b") == ["a", "猫", "b"]


def test_traditional_and_simplified_chinese_are_the_same_terms() -> None:
    assert (
        terms("廣州市房地產") == terms("广州市房地产") == ["广州", "州市", "市房", "房地", "地产"]
    )
    assert query_terms("廣州") == query_terms("广州") == ["广州"]
    assert terms("キャンプの外れの電球") == terms("キャンプの外れの电球")  # kanji fold too


def test_a_query_word_of_two_characters_matches_inside_a_longer_run() -> None:
    assert set(terms("电球")) <= set(terms("键盘旁边的电球很亮"))


def test_runaway_tokens_are_dropped_and_queries_deduplicated() -> None:
    assert terms("x" * 41 + " ok") == ["ok"]
    assert query_terms("the cat and the hat") == ["the", "cat", "and", "hat"]


def test_convex_fusion_keeps_dense_scores_and_divides_bm25_by_the_ceiling() -> None:
    dense = [("a", 0.8), ("b", 0.4)]  # already on the 0-1 scale: not stretched to the best
    lexical = [("b", 12.0), ("c", 6.0)]
    fused = dict(convex(dense, lexical, alpha=0.5, lexical_ceiling=12.0, floor=0.0))
    assert fused == {"a": 0.4, "b": 0.2 + 0.5, "c": 0.25}
    assert [k for k, _ in convex(dense, lexical, alpha=1.0)][:2] == ["a", "b"]
    # under the floor a lexical match counts as nothing; above it, it is stretched to 0-1
    floored = dict(convex([], lexical, alpha=0.5, lexical_ceiling=20.0, floor=0.3))
    assert floored["c"] == 0.0 and floored["b"] == pytest.approx(0.5 * (0.6 - 0.3) / 0.7)


def test_negative_similarities_count_as_zero() -> None:
    assert dict(convex([("a", -0.2)], [], alpha=1.0)) == {"a": 0.0}


def test_rrf_sums_reciprocal_ranks() -> None:
    fused = dict(rrf([("a", 0.9), ("b", 0.1)], [("b", 3.0)], k=60))
    assert fused["b"] == 1 / 62 + 1 / 61 and fused["a"] == 1 / 61
    assert fuse([("a", 1.0)], [("b", 1.0)], "rrf")[0][1] == 1 / 61


def test_overlapping_chunks_merge_into_one_passage() -> None:
    texts = ["the cat sat on the mat and", "on the mat and then it slept.", "Morning came."]
    assert merge_overlapping(texts) == "the cat sat on the mat and then it slept. Morning came."
    assert merge_overlapping([]) == ""
