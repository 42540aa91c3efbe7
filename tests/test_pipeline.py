"""Tests of calcimg.pipeline: segment_image end to end on phantoms and synthetic disks, Params and read_params."""

from __future__ import annotations

import json
from dataclasses import replace

import cv2
import numpy as np
import pandas as pd
import pytest

from calcimg.errors import CalcimgError, ParameterError
from calcimg.model import PARAMS_SCHEMA_VERSION, Params, Radiograph
from calcimg.phantom import PhantomConfig, make_pair
from calcimg.phantom.writer import pair_seed
from calcimg.pipeline import (
    SegmentResult,
    _has_tissue_contrast,
    _marker_rejected,
    detect_candidates,
    edited_lesion_evidence,
    measure_lesions,
    read_params,
    segment_image,
    working_image,
)
from drawn_films import RULES_ONLY

#: (row, col, radius) of the synthetic disks.
DISKS = ((60, 60, 6), (60, 190, 10), (180, 90, 8), (190, 190, 4))


def _disk_image(ramp: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """256 x 256 uint16: 1000 + ramp * col / 255 + N(0, 10), four disks raised by 400; and their truth labels."""
    rng = np.random.default_rng(seed)
    rows, cols = np.ogrid[:256, :256]
    image = 1000 + rng.normal(0, 10, (256, 256)) + ramp * cols / 255.0
    truth = np.zeros((256, 256), np.int32)
    for k, (r0, c0, radius) in enumerate(DISKS, start=1):
        disk = (rows - r0) ** 2 + (cols - c0) ** 2 <= radius**2
        image[disk] += 400
        truth[disk] = k
    return np.clip(np.round(image), 0, 65535).astype(np.uint16), truth


def _radiograph(pixels: np.ndarray, spacing: float | None = 0.1) -> Radiograph:
    if spacing is None:
        return Radiograph(pixels, content_hash="sha256:test")
    return Radiograph(pixels, spacing_mm=(spacing, spacing), spacing_source="user", content_hash="sha256:test")


def _centroids(result: SegmentResult) -> np.ndarray:
    return result.lesions[["centroid_row", "centroid_col"]].to_numpy()


def _assert_finds_disks(result: SegmentResult, tolerance_px: float) -> None:
    """One lesion per disk, each centred within tolerance of its disk."""
    assert len(result.lesions) == len(DISKS)
    centroids = _centroids(result)
    nearest = set()
    for r0, c0, _ in DISKS:
        distances = np.hypot(centroids[:, 0] - r0, centroids[:, 1] - c0)
        assert distances.min() <= tolerance_px
        nearest.add(int(distances.argmin()))
    assert len(nearest) == len(DISKS)


@pytest.fixture(scope="module")
def phantom_result() -> tuple[Radiograph, SegmentResult]:
    """A 384 x 384 forearm phantom (seed 0) and its segmentation with default Params."""
    radiograph = make_pair(0, "forearm", PhantomConfig(shape=(384, 384))).pre.radiograph
    return radiograph, segment_image(radiograph)


@pytest.fixture(scope="module")
def ramp_disks() -> tuple[np.ndarray, np.ndarray, SegmentResult]:
    """The four disks on a 1000-level ramp (a tissue range for the marker and faint rules), spacing 0.1 mm."""
    pixels, truth = _disk_image(ramp=1000)
    return pixels, truth, segment_image(_radiograph(pixels), RULES_ONLY)


def test_phantom_labels_are_contiguous_int32(phantom_result):
    """labels: int32, the input's shape, ids exactly 1..N, N >= 2 on this phantom."""
    radiograph, result = phantom_result
    assert result.labels.dtype == np.int32
    assert result.labels.shape == radiograph.shape
    n = len(result.lesions)
    assert n >= 2
    assert np.array_equal(np.unique(result.labels), np.arange(n + 1))


def test_phantom_lesion_table_matches_labels(phantom_result):
    """One row per label; lesion_id = label, area_px = label pixel count, area_mm2 = area_px * spacing**2."""
    radiograph, result = phantom_result
    lesions = result.lesions
    n = len(lesions)
    assert lesions["lesion_id"].tolist() == list(range(1, n + 1))
    counts = np.bincount(result.labels.ravel(), minlength=n + 1)[1:]
    assert lesions["area_px"].tolist() == counts.tolist()
    row_mm, col_mm = radiograph.spacing_mm
    assert np.allclose(lesions["area_mm2"], lesions["area_px"] * row_mm * col_mm, rtol=1e-12)
    assert (lesions["size_class"].isin(["punctate", "small", "medium", "large", "mass"])).all()
    # A single film accepts on its own evidence; each lesion's score is that of its best accepted candidate.
    assert (lesions["support"] == "own").all()
    table = result.candidate_table
    for row in lesions.itertuples():
        under = np.unique(result.candidates[result.labels == row.lesion_id])
        best = table.loc[table["candidate_id"].isin(under) & (table["reason"] == "accepted"), "score"].max()
        assert row.score == best >= Params().min_score


def test_phantom_summary_is_complete_and_json_safe(phantom_result):
    """summary: strict JSON; version, full Params, input hash, spacing and its source, count and total area."""
    radiograph, result = phantom_result
    summary = result.summary
    text = json.dumps(summary, allow_nan=False)
    assert json.loads(text) == json.loads(json.dumps(summary, allow_nan=False))
    from calcimg import __version__

    assert summary["calcimg_version"] == __version__
    assert summary["params"] == Params().to_dict()
    assert summary["input"]["content_hash"] == radiograph.content_hash
    assert summary["input"]["content_hash"].startswith("sha256:")
    assert summary["spacing_mm"] == [float(s) for s in radiograph.spacing_mm]
    assert summary["spacing_source"] == "imager_pixel_spacing"
    assert summary["units"] == "mm"
    assert summary["count"] == len(result.lesions)
    assert summary["total_area_px"] == int(result.lesions["area_px"].sum())
    assert summary["total_area_mm2"] == pytest.approx(float(result.lesions["area_mm2"].sum()), rel=1e-12)
    assert sum(summary["rejected"].values()) == len(result.rejected)


def test_phantom_candidates_and_decisions_are_consistent(phantom_result):
    """Every candidate has one decision; rejected rows carry a known reason; accepted lesions lie on candidates."""
    from calcimg.core.classify import ACCEPTED, REJECTION_REASONS

    _, result = phantom_result
    table = result.candidate_table
    assert table["candidate_id"].tolist() == list(range(1, int(result.candidates.max()) + 1))
    assert set(table["reason"]) <= {ACCEPTED, *REJECTION_REASONS}
    assert set(result.rejected["reason"]) <= set(REJECTION_REASONS)
    assert len(result.rejected) == int((table["reason"] != ACCEPTED).sum())
    accepted_ids = table.loc[table["reason"] == ACCEPTED, "candidate_id"].to_numpy()
    on_accepted = np.isin(result.candidates, accepted_ids)
    # Lesions are the accepted candidates with their holes filled: a superset of those pixels, nothing else.
    assert not (on_accepted & (result.labels == 0)).any()
    assert not ((result.labels > 0) & (result.candidates > 0) & ~on_accepted).any()


def test_phantom_segmentation_is_deterministic(phantom_result):
    """The same radiograph and Params give the same labels and table."""
    radiograph, result = phantom_result
    again = segment_image(radiograph)
    assert np.array_equal(again.labels, result.labels)
    pd.testing.assert_frame_equal(again.lesions, result.lesions)


def test_ramp_disks_are_found(ramp_disks):
    """Four 400-level disks on a ramp with Gaussian noise are each found once, centred within 2 px."""
    _, truth, result = ramp_disks
    _assert_finds_disks(result, tolerance_px=2.0)
    assert len(result.rejected) == 0 or set(result.rejected["reason"]) <= {"outside_field"}
    # Each lesion covers its whole disk.
    for k in range(1, len(DISKS) + 1):
        assert (result.labels[truth == k] > 0).all()


def test_flat_disks_are_found():
    """An easy case: four disks (+400) on flat 1000 + N(0, 10), spacing 0.1 mm, the rules alone, all found."""
    pixels, _ = _disk_image(ramp=0)
    result = segment_image(_radiograph(pixels), RULES_ONLY)
    _assert_finds_disks(result, tolerance_px=1.0)


def test_flat_disk_areas_within_a_blur_ring_of_the_outline():
    """Each sharp disk's area is within a 1.5-pixel ring of its outline: the extent smoothing (sigma 1 px here) and
    the 10% edge fraction, chosen for tapering deposits, put a sharp edge about 1.3 sigma outside, never more."""
    pixels, truth = _disk_image(ramp=0)
    result = segment_image(_radiograph(pixels), RULES_ONLY)
    _assert_finds_disks(result, tolerance_px=1.0)
    for lesion in result.lesions.itertuples():
        inside = (result.labels == lesion.lesion_id) & (truth > 0)
        disk = np.bincount(truth[inside]).argmax()
        radius = DISKS[disk - 1][2]
        assert int((truth == disk).sum()) <= lesion.area_px <= np.pi * (radius + 1.5) ** 2


def test_flat_disk_areas_exact_without_smoothing():
    """With both smoothings off and the edge at half the peak, every sharp disk is segmented pixel-exactly: any
    area excess with the defaults comes from the smoothing and the edge fraction, not from the labelling. The
    learned score is off: unsmoothed, a flat disk in white noise has the profile of a noise blob (as bright at its
    rim as inside), which no blurred radiograph shows."""
    pixels, truth = _disk_image(ramp=0)
    params = Params(smoothing_mm=0.0, extent_smoothing_mm=0.0, edge_fraction=0.5, min_score=0.0)
    result = segment_image(_radiograph(pixels), params)
    _assert_finds_disks(result, tolerance_px=0.5)
    assert np.array_equal(result.labels > 0, truth > 0)


def test_uncalibrated_reports_pixels():
    """Without spacing: units 'px', spacing_source 'none', total_area_mm2 None, area_mm2 NaN, strict JSON."""
    pixels, _ = _disk_image(ramp=1000)
    result = segment_image(_radiograph(pixels, spacing=None))
    summary = result.summary
    assert summary["units"] == "px" and summary["spacing_source"] == "none"
    assert summary["spacing_mm"] is None and summary["total_area_mm2"] is None
    assert summary["fov_area_mm2"] is None
    _assert_finds_disks(result, tolerance_px=2.0)
    assert result.lesions["area_mm2"].isna().all()
    assert summary["total_area_px"] == int(result.lesions["area_px"].sum())
    json.dumps(summary, allow_nan=False)


def test_spacing_override_sets_user_source(ramp_disks):
    """spacing= on a calibrated Radiograph replaces its spacing and records spacing_source 'user'."""
    pixels, _, _ = ramp_disks
    radiograph = Radiograph(pixels, spacing_mm=(0.1, 0.1), spacing_source="file_resolution")
    result = segment_image(radiograph, spacing=0.2)
    assert result.summary["spacing_source"] == "user"
    assert result.summary["spacing_mm"] == [0.2, 0.2]
    assert result.radiograph.spacing_mm == (0.2, 0.2)
    assert radiograph.spacing_mm == (0.1, 0.1)  # the input is not modified


def test_areas_scale_with_spacing_squared():
    """Doubling the spacing while doubling every mm parameter (and quadrupling every mm^2 one) segments the same
    pixels, and every area_mm2 is exactly four times larger (spacings 0.125 and 0.25 are exact in binary)."""
    pixels, _ = _disk_image(ramp=1000)
    base = Params()
    doubled = replace(
        base,
        background_line_mm=2 * base.background_line_mm,
        background_radius_mm=2 * base.background_radius_mm,
        smoothing_mm=2 * base.smoothing_mm,
        extent_smoothing_mm=2 * base.extent_smoothing_mm,
        noise_window_mm=2 * base.noise_window_mm,
        ridge_max_width_mm=2 * base.ridge_max_width_mm,
        fov_margin_mm=2 * base.fov_margin_mm,
        marker_margin_mm=2 * base.marker_margin_mm,
        marker_core_mm=2 * base.marker_core_mm,
        min_area_mm2=4 * base.min_area_mm2,
        max_area_mm2=4 * base.max_area_mm2,
        size_classes_mm=tuple(2 * v for v in base.size_classes_mm),
        outline_min_area_mm2=4 * base.outline_min_area_mm2,
        outline_ring_mm=tuple(2 * v for v in base.outline_ring_mm),
        outline_reach_mm=2 * base.outline_reach_mm,
    )
    fine = segment_image(_radiograph(pixels, 0.125), base)
    coarse = segment_image(_radiograph(pixels, 0.25), doubled)
    assert len(fine.lesions) == 4
    assert np.array_equal(fine.labels, coarse.labels)
    assert np.array_equal(coarse.lesions["area_mm2"].to_numpy(), 4 * fine.lesions["area_mm2"].to_numpy())
    assert fine.lesions["size_class"].tolist() == coarse.lesions["size_class"].tolist()
    assert coarse.summary["total_area_mm2"] == pytest.approx(4 * fine.summary["total_area_mm2"], rel=1e-12)


def test_exclude_mask_removes_one_disk(ramp_disks):
    """An exclude mask over one disk drops that lesion and records it as 'excluded_region' in rejected."""
    pixels, truth, reference = ramp_disks
    exclude = np.zeros(pixels.shape, np.uint8)
    exclude[40:80, 170:210] = 1  # the disk at (60, 190)
    result = segment_image(_radiograph(pixels), exclude=exclude)
    assert len(result.lesions) == len(reference.lesions) - 1
    assert not (result.labels[truth == 2] > 0).any()
    excluded = result.rejected[result.rejected["reason"] == "excluded_region"]
    assert len(excluded) == 1
    assert excluded["centroid_row"].iloc[0] == pytest.approx(60, abs=2)
    assert excluded["centroid_col"].iloc[0] == pytest.approx(190, abs=2)
    assert result.summary["rejected"].get("excluded_region") == 1


def test_include_mask_keeps_only_inside(ramp_disks):
    """An include mask (a label image: any non-zero counts) around two disks keeps only those two."""
    pixels, truth, _ = ramp_disks
    include = np.zeros(pixels.shape, np.int32)
    include[:128, :128] = 7  # disk 1 at (60, 60)
    include[150:, 150:] = 3  # disk 4 at (190, 190)
    result = segment_image(_radiograph(pixels), include=include)
    assert len(result.lesions) == 2
    assert (result.labels[truth == 1] > 0).all() and (result.labels[truth == 4] > 0).all()
    assert (result.rejected["reason"] == "excluded_region").sum() == 2


def test_region_mask_of_wrong_shape_is_parameter_error(ramp_disks):
    """A mask whose shape differs from the image's raises ParameterError."""
    pixels, _, _ = ramp_disks
    with pytest.raises(ParameterError, match="exclude"):
        segment_image(_radiograph(pixels), exclude=np.zeros((10, 10), bool))


def test_params_round_trip_and_unknown_key():
    """Params.from_dict(to_dict()) is equal (also through JSON); an unknown key raises ValueError naming it."""
    assert Params.from_dict(Params().to_dict()) == Params()
    custom = Params(seed_k=7.5, size_classes_mm=(2, 4))
    assert Params.from_dict(json.loads(json.dumps(custom.to_dict()))) == custom
    with pytest.raises(ValueError, match="bogus_key"):
        Params.from_dict({"bogus_key": 1})


@pytest.mark.parametrize(
    "bad",
    [
        {"seed_k": 3.0, "grow_k": 4.0},
        {"background_line_mm": 0},
        {"background_radius_mm": 0},
        {"size_classes_mm": [3, 1]},
        {"outline_ring_mm": [2.0, 1.0]},
        {"outline_ring_mm": [1.0]},
        {"outline_reach_mm": -1},
        {"paired_piece_fraction": 1.5},
        {"paired_piece_fraction": -0.1},
        {"counterpart_min_area_mm2": -1},
        {"unmatched_min_score": 1.5},
        {"unmatched_min_score": -0.1},
        {"schema_version": 99},
    ],
)
def test_params_rejects_invalid_values(bad):
    """Invalid or newer-schema values raise ValueError."""
    with pytest.raises(ValueError):
        Params.from_dict(bad)


def test_params_of_schema_1_are_read_as_the_current_schema():
    """A schema-1 file (before background_radius_mm) takes the radius's default, and the Params record the schema
    that ran, not the file's."""
    values = Params().to_dict()
    del values["background_radius_mm"]
    values["schema_version"] = 1
    params = Params.from_dict(values)
    assert params.background_radius_mm == Params().background_radius_mm
    assert params.schema_version == PARAMS_SCHEMA_VERSION == 9


def test_read_params_round_trip_and_defaults(tmp_path):
    """read_params reads what to_dict wrote; missing keys take their defaults."""
    path = tmp_path / "p.json"
    path.write_text(json.dumps(Params(seed_k=8.0).to_dict()), encoding="utf-8")
    assert read_params(path) == Params(seed_k=8.0)
    path.write_text('{"grow_k": 3.0}', encoding="utf-8")
    assert read_params(path) == Params(grow_k=3.0)


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"unknown": 1}', '{"seed_k": -1}'])
def test_read_params_invalid_file_names_it(tmp_path, content):
    """Invalid JSON, a non-object, an unknown key or an invalid value raise ParameterError naming the file."""
    path = tmp_path / "broken_params.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ParameterError, match=r"broken_params\.json") as info:
        read_params(path)
    assert isinstance(info.value, CalcimgError)


