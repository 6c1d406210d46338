"""Slide-level split assignment."""

from __future__ import annotations

from collections import Counter

import pytest

from trainer.data.splits import split_of


def test_deterministic_and_close_to_the_ratios() -> None:
    names = [f"slide-{i}" for i in range(3000)]
    first = [split_of(n) for n in names]
    assert first == [split_of(n) for n in reversed(names)][::-1]
    counts = Counter(first)
    assert abs(counts["train"] / 3000 - 0.8) < 0.03 and abs(counts["val"] / 3000 - 0.1) < 0.02


def test_ratios_and_salt() -> None:
    assert {split_of(f"s{i}", (0, 1, 0)) for i in range(50)} == {"val"}
    assert [split_of(f"s{i}") for i in range(40)] != [split_of(f"s{i}", salt="x") for i in range(40)]
    with pytest.raises(ValueError, match="non-negative"):
        split_of("s", (1, -1, 1))
