"""Tests of calcimg.core.scoring: found at 20% coverage, false positives within a tolerance, Dice."""

from __future__ import annotations

import numpy as np
import pytest

from calcimg.core.scoring import score_segmentation


def _truth_bar() -> np.ndarray:
    """One truth lesion of 10 pixels (2 x 5) in a 20 x 20 image."""
    truth = np.zeros((20, 20), np.int32)
    truth[5:7, 5:10] = 1
    return truth


@pytest.mark.parametrize(("covered", "found"), [(1, False), (2, True), (3, True)])
def test_found_at_exactly_20_percent(covered, found):
    """A 10-pixel lesion is found with 2 predicted pixels (exactly 20%), not with 1."""
    truth = _truth_bar()
    predicted = np.zeros_like(truth)
    predicted[5, 5 : 5 + covered] = 1
    score = score_segmentation(truth, predicted, fp_tolerance_px=1)
    assert score["found"] == {1: found}
    assert score["truth_area_px"] == {1: 10}
    assert score["false_positives"] == 0


def test_found_fraction_parameter():
    """found_fraction changes the bar: 3 of 15 pixels is 20%, short of 25%."""
    truth = np.zeros((10, 10), np.int32)
    truth[2:5, 2:7] = 4
    predicted = np.zeros_like(truth)
    predicted[2, 2:5] = 9
    assert score_segmentation(truth, predicted, 1)["found"] == {4: True}
    assert score_segmentation(truth, predicted, 1, found_fraction=0.25)["found"] == {4: False}


def test_found_counts_any_predicted_label():
    """Coverage is by predicted pixels, whatever their ids: two predictions together reach 20%."""
    truth = _truth_bar()
    predicted = np.zeros_like(truth)
    predicted[5, 5] = 1
    predicted[6, 9] = 2
    assert score_segmentation(truth, predicted, 0)["found"] == {1: True}


@pytest.mark.parametrize(("gap", "is_fp"), [(1, False), (2, False), (3, True)])
def test_false_positive_tolerance_along_axis(gap, is_fp):
    """A prediction `gap` pixels right of the lesion is a false positive only beyond the tolerance (2 px)."""
    truth = _truth_bar()
    predicted = np.zeros_like(truth)
    predicted[5, 9 + gap] = 1
    score = score_segmentation(truth, predicted, fp_tolerance_px=2)
    assert score["false_positives"] == int(is_fp)
    assert score["n_predicted"] == 1


def test_zero_tolerance_needs_overlap():
    """With tolerance 0 a prediction must overlap the truth; an adjacent one is a false positive."""
    truth = _truth_bar()
    predicted = np.zeros_like(truth)
    predicted[5, 10] = 1
    predicted[6, 9:11] = 2
    score = score_segmentation(truth, predicted, fp_tolerance_px=0)
    assert score["false_positives"] == 1 and score["n_predicted"] == 2


@pytest.mark.parametrize(("offset", "tolerance"), [((0, 2), 1.5), ((1, 2), 2.0)])
def test_false_positive_uses_euclidean_distance(offset, tolerance):
    """A prediction whose distance to the nearest truth pixel exceeds the tolerance is a false positive."""
    truth = np.zeros((15, 15), np.int32)
    truth[7, 7] = 1
    predicted = np.zeros_like(truth)
    predicted[7 + offset[0], 7 + offset[1]] = 1
    assert np.hypot(*offset) > tolerance
    assert score_segmentation(truth, predicted, fp_tolerance_px=tolerance)["false_positives"] == 1


def test_totals_and_dice():
    """Totals count pixels; Dice = 2 |A and B| / (|A| + |B|); the docstring example's values."""
    truth = np.zeros((10, 10), int)
    truth[2:4, 2:4] = 1
    truth[7, 7] = 2
    predicted = np.zeros((10, 10), int)
    predicted[2:4, 2:5] = 1
    predicted[0, 9] = 2
    score = score_segmentation(truth, predicted, fp_tolerance_px=1)
    assert score["found"] == {1: True, 2: False}
    assert score["false_positives"] == 1 and score["n_predicted"] == 2
    assert score["truth_total_px"] == 5 and score["predicted_total_px"] == 7
    assert score["dice"] == pytest.approx(2 * 4 / 12)


def test_empty_images():
    """No truth and no prediction: nothing found, no false positive, Dice 1."""
    empty = np.zeros((5, 5), np.int32)
    score = score_segmentation(empty, empty, fp_tolerance_px=1)
    assert score["found"] == {} and score["false_positives"] == 0 and score["dice"] == 1.0


def test_prediction_without_truth_is_all_false_positives():
    """With no truth every predicted lesion is a false positive and Dice is 0."""
    predicted = np.zeros((8, 8), np.int32)
    predicted[1, 1] = 1
    predicted[5:7, 5:7] = 2
    score = score_segmentation(np.zeros_like(predicted), predicted, fp_tolerance_px=3)
    assert score["false_positives"] == 2 and score["dice"] == 0.0


def test_outline_ratio_counts_the_whole_of_each_overlapping_prediction():
    """The outline ratio of a truth lesion is the area of the predicted lesions overlapping it (all of each, also
    what lies outside it) over its own area; 0 for a lesion nothing overlaps."""
    truth = _truth_bar()  # 10 px at rows 5-6, cols 5-9
    truth[12:14, 5:7] = 2  # 4 px
    truth[17, 17] = 3  # missed
    predicted = np.zeros_like(truth)
    predicted[5:7, 5:8] = 1  # 6 px inside lesion 1 ...
    predicted[5:7, 8:12] = 2  # ... and 8 px, 4 inside and 4 beyond its edge
    predicted[11:15, 5:7] = 3  # 8 px over lesion 2 (4 px) and its surroundings
    score = score_segmentation(truth, predicted, fp_tolerance_px=1)
    assert score["outline_ratio"] == {1: pytest.approx(14 / 10), 2: pytest.approx(8 / 4), 3: 0.0}
    inside = np.where(truth == 1, 1, 0)
    inside[5, 9] = 0
    assert score_segmentation(truth, inside, fp_tolerance_px=1)["outline_ratio"][1] == pytest.approx(0.9)