def test_read_params_missing_file(tmp_path):
    """A missing file raises ParameterError naming it."""
    with pytest.raises(ParameterError, match=r"absent\.json"):
        read_params(tmp_path / "absent.json")


def test_working_image_conversions():
    """uint16 is kept (no copy), uint8 is scaled by 257, float is mapped linearly onto 0..65535."""
    u16 = np.array([[0, 65535]], np.uint16)
    image, record = working_image(u16)
    assert image is u16 and record == {"conversion": "none"}
    image, record = working_image(np.array([[0, 1, 255]], np.uint8))
    assert image.dtype == np.uint16 and image.tolist() == [[0, 257, 65535]]
    image, record = working_image(np.array([[-1.0, 0.0, 3.0, np.nan]], np.float32))
    assert image.tolist() == [[0, 16384, 65535, 0]] and record["conversion"] == "linear"
    image, _ = working_image(np.full((2, 2), np.nan, np.float32))
    assert image.tolist() == [[0, 0], [0, 0]]


def test_uint8_input_finds_the_disks():
    """A uint8 image (the ramp disks scaled into 0..255) gives the same four lesions."""
    pixels, _ = _disk_image(ramp=1000)
    scaled = np.round((pixels.astype(np.float64) - 900) / 8).clip(0, 255).astype(np.uint8)
    result = segment_image(_radiograph(scaled))
    assert result.summary["working_image"]["conversion"] == "uint8 x 257"
    _assert_finds_disks(result, tolerance_px=2.0)


