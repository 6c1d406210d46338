"""Hard negatives, their loss weight, the ensemble's mean and the threshold rules."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.wbc.cnn_hard import (
    f1_threshold,
    hard_negatives,
    mean_probability,
    negative_weight,
    recall_threshold,
    set_reference,
)


def test_hard_negatives_are_the_peaks_outside_every_box() -> None:
    peaks = np.array([[10, 10], [14.5, 10], [40, 40], [0, 0]], np.float32)
    centres = np.array([[10, 10, 6], [100, 100, 20]], np.float32)  # box 7-13 (+2 px tolerance: 5-15)
    np.testing.assert_array_equal(hard_negatives(peaks, centres), [[40, 40], [0, 0]])
    np.testing.assert_array_equal(hard_negatives(peaks, centres, tol=5), [[40, 40], [0, 0]])
    np.testing.assert_array_equal(hard_negatives(peaks, centres, tol=0), [[14.5, 10], [40, 40], [0, 0]])
    assert hard_negatives(peaks, np.zeros((0, 3), np.float32)).shape == (4, 2)  # no labels: all negatives
    assert hard_negatives(np.zeros((0, 2), np.float32), centres).shape == (0, 2)


def test_negative_weight_emphasises_or_ignores_the_points() -> None:
    pts = np.array([[5, 8]], np.float32)
    up = negative_weight(20, 30, pts, 2.0, 4.0)
    assert up.shape == (20, 30) and up[8, 5] == pytest.approx(5.0) and up[0, 29] == pytest.approx(1.0)
    assert up[8, 7] == pytest.approx(1 + 4 * np.exp(-0.5))  # one sigma away
    off = negative_weight(20, 30, pts, 2.0, -1.0)
    assert off[8, 5] == pytest.approx(0.0) and off.min() >= 0 and off[0, 29] == pytest.approx(1.0)
    np.testing.assert_array_equal(negative_weight(5, 5, np.zeros((0, 2), np.float32), 2.0, 4.0), np.ones((5, 5)))
    with pytest.raises(ValueError, match="gain >= -1"):
        negative_weight(5, 5, pts, 2.0, -2.0)


def test_mean_probability_averages_the_members_probabilities() -> None:
    a = np.array([[0.0, 1000.0]], np.float32)
    b = np.array([[np.log(3.0), -1000.0]], np.float32)  # logistic = 0.75 and 0
    np.testing.assert_allclose(mean_probability([a, b]), [[0.625, 0.5]], atol=1e-6)
    np.testing.assert_allclose(mean_probability([a]), [[0.5, 1.0]], atol=1e-6)
    with pytest.raises(ValueError, match="one shape"):
        mean_probability([a, np.zeros((2, 2), np.float32)])
    with pytest.raises(ValueError, match="at least one member"):
        mean_probability([])


def test_recall_rule_takes_the_most_cautious_folder() -> None:
    lab_a = [(0.3, 1.0, 0.7), (0.5, 0.99, 0.8), (0.7, 0.95, 0.95)]
    lab_b = [(0.3, 0.99, 0.6), (0.5, 0.97, 0.9), (0.7, 0.9, 0.99)]
    assert recall_threshold([lab_a, lab_b], 0.97, 0.01) == 0.3  # lab b reaches 0.98 only at 0.3
    assert recall_threshold([lab_a, lab_b], 0.97, 0.0) == 0.5
    assert recall_threshold([lab_a], 0.97, 0.0) == 0.5
    assert recall_threshold([[(0.3, 0.5, 1.0), (0.6, 0.5, 1.0), (0.8, 0.4, 1.0)]], 0.97, 0.0) == 0.6  # best recall
    with pytest.raises(ValueError, match="at least one folder"):
        recall_threshold([], 0.97, 0.0)


def test_f1_rule_takes_the_best_mean_f1() -> None:
    lab_a = [(0.3, 1.0, 0.5), (0.5, 0.9, 0.9), (0.7, 0.5, 1.0)]
    lab_b = [(0.3, 1.0, 0.8), (0.5, 0.9, 0.9), (0.7, 0.8, 1.0)]
    thr, f1 = f1_threshold([lab_a, lab_b])
    assert thr == 0.5 and f1 == pytest.approx(0.9)


def test_set_reference_is_the_median_strongest_peak_of_the_photographs_with_one() -> None:
    assert set_reference([0.9, 0.7, 0.0, 0.8]) == pytest.approx(0.8)  # the photograph without a peak is left out
    assert set_reference([0.6]) == pytest.approx(0.6)
    with pytest.raises(ValueError, match="at least one photograph"):
        set_reference([0.0, 0.0])
