"""Lesion matching between visits and the pair categories, on small literal label maps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from calcimg.core.matching import categorise, match_lesions, pair_counts
from calcimg.core.registration import Registration

SPACING = 0.5  # mm per pixel: a pixel is 0.25 mm^2


def table(labels: np.ndarray, ids: list[int] | None = None) -> pd.DataFrame:
    """A lesion table as segment_image gives it (lesion_id, area_mm2, centroids in pixels)."""
    ids = ids if ids is not None else [int(v) for v in np.unique(labels) if v > 0]
    rows = []
    for lesion_id in ids:
        rr, cc = np.nonzero(labels == lesion_id)
        rows.append(
            {
                "lesion_id": lesion_id,
                "area_mm2": rr.size * SPACING**2,
                "centroid_row": rr.mean(),
                "centroid_col": cc.mean(),
            }
        )
    return pd.DataFrame(rows)


@pytest.fixture
def scene() -> tuple[np.ndarray, np.ndarray]:
    pre = np.zeros((20, 30), np.int32)
    post = np.zeros((20, 30), np.int32)
    pre[1:4, 1:4] = 1  # stable
    post[1:4, 1:4] = 1
    pre[1:4, 6:9] = 2  # grown: 9 -> 16 px
    post[1:5, 6:10] = 2
    pre[1:5, 12:16] = 3  # shrunk: 16 -> 4 px
    post[2:4, 13:15] = 3
    pre[1:3, 22:24] = 4  # resolved (more than 2 mm from every follow-up lesion)
    pre[7:11, 6:13] = 5  # splits into post 5 and 6: 28 -> 24 px (stable)
    post[7:11, 6:9] = 5
    post[7:11, 10:13] = 6
    pre[13:16, 1:4] = 6  # pre 6 and 7 merge into post 7: 18 -> 45 px (grown)
    pre[13:16, 5:8] = 7
    post[12:17, 0:9] = 7
    pre[18, 20] = 8  # punctate, moved 3 px (1.5 mm) by registration error: no overlap
    post[18, 23] = 8
    post[16:18, 27:29] = 9  # new
    return pre, post


def by_lesion(matches: pd.DataFrame) -> dict[tuple[str, int], pd.Series]:
    return {(row.visit, row.lesion_id): row for row in matches.itertuples()}


def test_every_change_class(scene) -> None:
    pre, post = scene
    matches = match_lesions(table(pre), table(post), pre, post, distance_mm=2.0, pre_spacing_mm=SPACING)
    rows = by_lesion(matches)
    expected = {
        ("pre", 1): ("stable", "1"),
        ("post", 1): ("stable", "1"),
        ("pre", 2): ("grown", "2"),
        ("pre", 3): ("shrunk", "3"),
        ("pre", 4): ("resolved", ""),
        ("pre", 5): ("stable", "5;6"),
        ("post", 5): ("stable", "5"),
        ("post", 6): ("stable", "5"),
        ("pre", 6): ("grown", "7"),
        ("pre", 7): ("grown", "7"),
        ("post", 7): ("grown", "6;7"),
        ("pre", 8): ("stable", "8"),
        ("post", 9): ("new", ""),
    }
    for key, (change, matched) in expected.items():
        assert (rows[key].change_class, rows[key].matched_ids) == (change, matched), key
    assert len(matches) == 8 + 8
    assert list(matches["visit"]) == ["pre"] * 8 + ["post"] * 8
    # one group per split / merge
    assert rows[("post", 5)].group_id == rows[("post", 6)].group_id == rows[("pre", 5)].group_id
    assert rows[("pre", 6)].group_id == rows[("pre", 7)].group_id == rows[("post", 7)].group_id
    assert matches["group_id"].nunique() == 8
    # group areas in mm^2 as measured by each visit
    merge = rows[("post", 7)]
    assert merge.group_area_pre_mm2 == pytest.approx(18 * 0.25)
    assert merge.group_area_post_mm2 == pytest.approx(45 * 0.25)
    assert merge.area_change_mm2 == pytest.approx(27 * 0.25)
    assert merge.area_change_pct == pytest.approx(150.0)
    assert rows[("pre", 3)].area_change_pct == pytest.approx(-75.0)
    assert np.isnan(rows[("post", 9)].area_change_pct)
    assert rows[("pre", 4)].group_area_post_mm2 == 0.0
    assert rows[("pre", 8)].matched_by == "distance"
    assert rows[("pre", 1)].matched_by == "overlap"
    assert pair_counts(matches) == {
        "new": 1,
        "resolved": 1,
        "grown": 2,
        "shrunk": 1,
        "stable": 3,
        "outside_field": 0,
    }


def test_distance_criterion(scene) -> None:
    pre, post = scene
    near = match_lesions(table(pre), table(post), pre, post, distance_mm=2.0, pre_spacing_mm=SPACING)
    far = match_lesions(table(pre), table(post), pre, post, distance_mm=1.0, pre_spacing_mm=SPACING)
    assert by_lesion(near)[("pre", 8)].change_class == "stable"
    assert by_lesion(far)[("pre", 8)].change_class == "resolved"
    assert by_lesion(far)[("post", 8)].change_class == "new"
    # uncalibrated: the distance is taken at the nominal 0.15 mm per pixel (3 px = 0.45 mm)
    uncal = match_lesions(table(pre), table(post), pre, post, distance_mm=0.5, pre_spacing_mm=None)
    assert by_lesion(uncal)[("pre", 8)].change_class == "stable"


def test_a_fragment_links_to_the_lesion_whose_outline_is_near() -> None:
    """A follow-up fragment of a large deposit, 1.5 mm from its outline but 6 mm from its centroid, is part of the
    deposit's group, not a new lesion; 2.5 mm from the outline it is new."""
    pre = np.zeros((20, 40), np.int32)
    post = np.zeros((20, 40), np.int32)
    pre[5:15, 5:17] = 1  # a 6 x 5 mm deposit, centroid at column 10.5
    post[5:15, 5:15] = 1  # it shrinks ...
    post[9:11, 19:21] = 2  # ... and leaves a fragment: 3 px (1.5 mm) from its outline, 9 px from its centroid
    post[9:11, 34:36] = 3  # 18 px (9 mm) away: new
    rows = by_lesion(match_lesions(table(pre), table(post), pre, post, distance_mm=2.0, pre_spacing_mm=SPACING))
    assert rows[("post", 2)].matched_ids == "1"
    assert rows[("post", 2)].matched_by == "distance"
    assert rows[("post", 2)].group_id == rows[("post", 1)].group_id == rows[("pre", 1)].group_id
    assert rows[("post", 3)].change_class == "new"
    narrow = by_lesion(match_lesions(table(pre), table(post), pre, post, distance_mm=1.0, pre_spacing_mm=SPACING))
    assert narrow[("post", 2)].change_class == "new"