def test_float32_input_matches_uint16(ramp_disks):
    """A float32 copy of the uint16 image finds the disks at the same places."""
    pixels, _, reference = ramp_disks
    result = segment_image(_radiograph(pixels.astype(np.float32) / 100))
    assert result.summary["working_image"]["conversion"] == "linear"
    assert result.labels.shape == pixels.shape
    _assert_finds_disks(result, tolerance_px=2.0)
    got, expected = _centroids(result), _centroids(reference)
    gaps = np.hypot(got[:, None, 0] - expected[None, :, 0], got[:, None, 1] - expected[None, :, 1])
    assert (gaps.min(axis=0) <= 1.0).all()


@pytest.mark.parametrize("value", [0, 1000, 65535])
def test_constant_image_has_no_lesions(value):
    """A constant image gives zero lesions, empty tables and a strict-JSON summary with zero totals."""
    result = segment_image(_radiograph(np.full((64, 64), value, np.uint16)))
    assert result.summary["count"] == 0 and result.summary["total_area_px"] == 0
    assert result.summary["total_area_mm2"] == 0.0
    assert len(result.lesions) == 0 and not result.labels.any()
    json.dumps(result.summary, allow_nan=False)


@pytest.mark.parametrize("shape", [(3, 3), (1, 1), (2, 40)])
def test_tiny_image_does_not_fail(shape):
    """Tiny images segment without an exception (and with nothing found)."""
    rng = np.random.default_rng(7)
    result = segment_image(_radiograph(rng.integers(0, 4000, shape).astype(np.uint16)))
    assert result.labels.shape == shape and result.labels.dtype == np.int32
    json.dumps(result.summary, allow_nan=False)


