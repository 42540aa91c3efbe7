"""The truth is exact and self-consistent: label maps, per-lesion table, pair summary and categories."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.measure import label

from calcimg.phantom import PhantomConfig, categorise, make_pair
from calcimg.phantom.geometry import View
from calcimg.phantom.pair import PhantomPair


def test_identity_areas_equal_table(small_pairs: list[PhantomPair]) -> None:
    for pair in small_pairs:
        for visit in pair.visits:
            counts = np.bincount(visit.identity_labels.ravel(), minlength=len(pair.lesions) + 1)
            assert counts[1:].tolist() == pair.lesions[f"area_{visit.name}_px"].tolist()
            mm2 = pair.lesions[f"area_{visit.name}_mm2"].to_numpy()
            np.testing.assert_allclose(mm2, counts[1:] * visit.spacing_mm**2)
            anat = pair.lesions[f"area_{visit.name}_anat_mm2"].to_numpy()
            np.testing.assert_allclose(anat, mm2 / visit.magnification**2)


def test_component_map_is_8_connected_labelling(small_pairs: list[PhantomPair], canonical) -> None:
    for pair in small_pairs:
        for visit in pair.visits:
            expected = label(visit.identity_labels > 0, connectivity=2)
            np.testing.assert_array_equal(canonical(visit.component_labels), canonical(expected))
            assert visit.component_labels.dtype == np.int32
            assert visit.identity_labels.dtype == np.int32


def test_touching_lesions_share_components(small_pairs: list[PhantomPair]) -> None:
    for pair in small_pairs:
        for visit in pair.visits:
            ids, comps = visit.identity_labels, visit.component_labels
            for row in pair.lesions.itertuples():
                if getattr(row, f"area_{visit.name}_px") == 0:
                    continue
                own = np.unique(comps[ids == row.lesion_id])
                others = set(np.unique(ids[np.isin(comps, own)]).tolist()) - {row.lesion_id}
                if others:
                    assert row.touches, (pair.seed, pair.site, row.lesion_id)


def test_presence_follows_change(small_pairs: list[PhantomPair]) -> None:
    seen = set()
    for pair in small_pairs:
        t = pair.lesions
        seen.update(t["change"])
        resolved, new = t[t.change == "resolved"], t[t.change == "new"]
        assert (resolved.area_post_px == 0).all() and (resolved.area_pre_px > 0).all()
        assert (new.area_pre_px == 0).all() and (new.area_post_px > 0).all()
        for lid in resolved.lesion_id:
            assert not np.any(pair.post.identity_labels == lid)
        for lid in new.lesion_id:
            assert not np.any(pair.pre.identity_labels == lid)
        both = t[~t.change.isin(["new", "resolved"])]
        assert (both.area_pre_px > 0).all() and (both.area_post_px > 0).all()
        assert (t.area_pre_px > 0).any(), "every pair has a lesion at baseline"
    assert seen == {"stable", "grown", "shrunk", "resolved", "new"}


def test_area_ratio_follows_factor() -> None:
    """Grown/shrunk/stable lesions change area by their factor, up to rasterisation error."""
    config = PhantomConfig(shape=(640, 512), n_lesions=(6, 10), p_touching=0.0)
    checked = 0
    for seed in range(6):
        pair = make_pair(seed, "forearm", config)
        t = pair.lesions
        t = t[t.change.isin(["grown", "shrunk", "stable"]) & ~t.touches]
        for row in t.itertuples():
            smaller = min(row.area_pre_px, row.area_post_px)
            # rasterisation error of a mask is about its boundary length, ~ 3.5 sqrt(area) pixels at worst
            tolerance = 0.05 + 3.5 / np.sqrt(smaller)
            assert row.area_ratio == pytest.approx(row.factor, rel=tolerance), (seed, row.lesion_id, row.kind)
            checked += 1
    assert checked >= 15


def test_summary_totals_and_categories(small_pairs: list[PhantomPair]) -> None:
    categories = set()
    for pair in small_pairs:
        s, t = pair.summary, pair.lesions
        assert s["n_lesions"] == len(t)
        assert s["total_area_pre_px"] == t.area_pre_px.sum()
        assert s["total_area_post_px"] == t.area_post_px.sum()
        assert s["total_area_pre_mm2"] == pytest.approx(t.area_pre_mm2.sum())
        assert s["total_area_post_anat_mm2"] == pytest.approx(t.area_post_anat_mm2.sum())
        assert s["n_new"] == int((t.change == "new").sum())
        assert s["n_resolved"] == int((t.change == "resolved").sum())
        assert s["n_lesions_pre"] == int((t.area_pre_px > 0).sum())
        assert s["n_components_pre"] == pair.pre.component_labels.max()
        pre, post = t.area_pre_anat_mm2.sum(), t.area_post_anat_mm2.sum()
        pct = 100 * (post - pre) / pre
        assert s["pct_change"] == pytest.approx(pct)
        expected = "progression" if pct > 25 else "improvement" if pct < -25 else "stable"
        assert s["category"] == expected
        if post == 0:
            assert s["response"] == "complete_resolution"
        elif pct <= -20 and s["n_new"] == 0:
            assert s["response"] == "response"
        else:
            assert s["response"] == "no_response"
        categories.add(s["category"])
    assert categories == {"progression", "improvement", "stable"}


def test_categorise_boundaries() -> None:
    assert categorise(100.0, 125.0, 0) == (25.0, "stable", "no_response")
    assert categorise(100.0, 125.5, 0)[1] == "progression"
    assert categorise(100.0, 75.0, 0) == (-25.0, "stable", "response")
    assert categorise(100.0, 80.0, 0) == (-20.0, "stable", "response")
    assert categorise(100.0, 80.5, 0)[2] == "no_response"
    assert categorise(100.0, 50.0, 2) == (-50.0, "improvement", "no_response")
    assert categorise(100.0, 0.0, 0) == (-100.0, "improvement", "complete_resolution")
    assert categorise(0.0, 10.0, 1) == (None, "progression", "no_response")


def test_complete_resolution_trend() -> None:
    config = PhantomConfig(shape=(320, 256), trend_weights={"resolution": 1.0})
    pair = make_pair(3, "knee", config)
    assert pair.summary["response"] == "complete_resolution"
    assert pair.summary["total_area_post_px"] == 0
    assert not pair.post.identity_labels.any()
    assert pair.pre.identity_labels.any()


def test_soft_tissue_lesions_avoid_bone_and_over_bone_ones_overlap(small_pairs: list[PhantomPair]) -> None:
    """A lesion is placed either clear of bone or centred over it: never a sliver across a bone edge."""
    over = 0
    for pair in small_pairs:
        t = pair.lesions
        assert (t.over_bone == (t.bone_overlap >= 0.5)).all()
        t = t[~t.touches]
        assert ((t.bone_overlap == 0) | (t.bone_overlap > 0.3)).all(), (pair.seed, pair.site)
        over += int(t.over_bone.sum())
    assert over > 0


def test_lesions_lie_in_tissue_and_exposed_field(small_pairs: list[PhantomPair]) -> None:
    for pair in small_pairs:
        for visit in pair.visits:
            lesion = visit.identity_labels > 0
            assert visit.masks["tissue"][lesion].all()
            assert visit.masks["field"][lesion].all()
            assert not (visit.masks["marker"] & lesion).any()


def test_centroids_in_mm_match_pixels(pair_of) -> None:
    pair = pair_of(1, "hand")
    s = pair.pre.spacing_mm
    rows, cols = pair.pre.shape
    t = pair.lesions[pair.lesions.area_pre_px > 0]
    np.testing.assert_allclose(t.centroid_x_mm, (t.pre_col + 0.5 - cols / 2) * s / pair.pre.magnification)
    np.testing.assert_allclose(t.centroid_y_mm, (t.pre_row + 0.5 - rows / 2) * s / pair.pre.magnification)


def test_truth_masks_use_pixel_centre_rule(pair_of) -> None:
    """A lesion's mask is exactly the pixels whose centre lies inside one of its parts."""
    pair = pair_of(2, "forearm")
    for visit in pair.visits:
        view = View(visit.grid, visit.anat_to_det)
        full = (slice(0, visit.shape[0]), slice(0, visit.shape[1]))
        u, v = view.coords(full)
        for les in pair.lesion_objects:
            parts = les.geometry(visit.name)
            if parts is None:
                continue
            inside = np.min([p.rho(u, v) for p in parts], axis=0) < 1
            got = visit.identity_labels == les.lesion_id
            # overlaps go to the lower id; otherwise the mask is the geometry
            assert not (got & ~inside).any()
            lower = (visit.identity_labels > 0) & (visit.identity_labels < les.lesion_id)
            np.testing.assert_array_equal(got, inside & ~lower)


def test_small_config_is_respected(small_config: PhantomConfig) -> None:
    pair = make_pair(0, "pelvis", small_config)
    assert pair.pre.shape == pair.post.shape == (320, 256)


def test_summary_is_json_safe(small_pairs: list[PhantomPair]) -> None:
    import json

    for pair in small_pairs[:6]:
        text = json.dumps(pair.summary, allow_nan=False)
        assert json.loads(text)["seed"] == pair.seed