def test_the_distance_link_goes_to_the_nearest_lesion_only() -> None:
    pre = np.zeros((10, 20), np.int32)
    post = np.zeros((10, 20), np.int32)
    pre[5, 5] = 1
    pre[5, 11] = 2
    post[5, 11] = 2  # overlaps pre 2
    post[5, 7] = 1  # overlaps nothing; 2 px from pre 1, 4 px from pre 2: both within 2.5 mm, linked to pre 1 only
    matches = match_lesions(table(pre), table(post), pre, post, distance_mm=2.5, pre_spacing_mm=SPACING)
    rows = by_lesion(matches)
    assert rows[("post", 1)].matched_ids == "1"
    assert rows[("pre", 2)].matched_ids == "2"
    assert rows[("pre", 1)].group_id != rows[("pre", 2)].group_id
    # a lone lesion reaches out too: pre 1 and post 1 link each other, 2 px apart
    assert rows[("pre", 1)].matched_ids == "1"


def test_magnification_correction() -> None:
    pre = np.zeros((30, 30), np.int32)
    post = np.zeros((30, 30), np.int32)
    pre[5:15, 5:15] = 1  # 100 px
    post[5:16, 5:16] = 1  # 121 px: +21%, or nothing once a 1.1x magnification is removed
    plain = match_lesions(table(pre), table(post), pre, post, pre_spacing_mm=SPACING)
    corrected = match_lesions(table(pre), table(post), pre, post, pre_spacing_mm=SPACING, post_area_scale=1.1**2)
    assert by_lesion(plain)[("pre", 1)].change_class == "grown"
    assert by_lesion(corrected)[("pre", 1)].change_class == "stable"
    assert by_lesion(corrected)[("post", 1)].area_mm2 == pytest.approx(100 * 0.25)
    assert by_lesion(corrected)[("pre", 1)].area_change_pct == pytest.approx(0.0, abs=1e-9)