def test_segment_image_is_part_of_the_top_level_api():
    """``calcimg.segment_image`` and ``calcimg.Params`` are the documented entry points."""
    import calcimg

    assert calcimg.segment_image is segment_image
    assert calcimg.Params is Params


def test_decimated_background_stays_below_the_image_and_removes_short_or_narrow_deposits():
    """On fine pixels the background of the (smoothed) image is computed on a reduced copy: it never exceeds the
    image, keeps a plateau wider than its disk and longer than its line within 10%, and keeps neither a square
    shorter than the line (however wide: the 60-px one is wider than the disk), nor a long bar narrower than the
    disk (a sheet of calcinosis)."""
    import cv2

    from calcimg.pipeline import _background

    image = np.full((400, 400), 1000, np.uint16)
    image[20:180, 20:180] = 3000  # a 160-px plateau, wider than the 60-px disk, longer than the 120-px line
    image[220:280, 250:310] = 3000  # a 60-px square: in the disk opening, not in the line opening
    image[330:334, 20:380] = 3000  # a 4-px bar: in the line opening, not in the disk opening
    smoothed = cv2.GaussianBlur(image, (0, 0), 6.0)  # as segment_image smooths before the background
    background = _background(smoothed, line_px=120, n_orientations=12, radius_px=30, smooth_px=6.0)
    assert (background <= smoothed).all()
    assert background[100, 100] >= 0.9 * smoothed[100, 100]
    for row, col in ((250, 280), (332, 200)):
        assert background[row, col] - 1000 <= 0.1 * (int(smoothed[row, col]) - 1000)


