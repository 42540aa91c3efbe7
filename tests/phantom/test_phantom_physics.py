"""The rendered films behave like radiographs: dense is bright, markers saturate, storage follows the header."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pytest

from calcimg.phantom import PhantomConfig, make_pair
from calcimg.phantom.geometry import Tube, View, apply
from calcimg.phantom.pair import PhantomPair


def _ring(mask: np.ndarray, inner: int, outer: int) -> np.ndarray:
    k_in = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * inner + 1, 2 * inner + 1))
    k_out = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * outer + 1, 2 * outer + 1))
    m = mask.astype(np.uint8)
    return (cv2.dilate(m, k_out) > 0) & ~(cv2.dilate(m, k_in) > 0)


def test_lesions_brighter_than_their_surroundings() -> None:
    """Mean inside each soft-tissue lesion exceeds the mean of a ring around it (clear of other lesions and bone);
    lesions over bone (where cortex and trabeculae add structure) are brighter than their ring on the whole."""
    config = PhantomConfig(shape=(640, 512))
    checked, over_bone = 0, []
    for site in ("hand", "forearm", "knee", "pelvis"):
        for seed in range(3):
            pair = make_pair(seed, site, config)
            for visit in pair.visits:
                px = visit.radiograph.pixels.astype(np.float64)
                for lid in np.unique(visit.identity_labels)[1:]:
                    mask = visit.identity_labels == lid
                    if mask.sum() < 12:
                        continue
                    others = (visit.identity_labels > 0) & ~mask
                    near_others = cv2.dilate(others.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
                    ring = _ring(mask, 2, 5) & ~near_others & visit.masks["field"]
                    if ring.sum() < 10:
                        continue
                    excess = px[mask].mean() - px[ring].mean()
                    if visit.masks["bone"][mask | ring].any():
                        over_bone.append(excess / px[ring].std())
                        continue
                    assert excess > 0, (site, seed, visit.name, lid)
                    checked += 1
    assert checked >= 50
    assert len(over_bone) >= 10 and np.median(over_bone) > 0.5


def test_lesion_contrast_exceeds_noise(pair_of, small_config: PhantomConfig) -> None:
    """The excess attenuation of lesions over their ring is well above the noise of the ring on average."""
    ratios = []
    for seed in range(4):
        pair = pair_of(seed, "hand", small_config)
        px = pair.pre.radiograph.pixels.astype(np.float64)
        for lid in np.unique(pair.pre.identity_labels)[1:]:
            mask = pair.pre.identity_labels == lid
            ring = _ring(mask, 2, 4) & (pair.pre.identity_labels == 0)
            if mask.sum() >= 12 and ring.sum() >= 10:
                ratios.append((px[mask].mean() - px[ring].mean()) / max(px[ring].std(), 1.0))
    assert np.median(ratios) > 1.0


def test_cortex_brighter_than_marrow() -> None:
    """Across each long-bone shaft the cortical edges are brighter than the medullary centre."""
    pair = make_pair(4, "forearm", PhantomConfig(shape=(800, 560), p_edge_enhancement=0.0))
    visit = pair.pre
    view = View(visit.grid, visit.anat_to_det)
    full = (slice(0, visit.shape[0]), slice(0, visit.shape[1]))
    u, v = view.coords(full)
    px = visit.radiograph.pixels.astype(np.float64)
    clear = visit.masks["field"] & (visit.identity_labels == 0) & ~visit.masks["marker"]
    tested = 0
    for bone in pair.scene.bones:
        if not isinstance(bone, Tube) or bone.r_mid < 6:
            continue
        dx, dy = bone.p1[0] - bone.p0[0], bone.p1[1] - bone.p0[1]
        t = ((u - bone.p0[0]) * dx + (v - bone.p0[1]) * dy) / (dx * dx + dy * dy)
        rho = bone.rho(u, v)
        shaft = (t > 0.35) & (t < 0.65) & clear
        edge = shaft & (rho > bone.k_mid * 1.05) & (rho < 0.92)
        centre = shaft & (rho < 0.3)
        if edge.sum() < 50 or centre.sum() < 50:
            continue
        assert px[edge].mean() > px[centre].mean()
        tested += 1
    assert tested >= 2


def test_marker_is_the_brightest_object() -> None:
    """The lead letter saturates (at clinical resolution its strokes are many pixels wide)."""
    marked = 0
    config = PhantomConfig(spacing_mm=(0.4, 0.5))
    pairs = [make_pair(seed, site, config) for site in ("hand", "knee") for seed in range(3)]
    for pair in pairs:
        for visit in pair.visits:
            maxval = 2**visit.bits_stored - 1
            px = visit.radiograph.pixels
            letter = visit.masks["marker"]
            if not letter.any():
                continue
            marked += 1
            core = cv2.erode(letter.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
            assert np.median(px[core]) == maxval
            for lid in np.unique(visit.identity_labels)[1:]:
                assert px[visit.identity_labels == lid].mean() < maxval
            anatomy = visit.masks["tissue"] & visit.masks["field"]
            assert (px[anatomy] == maxval).mean() < 0.01
    assert marked >= 0.9 * 2 * len(pairs)


def test_stored_array_and_bits(small_pairs: list[PhantomPair]) -> None:
    photometrics = set()
    for pair in small_pairs:
        for visit in pair.visits:
            maxval = 2**visit.bits_stored - 1
            assert 10 <= visit.bits_stored <= 16
            assert visit.stored.dtype == np.uint16 and visit.radiograph.pixels.dtype == np.uint16
            assert int(visit.stored.max()) <= maxval
            if visit.photometric == "MONOCHROME1":
                np.testing.assert_array_equal(visit.stored, maxval - visit.radiograph.pixels)
            else:
                np.testing.assert_array_equal(visit.stored, visit.radiograph.pixels)
            photometrics.add(visit.photometric)
            # the display range is used: dense anatomy well above air
            assert np.percentile(visit.radiograph.pixels[visit.masks["tissue"]], 99) > 0.5 * maxval
    assert photometrics == {"MONOCHROME1", "MONOCHROME2"}


def test_radiograph_record(pair_of, small_config: PhantomConfig) -> None:
    pair = pair_of(0, "knee", small_config)
    r = pair.pre.radiograph
    assert r.spacing_mm == (pair.pre.spacing_mm, pair.pre.spacing_mm)
    assert r.spacing_source == "imager_pixel_spacing"
    assert r.path is None
    assert r.bits_stored == pair.pre.bits_stored
    assert r.content_hash == "sha256:" + hashlib.sha256(r.pixels.tobytes()).hexdigest()
    assert r.metadata["body_part"] == "KNEE" and r.metadata["modality"] == "DX"
    assert r.metadata["photometric"] == pair.pre.photometric


def test_air_is_dark_and_dense_is_bright(pair_of, small_config: PhantomConfig) -> None:
    pair = pair_of(1, "hand", small_config)
    v = pair.pre
    px = v.radiograph.pixels.astype(np.float64)
    air = ~cv2.dilate(v.masks["tissue"].astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    air &= v.masks["field"] & ~cv2.dilate(v.masks["marker"].astype(np.uint8), np.ones((25, 25), np.uint8)).astype(bool)
    soft = v.masks["tissue"] & ~v.masks["bone"] & (v.identity_labels == 0)
    bone = v.masks["bone"] & v.masks["field"]
    assert px[air].mean() < px[soft].mean() < px[bone].mean()
    assert px[air].mean() < 0.1 * (2**v.bits_stored - 1)


@pytest.mark.parametrize("black", [True, False])
def test_collimation_bands(black: bool) -> None:
    config = PhantomConfig(shape=(320, 256), collimation_sides=(0, 0, 0, 0, 1), p_black_collimation=float(black))
    pair = make_pair(11, "knee", config)
    for visit in pair.visits:
        coll = visit.acquisition["collimation"]
        assert coll["kind"] == ("black" if black else "white")
        outside = ~visit.masks["field"]
        assert outside.any() and set(coll["sides"]) <= {"top", "bottom", "left", "right"}
        px = visit.radiograph.pixels[outside]
        maxval = 2**visit.bits_stored - 1
        if black:
            assert (px == 0).all()
        else:
            far = ~cv2.dilate(visit.masks["field"].astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
            assert (visit.radiograph.pixels[far] >= 0.95 * maxval).mean() > 0.99
        for side in coll["sides"].values():
            assert abs(side["angle_deg"]) <= config.collimation_angle_deg
            assert config.collimation_mm[0] * 0.5 <= side["depth_mm"] <= config.collimation_mm[1]


def test_post_transform_within_limits_and_applied(small_pairs: list[PhantomPair]) -> None:
    config = PhantomConfig()
    moved = 0
    for pair in small_pairs:
        tr = pair.summary["transform"]
        assert abs(tr["rotation_deg"]) <= config.max_rotation_deg
        assert all(abs(s) <= config.max_shift_mm for s in tr["shift_mm"])
        assert abs(tr["magnification"] - 1) <= config.max_magnification
        assert pair.post.magnification / pair.pre.magnification == pytest.approx(tr["magnification"])
        matrix = np.array(tr["matrix"])
        pre_px_to_mm = np.linalg.inv(pair.pre.grid.mm_to_px())
        post_mm_to_px = pair.post.grid.mm_to_px()
        t = pair.lesions
        t = t[(t.area_pre_px >= 20) & (t.area_post_px >= 20) & ~t.touches]
        for row in t.itertuples():
            pre_mm = apply(pre_px_to_mm, np.array([row.pre_col, row.pre_row]))
            col, r = apply(post_mm_to_px @ matrix, pre_mm)
            # centroids of a shape scaled about its centre move a little when it grows or shrinks
            radius = np.sqrt(max(row.area_pre_px, row.area_post_px) / np.pi)
            tol = 1.0 + 0.35 * radius * abs(np.sqrt(row.factor) - 1) + 0.1 * radius
            assert np.hypot(col - row.post_col, r - row.post_row) < tol, (pair.seed, pair.site, row.lesion_id)
            moved += np.hypot(col - row.pre_col, r - row.pre_row) > 0.5
    assert moved > 20


def test_follow_up_is_reexposed(small_pairs: list[PhantomPair]) -> None:
    differs = 0
    for pair in small_pairs:
        a, b = pair.pre.acquisition, pair.post.acquisition
        differs += a["exposure"] != b["exposure"] and a["display"]["gamma"] != b["display"]["gamma"]
        assert pair.post.date > pair.pre.date
    assert differs == len(small_pairs)


def test_new_detector_changes_grid() -> None:
    config = PhantomConfig(p_new_detector=1.0, max_pixels=300_000)
    pair = make_pair(5, "hand", config)
    assert pair.summary["transform"]["new_detector"]
    assert pair.pre.shape[0] * pair.pre.shape[1] <= 300_000
    assert pair.pre.spacing_mm != pair.post.spacing_mm