def test_change_band() -> None:
    pre = np.zeros((30, 30), np.int32)
    post = np.zeros((30, 30), np.int32)
    pre[5:15, 5:15] = 1
    post[5:15, 5:16] = 1  # +10%
    narrow = match_lesions(table(pre), table(post), pre, post, pre_spacing_mm=SPACING, change_band=0.05)
    wide = match_lesions(table(pre), table(post), pre, post, pre_spacing_mm=SPACING, change_band=0.2)
    assert by_lesion(narrow)[("pre", 1)].change_class == "grown"
    assert by_lesion(wide)[("pre", 1)].change_class == "stable"


def test_a_graze_does_not_link_neighbours() -> None:
    pre = np.zeros((20, 40), np.int32)
    post = np.zeros((20, 40), np.int32)
    pre[5:15, 5:15] = 1
    post[5:15, 14:24] = 1  # shares one column (10% of either)
    linked = match_lesions(table(pre), table(post), pre, post, pre_spacing_mm=SPACING)
    apart = match_lesions(table(pre), table(post), pre, post, pre_spacing_mm=SPACING, min_overlap_fraction=0.2)
    assert by_lesion(linked)[("pre", 1)].change_class == "stable"
    assert by_lesion(apart)[("pre", 1)].change_class == "resolved"
    assert by_lesion(apart)[("post", 1)].change_class == "new"


def test_centroids_from_the_registration() -> None:
    pre = np.zeros((20, 20), np.int32)
    pre[10, 10] = 1
    post = np.zeros((20, 20), np.int32)
    post[12, 9] = 4  # in the follow-up's own pixels
    shift = Registration(np.array([[1.0, 0, 2], [0, 1, -1]]), 0.0, 1.0, (0.0, 0.0), "similarity", 1.0, 1.0, True)
    lost = np.zeros_like(pre)  # nearest-neighbour warping dropped the punctate lesion
    matches = match_lesions(
        table(pre), table(post), pre, lost, distance_mm=1.0, pre_spacing_mm=SPACING, registration=shift
    )
    rows = by_lesion(matches)
    assert rows[("post", 4)].matched_ids == "1"
    assert (rows[("post", 4)].centroid_row_pre, rows[("post", 4)].centroid_col_pre) == (11.0, 11.0)
    without = match_lesions(table(pre), table(post), pre, lost, distance_mm=1.0, pre_spacing_mm=SPACING)
    assert by_lesion(without)[("post", 4)].change_class == "new"


def test_outside_the_other_field() -> None:
    pre = np.zeros((20, 20), np.int32)
    post = np.zeros((20, 20), np.int32)
    pre[2:4, 2:4] = 1  # outside the follow-up's field
    pre[10:12, 10:12] = 2  # inside: truly resolved
    post[16:18, 16:18] = 3  # outside the baseline's field
    post_field = np.ones((20, 20), bool)
    post_field[:6, :] = False
    pre_field = np.ones((20, 20), bool)
    pre_field[15:, 15:] = False
    matches = match_lesions(
        table(pre),
        table(post),
        pre,
        post,
        pre_spacing_mm=SPACING,
        pre_field=pre_field,
        post_field_in_pre=post_field,
    )
    rows = by_lesion(matches)
    assert rows[("pre", 1)].change_class == "outside_field"
    assert rows[("pre", 2)].change_class == "resolved"
    assert rows[("post", 3)].change_class == "outside_field"
    counts = pair_counts(matches)
    assert (counts["resolved"], counts["new"], counts["outside_field"]) == (1, 0, 2)


def test_no_lesions() -> None:
    empty = pd.DataFrame({"lesion_id": [], "area_mm2": [], "centroid_row": [], "centroid_col": []})
    labels = np.zeros((5, 5), np.int32)
    matches = match_lesions(empty, empty, labels, labels, pre_spacing_mm=SPACING)
    assert len(matches) == 0
    assert "change_class" in matches.columns
    assert pair_counts(matches) == dict.fromkeys(("new", "resolved", "grown", "shrunk", "stable", "outside_field"), 0)