def _mass_film() -> tuple[np.ndarray, np.ndarray]:
    """400 x 400 at 0.2 mm: 1000 + N(0, 10) and a 20 mm disk (+400, slightly blurred): wider than the 12 mm line of
    the background, so the line background holds it and only its rim rises above it; and the disk's mask."""
    rng = np.random.default_rng(6)
    rows, cols = np.ogrid[:400, :400]
    disk = (rows - 200) ** 2 + (cols - 200) ** 2 <= 50**2
    image = cv2.GaussianBlur(np.where(disk, 1400.0, 1000.0), (0, 0), 1.5) + rng.normal(0, 10, (400, 400))
    return np.clip(np.round(image), 0, 65535).astype(np.uint16), disk


def test_a_mass_wider_than_the_line_is_found_whole():
    """The mass channel (its default 50 mm lines) brings in the whole 20 mm disk as one lesion of about its area;
    without it (mass_line_mm 0, as in RULES_ONLY), what is found there is a part of the disk at most (its rim)."""
    pixels, disk = _mass_film()
    radiograph = _radiograph(pixels, spacing=0.2)
    result = segment_image(radiograph, replace(RULES_ONLY, mass_line_mm=Params().mass_line_mm))
    at_disk = result.labels[200, 200]
    assert at_disk > 0
    lesion = result.lesions.set_index("lesion_id").loc[at_disk]
    assert 0.85 * disk.sum() <= lesion["area_px"] <= 1.2 * disk.sum()
    assert (result.labels[disk] == at_disk).mean() >= 0.85
    without = segment_image(radiograph, RULES_ONLY)
    assert (without.labels[disk] > 0).mean() < 0.6
    # The thresholds the channel used are recorded (50 mm at 0.2 mm: 250 px; cells of 0.5 mm, 2.5 pixels, not
    # rounded down to 2), and that it was off.
    assert result.summary["thresholds"]["mass_channel"]["line_px"] == pytest.approx(250.0)
    assert result.summary["thresholds"]["mass_channel"]["cell_mm"] == pytest.approx(0.5)
    assert without.summary["thresholds"]["mass_channel"] is None


