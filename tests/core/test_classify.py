"""Tests of calcimg.core.classify: one decision per candidate, the first reason in the documented order."""

from __future__ import annotations

import numpy as np
import pytest

from calcimg.core.classify import ACCEPTED, REJECTION_REASONS, decide, size_class

#: Facts of one candidate that passes every rule (area 10, width 3, contrast 8, excess 0.2, score 0.99).
GOOD = {
    "outside_field": False,
    "outside_body": False,
    "excluded": False,
    "marker": False,
    "area": 10.0,
    "width": 3.0,
    "on_outline": True,
    "contrast_k": 8.0,
    "relative_excess": 0.2,
    "score": 0.99,
}
LIMITS = {
    "min_area": 1.0,
    "max_area": 100.0,
    "ridge_max_width": 2.5,
    "ridge_elongation": 4.0,
    "min_contrast_k": 3.0,
    "min_relative_excess": 0.03,
    "min_score": 0.9,
}
#: Facts that make each reason apply on its own.
TRIGGERS = {
    "outside_field": {"outside_field": True},
    "outside_body": {"outside_body": True},
    "excluded_region": {"excluded": True},
    "marker": {"marker": True},
    "too_small": {"area": 0.5},
    "too_large": {"area": 150.0},
    "ridge": {"area": 40.0, "width": 2.0},  # elongation 40 / 2**2 = 10 > 4, width 2 <= 2.5, on an outline
    "low_contrast": {"contrast_k": 2.0},
    "faint": {"relative_excess": 0.01},
    "low_score": {"score": 0.5},
}


def _decide(candidates: list[dict]) -> list[str]:
    facts = {key: np.array([c[key] for c in candidates]) for key in GOOD}
    return decide(**facts, **LIMITS).tolist()


def _candidate(**changes) -> dict:
    return {**GOOD, **changes}


def test_good_candidate_is_accepted():
    """A candidate passing every rule is 'accepted'."""
    assert _decide([_candidate()]) == [ACCEPTED]


@pytest.mark.parametrize("reason", REJECTION_REASONS)
def test_each_reason_triggers_alone(reason):
    """Each reason's trigger, alone on an otherwise good candidate, gives exactly that reason."""
    assert _decide([_candidate(**TRIGGERS[reason])]) == [reason]


def test_every_reason_has_a_trigger():
    """The table of triggers covers REJECTION_REASONS exactly (a new reason needs a test)."""
    assert set(TRIGGERS) == set(REJECTION_REASONS)


@pytest.mark.parametrize("k", range(len(REJECTION_REASONS)))
def test_first_reason_in_order_wins(k):
    """With the triggers of reason k and of every later reason applied, reason k is reported."""
    changes: dict = {}
    for reason in reversed(REJECTION_REASONS[k:]):
        changes.update(TRIGGERS[reason])
    # too_small and too_large share 'area', and ridge sets it too: the area decides which of them applies first.
    expected = REJECTION_REASONS[k]
    if expected in ("too_large", "ridge"):
        changes["area"] = TRIGGERS[expected]["area"]
        changes["width"] = TRIGGERS["ridge"]["width"]
    assert _decide([_candidate(**changes)]) == [expected]


def test_vectorised_over_candidates():
    """Several candidates are decided independently in one call, in order."""
    candidates = [_candidate(**TRIGGERS[r]) for r in REJECTION_REASONS] + [_candidate()]
    assert _decide(candidates) == [*REJECTION_REASONS, ACCEPTED]


def test_ridge_needs_all_three_conditions():
    """Long and thin but off a bone edge, or wider than the limit, or not elongated enough: not a ridge."""
    assert _decide([_candidate(area=40.0, width=2.0, on_outline=False)]) == [ACCEPTED]
    assert _decide([_candidate(area=40.0, width=2.6)]) == [ACCEPTED]
    assert _decide([_candidate(area=16.0, width=2.0)]) == [ACCEPTED]  # elongation exactly 4 is not above 4
    assert _decide([_candidate(area=16.5, width=2.0)]) == ["ridge"]
    assert _decide([_candidate(area=40.0, width=2.5)]) == ["ridge"]  # width equal to the limit counts


def test_area_and_thresholds_boundaries_are_inclusive():
    """Area equal to min or max, contrast equal to min_contrast_k and excess equal to the minimum are accepted."""
    candidates = [
        _candidate(area=1.0),
        _candidate(area=100.0),
        _candidate(contrast_k=3.0),
        _candidate(relative_excess=0.03),
    ]
    assert _decide(candidates) == [ACCEPTED] * 4


def test_zero_width_is_infinitely_elongated():
    """A zero width (degenerate candidate) counts as elongated, so on an outline it is a ridge."""
    assert _decide([_candidate(width=0.0)]) == ["ridge"]


def test_no_candidates():
    """An empty input gives an empty array of str."""
    empty = {key: np.zeros(0, bool if isinstance(v, bool) else float) for key, v in GOOD.items()}
    result = decide(**empty, **LIMITS)
    assert result.shape == (0,) and result.dtype.kind == "U"


def test_size_class_boundaries():
    """A diameter equal to a limit belongs to the class above it."""
    limits = (1.0, 3.0, 8.0, 20.0)
    diameters = np.array([0.0, 0.999, 1.0, 2.999, 3.0, 7.99, 8.0, 19.9, 20.0, 100.0])
    assert size_class(diameters, limits).tolist() == [
        "punctate",
        "punctate",
        "small",
        "small",
        "medium",
        "medium",
        "large",
        "large",
        "mass",
        "mass",
    ]


def test_size_class_fewer_limits():
    """With two limits there are three classes: punctate, small, medium."""
    assert size_class(np.array([0.5, 2.0, 50.0]), (1.0, 3.0)).tolist() == ["punctate", "small", "medium"]


def test_a_lesion_is_reported_with_its_best_accepted_candidate():
    from calcimg.core.classify import lesion_evidence

    # Lesion 1: candidates 1 (0.95, own) and 2 (0.99, other visit); lesion 2: candidate 3 (rejected) only;
    # lesion 3: candidates 4 and 5 of equal score (the lower id wins); candidate 6 lies in no lesion.
    lesion_of_pixel = np.array([1, 1, 1, 2, 3, 3, 0])
    candidate_of_pixel = np.array([1, 2, 2, 3, 4, 5, 6])
    accepted = np.array([True, True, False, True, True, True])
    scores = np.array([0.95, 0.99, 0.5, 0.97, 0.97, 0.999])
    support = np.array(["own", "other_visit", "", "own", "other_visit", "own"], dtype=object)
    score, lesion_support = lesion_evidence(lesion_of_pixel, candidate_of_pixel, accepted, scores, support, 3)
    assert score[0] == 0.99 and np.isnan(score[1]) and score[2] == 0.97
    assert lesion_support.tolist() == ["other_visit", "", "own"]
    # Without the model (no scores) the support is still given.
    score, lesion_support = lesion_evidence(
        lesion_of_pixel, candidate_of_pixel, accepted, np.full(6, np.nan), support, 3
    )
    assert np.isnan(score).all() and lesion_support.tolist() == ["own", "", "own"]