def test_label_maps_must_agree() -> None:
    with pytest.raises(ValueError, match="shape"):
        match_lesions(
            table(np.ones((2, 2), np.int32)),
            table(np.ones((3, 3), np.int32)),
            np.ones((2, 2), np.int32),
            np.ones((3, 3), np.int32),
            pre_spacing_mm=SPACING,
        )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((100.0, 70.0, 0), (-30.0, "improvement", "response")),
        ((100.0, 70.0, 1), (-30.0, "improvement", "no_response")),
        ((100.0, 125.0, 0), (25.0, "stable", "no_response")),
        ((100.0, 75.0, 0), (-25.0, "stable", "response")),
        ((100.0, 80.0, 0), (-20.0, "stable", "response")),
        ((100.0, 0.0, 0), (-100.0, "improvement", "complete_resolution")),
        ((0.0, 10.0, 1), (None, "progression", "no_response")),
        ((0.0, 0.0, 0), (None, "stable", "no_response")),
    ],
)
def test_categorise(args, expected) -> None:
    assert categorise(*args) == expected


def test_categorise_thresholds() -> None:
    assert categorise(100.0, 125.5, 0)[1] == "progression"
    assert categorise(100.0, 80.5, 0)[2] == "no_response"
    assert categorise(100.0, 115.0, 0, progression_pct=10.0)[1] == "progression"
    assert categorise(100.0, 85.0, 0, response_pct=10.0)[2] == "response"


def test_the_phantom_uses_the_same_categorise() -> None:
    from calcimg.phantom import categorise as phantom_categorise
    from calcimg.phantom.pair import PROGRESSION_PCT, RESPONSE_PCT

    assert phantom_categorise is categorise
    assert (PROGRESSION_PCT, RESPONSE_PCT) == (25.0, 20.0)


def test_grains_of_a_cluster_that_the_follow_up_shows_fewer_of_join_its_group() -> None:
    """Four baseline grains, one of them found again at follow-up: with cluster_distance_mm the three others (4 to
    5 px, 2 to 2.5 mm, from a grain of the chain, and beyond the 2 mm match distance of the follow-up grain) join
    the group, which shrank, instead of being called resolved; a grain 12 mm from the chain still resolves. Off
    (0), all three are resolved, as before."""
    pre = np.zeros((20, 60), np.int32)
    post = np.zeros((20, 60), np.int32)
    pre[8:10, 4:6] = 1
    post[8:10, 4:6] = 1  # found again
    pre[8:10, 10:12] = 2  # 5 px (2.5 mm) from grain 1 and from the follow-up grain
    pre[8:10, 16:18] = 3  # 5 px from grain 2 only: joins through it
    pre[13:15, 16:18] = 4  # 4 px below grain 3
    pre[8:10, 42:44] = 5  # 25 px (12.5 mm) from the chain: resolved
    joined = by_lesion(
        match_lesions(table(pre), table(post), pre, post, pre_spacing_mm=SPACING, cluster_distance_mm=2.5)
    )
    group = joined[("pre", 1)].group_id
    for grain in (2, 3, 4):
        assert joined[("pre", grain)].group_id == group
        assert joined[("pre", grain)].matched_by == "cluster"
        assert joined[("pre", grain)].change_class == "shrunk"
    assert joined[("pre", 1)].group_area_pre_mm2 == 16 * SPACING**2
    assert joined[("pre", 5)].change_class == "resolved"
    separate = by_lesion(match_lesions(table(pre), table(post), pre, post, pre_spacing_mm=SPACING))
    assert [separate[("pre", grain)].change_class for grain in (2, 3, 4, 5)] == ["resolved"] * 4


def test_a_new_grain_beside_a_persisting_one_joins_it_only_within_the_cluster_distance() -> None:
    """The same on the follow-up side (match distance 1 mm, cluster distance 2.5 mm): a lone follow-up lesion 2 mm
    from a matched one joins its group (grown); one 5 mm from the nearest of them is new."""
    pre = np.zeros((20, 40), np.int32)
    post = np.zeros((20, 40), np.int32)
    pre[8:10, 4:6] = 1
    post[8:10, 4:6] = 1
    post[8:10, 9:11] = 2  # 4 px (2 mm) from post 1 and from pre 1: beyond the 1 mm match distance
    post[8:10, 20:22] = 3  # 10 px (5 mm) from post 2
    rows = by_lesion(
        match_lesions(table(pre), table(post), pre, post, pre_spacing_mm=SPACING, distance_mm=1.0,
                      cluster_distance_mm=2.5)
    )  # fmt: skip
    assert rows[("post", 2)].matched_by == "cluster"
    assert rows[("post", 2)].change_class == "grown"
    assert rows[("post", 3)].change_class == "new"