def test_phantom_films_have_tissue_contrast_and_a_flat_film_has_none():
    """Markers and the body's outline are looked for on every phantom film (hands, where bone texture makes the
    noise scale largest, included: with the zero-free noise scale and the earlier factor of 20 they were not), and
    not on a flat drawn film with noise alone."""
    for seed in range(3):
        pair = make_pair(seed, "hand", PhantomConfig(shape=(384, 384)))
        for visit in (pair.pre, pair.post):
            stage = detect_candidates(visit.radiograph)
            assert _has_tissue_contrast(stage.levels, stage.noise)
    pixels, _ = _disk_image(ramp=0)
    flat = detect_candidates(_radiograph(pixels), RULES_ONLY)
    assert not _has_tissue_contrast(flat.levels, flat.noise)


def test_a_clear_deposit_beside_a_marker_is_rejected_only_in_the_markers_core():
    """In a marker's zone but outside its core, a candidate with a score of at least marker_zone_min_score is kept
    (a deposit beside the lead letter); under it, without a score, or in the core, it is a marker."""
    params = Params()
    table = pd.DataFrame(
        {
            "marker_fraction": [1.0, 1.0, 1.0, 1.0, 0.1],
            "marker_core_fraction": [0.0, 0.0, 0.0, 0.5, 0.0],
            "score": [params.marker_zone_min_score, 0.99, np.nan, 1.0, 0.5],
            "flat_fraction": [0.0, 0.0, 0.0, 0.0, 0.0],
        }
    )
    assert _marker_rejected(table, params, 0.0).tolist() == [False, True, True, True, False]
    everywhere = replace(params, marker_zone_min_score=1.01)  # above any score: the whole zone, as before
    assert _marker_rejected(table, everywhere, 0.0).tolist() == [True, True, True, True, False]
    # A burned-in graphic is a marker wherever it lies, whatever its score.
    table["flat_fraction"] = [0.0, 0.0, 0.0, 0.0, params.marker_flat_fraction]
    assert _marker_rejected(table, params, 0.0).tolist() == [False, True, True, True, True]
    # Not on a film whose own field is flat in places (a lossy 8-bit export): there deposits flatten too.
    assert _marker_rejected(table, params, flat_pixel_share=0.05).tolist() == [False, True, True, True, False]


