"""The verifier's training material and the rule that picks its weight and threshold."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.wbc.labelled import Box
from trainer.wbc.verify_data import TuningImage, choose_combination, hit_matrix, pr_at


def _image(s1: list[float], hits: list[list[bool]], boxes: int) -> TuningImage:
    n = len(s1)
    return TuningImage(np.zeros((n, 4, 8, 8), np.float32), np.array(s1, np.float32),
                       np.array(hits, bool).reshape(n, boxes), boxes)


def test_hit_matrix_grows_the_boxes_by_the_tolerance() -> None:
    boxes = [Box(10, 10, 20, 20), Box(50, 50, 60, 60)]
    hits = hit_matrix(np.array([[15, 15], [24, 10], [26, 10], [55, 45]], np.float32), boxes, tol=5.0)
    assert hits.tolist() == [[True, False], [True, False], [False, False], [False, True]]


def test_pr_at_follows_the_bench_rule() -> None:
    # two candidates on the same box (both correct, one box found), one false alarm, one box missed
    im = _image([0.9, 0.6, 0.8], [[True, False], [True, False], [False, False]], 2)
    assert pr_at([im], [np.ones(3, np.float32)], 0.0, 0.5) == (0.5, pytest.approx(2 / 3))
    # the second stage rejects the false alarm: precision 1 at weight 1
    assert pr_at([im], [np.array([0.9, 0.9, 0.1], np.float32)], 1.0, 0.5) == (0.5, 1.0)
    assert pr_at([_image([], [], 1)], [np.zeros(0, np.float32)], 0.5, 0.5) == (0.0, 0.0)


def test_choose_combination_prefers_the_stage_that_separates_and_keeps_recall() -> None:
    # the first stage scores the false alarm above one cell; the second separates them
    ims = [_image([0.9, 0.5, 0.7], [[True, False], [False, True], [False, False]], 2) for _ in range(5)]
    good = [np.array([0.95, 0.9, 0.05], np.float32) for _ in ims]
    weight, thr, table = choose_combination([ims], [good], [True])
    assert weight > 0 and len(table) == 5
    assert pr_at(ims, good, weight, thr) == (1.0, 1.0)
    useless = [np.full(3, 0.5, np.float32) for _ in ims]
    weight, thr, _ = choose_combination([ims], [useless], [True])
    assert pr_at(ims, useless, weight, thr)[0] == 1.0  # recall is kept whatever the second stage says
    with pytest.raises(ValueError, match="box every white cell"):
        choose_combination([ims], [good], [False])


def test_union_points_drops_later_duplicates_only() -> None:
    from trainer.wbc.verify_data import union_points

    a = np.array([[10, 10], [12, 10]], np.float32)  # within one proposer both stay
    b = np.array([[11, 11], [40, 40]], np.float32)  # the first lies within 3 px of a kept point
    out = union_points([a, b, np.zeros((0, 2), np.float32)], 3.0)
    np.testing.assert_array_equal(out, [[10, 10], [12, 10], [40, 40]])
    assert union_points([], 3.0).shape == (0, 2)
