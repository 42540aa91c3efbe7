"""Tests of calcimg.core.threshold: the noise model, per-pixel thresholds and the local noise scale."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from calcimg.core.threshold import (
    NoiseModel,
    clip_image,
    estimate_noise,
    exceeds_local_scale,
    local_noise_scale,
    local_noise_scale_at,
    local_noise_scale_rows,
    local_noise_scale_strips,
    strip_rows,
    threshold_image,
)

#: The 90th percentile of |N(0, s)| is 1.645 s.
HALF_NORMAL_Q90 = 1.6449


def _half_normal(rng: np.random.Generator, sigma, shape: tuple[int, int]) -> np.ndarray:
    """uint16 half-normal noise of scale ``sigma``, rounded up, so that it holds no zeros (a zero response is where
    the background follows a slope, and is not counted as noise)."""
    return np.ceil(sigma * np.abs(rng.standard_normal(shape))).astype(np.uint16)


def _three_level_field(seed: int = 0):
    """Background of three column bands (levels 200, 1500, 4000) and half-normal noise of scale 4, 15, 40."""
    rng = np.random.default_rng(seed)
    levels = np.array([200, 1500, 4000])
    scales = np.array([4.0, 15.0, 40.0])
    background = np.repeat(levels, 100)[None, :].repeat(300, axis=0).astype(np.uint16)
    sigma = np.repeat(scales, 100)[None, :].repeat(300, axis=0)
    return _half_normal(rng, sigma, background.shape), background, levels, scales


@pytest.mark.parametrize("n_bins", [3, 12])
def test_estimate_noise_recovers_per_level_scales(n_bins):
    """Each level's 90th-percentile scale / 1.645 is within 10% of the half-normal scale used; with more bins than
    distinct levels the bins collapse onto the three levels."""
    response, background, levels, scales = _three_level_field()
    model = estimate_noise(response, background, np.ones(background.shape, bool), n_bins=n_bins)
    assert np.allclose(model.levels, levels)
    assert np.allclose(model.scale / HALF_NORMAL_Q90, scales, rtol=0.10)
    assert model.counts.sum() == 150 * 150  # stride 2 sampling of 300 x 300
    assert model.quantile == 0.9


def test_estimate_noise_does_not_count_zeros():
    """Zeroing half of the response (a slope, where the background is the image) leaves every level's
    scale as it is, where counting the zeros would move the 90th percentile to the 80th of the rest."""
    response, background, _, _ = _three_level_field(7)
    everywhere = np.ones(background.shape, bool)
    reference = estimate_noise(response, background, everywhere, n_bins=3)
    with_zeros = response.copy()
    with_zeros[np.arange(300) % 4 < 2] = 0  # whole rows: the same share of each level
    model = estimate_noise(with_zeros, background, everywhere, n_bins=3)
    assert np.allclose(model.scale, reference.scale, rtol=0.05)
    assert model.counts.sum() == pytest.approx(reference.counts.sum() / 2, rel=0.02)


def test_estimate_noise_learns_only_inside_mask():
    """Pixels outside the mask do not move the scale (a masked-out band of huge responses is ignored)."""
    response, background, _, _ = _three_level_field(1)
    mask = np.ones(background.shape, bool)
    noisy = response.copy()
    noisy[:, :50] = 60000
    mask[:, :50] = False
    reference = estimate_noise(response, background, mask, n_bins=3)
    model = estimate_noise(noisy, background, mask, n_bins=3)
    assert np.array_equal(model.scale, reference.scale)


def test_min_bin_pixels_sets_how_much_film_a_bin_stands_for():
    """Bins of at least 30,000 image pixels on a 300 x 300 field: 3 bins asked, 3 given; 45,000 pixels: 2."""
    response, background, _, _ = _three_level_field()
    everywhere = np.ones(background.shape, bool)
    assert len(estimate_noise(response, background, everywhere, n_bins=12, min_bin_pixels=30_000).scale) == 3
    assert len(estimate_noise(response, background, everywhere, n_bins=12, min_bin_pixels=45_000).scale) == 2


def test_a_deposit_cluster_on_the_brightest_level_is_diluted_by_larger_bins():
    """Deposits covering a sixth of the brightest level's pixels move its 90th percentile to their own
    response; with bins that must stand for half the field they are under a tenth of their bin and do not."""
    rng = np.random.default_rng(3)
    background = np.repeat(np.arange(1000, 1300, 50, dtype=np.uint16), 50)[None, :].repeat(300, axis=0)
    response = _half_normal(rng, 10, background.shape)
    response[:50, -50:] = 1500  # the brightest level is the last 50 columns
    everywhere = np.ones(background.shape, bool)
    small_bins = estimate_noise(response, background, everywhere, n_bins=12)
    large_bins = estimate_noise(response, background, everywhere, n_bins=12, min_bin_pixels=45_000)
    assert small_bins.scale[-1] == 1500
    assert large_bins.scale.max() < 3 * HALF_NORMAL_Q90 * 10


def test_estimate_noise_scale_at_least_one():
    """A zero response gives the floor scale of one grey level."""
    background = np.full((60, 60), 500, np.uint16)
    model = estimate_noise(np.zeros((60, 60), np.uint16), background, np.ones((60, 60), bool))
    assert (model.scale == 1.0).all()


def test_estimate_noise_empty_mask_uses_every_pixel():
    """An empty mask on a tiny image falls back to every pixel (with a non-zero response) rather than failing."""
    rng = np.random.default_rng(2)
    response = np.round(10 * np.abs(rng.standard_normal((20, 20)))).astype(np.uint16)
    model = estimate_noise(response, np.full((20, 20), 100, np.uint16), np.zeros((20, 20), bool))
    responding = response[response > 0]
    assert 0 < responding.size < 400
    assert model.counts.sum() == responding.size
    assert model.scale[0] == np.quantile(responding, 0.9, method="inverted_cdf")


def test_noise_model_to_dict_is_json_safe():
    """to_dict holds plain floats and ints only."""
    response, background, _, _ = _three_level_field()
    record = estimate_noise(response, background, np.ones(background.shape, bool), n_bins=3).to_dict()
    assert set(record) == {"quantile", "levels", "scale", "counts"}
    assert all(type(v) is float for v in record["levels"] + record["scale"])
    assert all(type(v) is int for v in record["counts"])


def test_threshold_image_is_floor_of_k_scale_at_bin_levels():
    """floor(k * scale) at the bin levels, linear in between, held flat outside the levels."""
    model = NoiseModel(levels=np.array([100.0, 200.0]), scale=np.array([3.0, 7.0]), counts=np.ones(2), quantile=0.9)
    background = np.array([[0, 100, 150, 200, 250]], np.uint16)
    thresholds = threshold_image(model, background, 2.5)
    assert thresholds.dtype == np.uint16
    assert thresholds.tolist() == [[7, 7, 12, 17, 17]]  # 7.5, 7.5, 12.5, 17.5, 17.5 floored


def test_threshold_image_integer_comparison_is_exact():
    """For an integer response, response > floor(k*s) is the same as response > k*s."""
    model = NoiseModel(levels=np.array([0.0, 1000.0]), scale=np.array([1.3, 9.7]), counts=np.ones(2), quantile=0.9)
    rng = np.random.default_rng(3)
    background = rng.integers(0, 1001, (50, 50)).astype(np.uint16)
    response = rng.integers(0, 60, (50, 50)).astype(np.uint16)
    k = 3.7
    exact = response > k * model.scale_at(background.astype(np.float64))
    assert np.array_equal(response > threshold_image(model, background, k), exact)


def test_threshold_image_clips_to_uint16():
    """A threshold beyond the uint16 range is clipped to 65535, not wrapped."""
    model = NoiseModel(levels=np.array([10.0]), scale=np.array([1000.0]), counts=np.ones(1), quantile=0.9)
    assert threshold_image(model, np.array([[10]], np.uint16), 100.0).tolist() == [[65535]]


def test_local_noise_scale_constant_on_stationary_noise():
    """On stationary half-normal noise (scale 10) the local RMS is about 10 everywhere (within 12%)."""
    rng = np.random.default_rng(4)
    response = np.round(10 * np.abs(rng.standard_normal((200, 200)))).astype(np.uint16)
    scale = local_noise_scale(response, np.full(response.shape, 32, np.uint16), 31)
    assert scale.dtype == np.float32 and scale.shape == response.shape
    assert np.median(scale) == pytest.approx(10.0, rel=0.03)
    assert scale.min() > 0.88 * 10 and scale.max() < 1.12 * 10


def test_local_noise_scale_rises_over_texture():
    """A patch of noise three times stronger (under the clip) doubles the scale at its centre, not far away."""
    rng = np.random.default_rng(5)
    response = np.round(10 * np.abs(rng.standard_normal((200, 200)))).astype(np.uint16)
    response[60:140, 60:140] = np.round(30 * np.abs(rng.standard_normal((80, 80))))
    scale = local_noise_scale(response, np.full(response.shape, 120, np.uint16), 31)
    assert scale[100, 100] > 2.0 * 10
    assert scale[10, 10] == pytest.approx(10.0, rel=0.12)


def test_local_noise_scale_leaves_a_bright_blob_out():
    """A bright blob's pixels (above the clip) are left out of the mean square: the scale at its centre hardly
    moves (the window keeps 31 x 31 - 49 of its pixels), where clipping them would have raised it towards
    sqrt(s0**2 + A * clip**2 / W**2)."""
    rng = np.random.default_rng(6)
    response = np.round(10 * np.abs(rng.standard_normal((200, 200)))).astype(np.uint16)
    clip = np.full(response.shape, 32, np.uint16)
    window = 31
    rows, cols = np.ogrid[:200, :200]
    blob = (rows - 100) ** 2 + (cols - 100) ** 2 <= 16
    with_blob = response.copy()
    with_blob[blob] = 5000
    before = float(local_noise_scale(response, clip, window)[100, 100])
    after = float(local_noise_scale(with_blob, clip, window)[100, 100])
    assert after == pytest.approx(before, rel=0.03)


def test_local_noise_scale_leaves_zeros_out():
    """Zeroing a random half of the response leaves the scale of stationary noise as it is: the zeros (a slope,
    where the background is the image) would otherwise divide it by about sqrt(2)."""
    rng = np.random.default_rng(9)
    response = _half_normal(rng, 10, (200, 200))
    clip = np.full(response.shape, 32, np.uint16)
    reference = local_noise_scale(response, clip, 31)
    response[rng.random(response.shape) < 0.5] = 0
    scale = local_noise_scale(response, clip, 31)
    assert np.median(scale / reference) == pytest.approx(1.0, abs=0.03)


def test_local_noise_scale_takes_the_clip_where_nothing_is_under_it():
    response = np.full((40, 40), 1000, np.uint16)
    scale = local_noise_scale(response, np.full((40, 40), 20, np.uint16), 7)
    assert np.all(scale == 20.0)


def test_local_noise_scale_floor_and_doc_example():
    """A window of zeros takes the clip (nothing in it measures the noise); a constant response under the clip
    gives exactly that response; never below one grey level."""
    response = np.zeros((50, 50), np.uint16)
    response[:, 25:] = 3
    scale = local_noise_scale(response, np.full((50, 50), 9, np.uint16), 5)
    assert scale[25, 10] == 9.0
    assert scale[25, 40] == pytest.approx(3.0, rel=1e-6)
    assert np.all(local_noise_scale(np.zeros((9, 9), np.uint16), np.zeros((9, 9), np.uint16), 3) == 1.0)


@pytest.mark.parametrize("clip_k", [2.0, 1.5, 2.7])
def test_clip_image_is_clip_k_times_the_level_scale(clip_k):
    """clip_image (the product on the look-up table) equals the per-pixel level scale times clip_k, rounded to
    uint16."""
    rng = np.random.default_rng(3)
    background = rng.integers(0, 3000, (60, 70)).astype(np.uint16)
    model = NoiseModel(np.array([100.0, 1500.0, 2900.0]), np.array([3.3, 17.8, 41.5]), np.array([1, 1, 1]), 0.9)
    level_scale = threshold_image(model, background, 1.0)
    expected = cv2.multiply(level_scale, np.float64(clip_k), dtype=cv2.CV_16U)
    assert np.array_equal(clip_image(model, background, clip_k), expected)


def test_local_noise_scale_is_the_definition_computed_plainly():
    """The OpenCV-masked implementation gives, to the last bit, the root of the windowed mean square of the kept
    pixels (above zero, at most the clip) over the kept share, computed here with plain numpy masks, and the clip
    where a window keeps nothing."""
    rng = np.random.default_rng(3)
    for shape, window in (((97, 130), 9), ((60, 41), 31), ((128, 128), 65)):
        response = np.abs(rng.normal(0, 40, shape)).astype(np.uint16)
        response[rng.random(shape) < 0.4] = 0
        side = window | 1
        response[: side + 4, : side + 4] = 5000  # nothing at or under the clip in the windows of this corner
        clip = rng.integers(20, 120, shape).astype(np.uint16)
        kept = (response > 0) & (response <= clip)
        squares = np.where(kept, response.astype(np.float32), np.float32(0.0)) ** 2
        local = cv2.blur(squares, (side, side), borderType=cv2.BORDER_REFLECT)
        share = cv2.boxFilter(kept.astype(np.uint8) * np.uint8(255), cv2.CV_32F, (side, side),
                              borderType=cv2.BORDER_REFLECT) * np.float32(1.0 / 255.0)  # fmt: skip
        some = share >= np.float32(1e-3)
        expected = np.square(clip.astype(np.float32))
        expected[some] = local[some] / share[some]
        expected = np.maximum(np.sqrt(expected), np.float32(1.0))
        assert np.array_equal(local_noise_scale(response, clip, window), expected)
        assert not some.all()  # the clip branch was exercised


def _textured_film(seed: int, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, NoiseModel]:
    """A response with texture and bright blobs over a two-level background, and a noise model of it."""
    rng = np.random.default_rng(seed)
    background = np.where(np.arange(shape[1]) < shape[1] // 2, 300, 2000).astype(np.uint16)[None, :].repeat(shape[0], 0)
    response = _half_normal(rng, np.where(background > 1000, 25.0, 6.0), shape)
    for _ in range(12):
        row, col = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        response[max(row - 3, 0) : row + 3, max(col - 3, 0) : col + 3] += 400
    return response, background, estimate_noise(response, background, np.ones(shape, bool), n_bins=2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_strips_of_rows_give_exactly_the_whole_films_scale(seed):
    """Every strip of rows, at the edges and inside, thin or thick, equals those rows of the whole film's scale (the
    strips of detection and the lesions' scale rely on it: a threshold at a pixel must not flip)."""
    response, background, model = _textured_film(seed, (97, 83))
    rng = np.random.default_rng(seed)
    for window in (3, 10, 31, 120):
        whole = local_noise_scale(response, clip_image(model, background), window)
        for _ in range(40):
            start = int(rng.integers(0, 97))
            rows = slice(start, min(97, start + int(rng.integers(1, 30))))
            assert np.array_equal(local_noise_scale_rows(response, background, model, window, rows), whole[rows])
        flat = rng.choice(response.size, size=60, replace=False)
        assert np.array_equal(local_noise_scale_at(response, background, model, window, flat), whole.ravel()[flat])
        assert np.array_equal(local_noise_scale_strips(response, background, model, window), whole)


def test_exceeds_local_scale_equals_the_whole_film_threshold():
    response, background, model = _textured_film(3, (300, 90))
    mask = np.ones(response.shape, bool)
    mask[:, :5] = False
    window = 15
    assert strip_rows(response.shape, window) < response.shape[0]  # several strips
    scale = local_noise_scale(response, clip_image(model, background), window)
    expected = (response > np.float32(2.5) * scale) & mask
    assert np.array_equal(exceeds_local_scale(response, background, model, window, 2.5, mask), expected)
    assert expected[:, 5:].any() and not expected.all()


def test_local_noise_scale_at_no_positions():
    response, background, model = _textured_film(4, (20, 20))
    assert local_noise_scale_at(response, background, model, 5, np.array([], np.int64)).shape == (0,)