def test_a_burned_in_graphic_is_rejected_as_a_marker():
    """A flat square burned into a phantom's soft tissue (no noise, dimmer than bone, not saturated: no lead marker
    by brightness) is accepted by the score when the flatness rule is off, and rejected as a marker when it is on;
    the film's other candidates are decided alike."""
    radiograph = make_pair(11, "forearm", PhantomConfig(shape=(800, 800))).pre.radiograph
    pixels = radiograph.pixels.copy()
    square = (slice(243, 255), slice(444, 456))  # in the soft tissue beside the bones
    levels = detect_candidates(radiograph).levels
    pixels[square] = int(np.median(pixels[square]) + 0.5 * levels["range"])
    burned = replace(radiograph, pixels=pixels)
    decided = {}
    for name, params in (("off", Params(marker_flat_fraction=1.01)), ("on", Params())):
        stage = detect_candidates(burned, params)
        ids = np.unique(stage.candidates[square])
        (graphic,) = ids[ids > 0]
        assert stage.table.loc[graphic - 1, "flat_fraction"] >= Params().marker_flat_fraction
        decided[name] = stage.table["reason"].to_numpy().copy()
        decided[name + "_graphic"] = decided[name][graphic - 1]
    assert decided["off_graphic"] == "accepted"
    assert decided["on_graphic"] == "marker"
    assert (decided["off"] != decided["on"]).sum() == 1


def test_rejected_labels_are_the_rejected_candidates():
    """SegmentResult.rejected_labels keeps each rejected candidate's id where it lies and nothing else."""
    result = segment_image(make_pair(0, "forearm", PhantomConfig(shape=(384, 384))).pre.radiograph)
    rejected = result.rejected_labels()
    decided = dict(zip(result.candidate_table["candidate_id"], result.candidate_table["reason"], strict=True))
    assert rejected.dtype == np.int32 and len(result.rejected) > 0
    assert set(np.unique(rejected[rejected > 0]).tolist()) == set(result.rejected["candidate_id"].tolist())
    kept = result.candidates > 0
    expected = np.array([decided[int(c)] != "accepted" for c in result.candidates[kept]])
    np.testing.assert_array_equal(rejected[kept] > 0, expected)
    assert not rejected[~kept].any()


def test_outline_completion_only_adds_pixels_and_is_recorded():
    """On a phantom film, completing outlines against each lesion's own surroundings keeps every lesion and its id,
    only adds pixels, and the summary counts them; with ``outline_min_area_mm2`` 0 nothing is added."""
    visit = make_pair(pair_seed(8000, 7), "pelvis").pre  # tuning cohort 8000's pair 7, deposits on tissue slopes
    off = segment_image(visit.radiograph, Params(outline_min_area_mm2=0))
    on = segment_image(visit.radiograph)
    assert off.summary["outline_completion"] == {"lesions": 0, "pixels_added": 0}
    added = on.summary["outline_completion"]
    assert added["lesions"] >= 1 and added["pixels_added"] > 0
    assert np.array_equal(on.labels[off.labels > 0], off.labels[off.labels > 0])
    assert int((on.labels > 0).sum() - (off.labels > 0).sum()) == added["pixels_added"]
    assert on.lesions["lesion_id"].tolist() == off.lesions["lesion_id"].tolist()


def test_edited_lesion_evidence_keeps_the_segmentations_word_only_for_untouched_lesions(phantom_result):
    """A lesion holding no accepted candidate (a piece or a faint counterpart) keeps its recorded support while the
    reader leaves its pixels alone, and loses it once they change; other lesions read their best candidate."""
    radiograph, result = phantom_result
    assert len(result.lesions) >= 2
    stage = detect_candidates(radiograph)
    first = result.labels == 1
    table = result.candidate_table.copy()
    table.loc[np.isin(table["candidate_id"], np.unique(result.candidates[first])), "reason"] = "low_score"
    lesions = result.lesions.copy()
    lesions.loc[0, ["score", "support"]] = [0.5, "faint_counterpart"]
    before = replace(result, candidate_table=table, lesions=lesions)

    score, support = edited_lesion_evidence(stage, before, result.labels, result.lesions)
    assert (score[0], support[0]) == (0.5, "faint_counterpart")
    assert list(support[1:]) == list(result.lesions["support"].iloc[1:])

    edited = result.labels.copy()
    edited[np.argwhere(first)[0][0], np.argwhere(first)[0][1]] = 0  # one pixel less
    remeasured = measure_lesions(stage, edited)
    score, support = edited_lesion_evidence(stage, before, edited, remeasured)
    assert support[0] == "" and np.isnan(score[0])
