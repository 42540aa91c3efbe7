"""Registration of a follow-up film onto its baseline: known transforms, phantom truth, doubtful cases."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from calcimg.core.registration import Registration, register, transform_points, warp_labels
from calcimg.errors import ParameterError
from calcimg.phantom import PhantomConfig, make_pair

SMALL = PhantomConfig(max_pixels=1_000_000)


@pytest.fixture(scope="module")
def knee():
    return make_pair(11, "knee", SMALL)


@pytest.fixture(scope="module")
def hand():
    return make_pair(11, "hand", SMALL)


def grid_points(shape: tuple[int, int], step: int = 40, margin: int = 0) -> np.ndarray:
    """(N, 2) x, y points on a grid over an image."""
    rows, cols = shape
    ys, xs = np.mgrid[margin : rows - margin : step, margin : cols - margin : step]
    return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)


def apply(matrix: np.ndarray, xy: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float64)
    return xy @ matrix[:2, :2].T + matrix[:2, 2]


def max_error_px(estimated: np.ndarray, truth: np.ndarray, points: np.ndarray) -> float:
    """Largest distance between two maps over ``points``."""
    return float(np.hypot(*(apply(estimated, points) - apply(truth, points)).T).max())


def centred_mm_to_px(shape: tuple[int, int], spacing: float) -> np.ndarray:
    """3x3 from the phantom's detector mm (origin at the image centre, x right, y down) to pixel (x, y)."""
    rows, cols = shape
    return np.array([[1 / spacing, 0, cols / 2 - 0.5], [0, 1 / spacing, rows / 2 - 0.5], [0, 0, 1.0]])


def true_post_to_pre(pair) -> np.ndarray:
    """3x3 follow-up pixel -> baseline pixel map of a phantom pair (its convention: post mm = M @ pre mm)."""
    delta = np.asarray(pair.summary["transform"]["matrix"], dtype=np.float64)
    to_pre = centred_mm_to_px(pair.pre.shape, pair.pre.spacing_mm)
    to_post = centred_mm_to_px(pair.post.shape, pair.post.spacing_mm)
    return to_pre @ np.linalg.inv(delta) @ np.linalg.inv(to_post)


def tissue_points(pair, step: int = 8) -> np.ndarray:
    rows, cols = np.nonzero(pair.pre.masks["tissue"][::step, ::step])
    return np.stack([cols * step, rows * step], axis=1).astype(np.float64)


def test_recovers_a_known_similarity(knee) -> None:
    fixed = knee.pre.radiograph.pixels
    rows, cols = fixed.shape
    forward = cv2.getRotationMatrix2D((cols / 2 + 30, rows / 2 - 20), 4.0, 1.03)
    forward[:, 2] += (25.0, -15.0)
    moving = cv2.warpAffine(fixed, forward, (cols, rows), flags=cv2.INTER_LINEAR)
    spacing = knee.pre.spacing_mm
    reg = register(fixed, moving, spacing, spacing)
    assert reg.ok, reg.reasons
    truth = cv2.invertAffineTransform(forward)
    assert max_error_px(reg.matrix, truth, grid_points(fixed.shape, margin=100)) * spacing < 0.3
    assert reg.rotation_deg == pytest.approx(4.0, abs=0.05)
    assert reg.scale == pytest.approx(1.03, abs=0.002)
    assert reg.model == "similarity"
    assert reg.quality > 0.8
    assert reg.overlap_fraction > 0.8


@pytest.mark.parametrize("site", ["hand", "knee"])
def test_recovers_the_phantom_pairs_transform(site, hand, knee) -> None:
    pair = {"hand": hand, "knee": knee}[site]
    reg = register(
        pair.pre.radiograph.pixels,
        pair.post.radiograph.pixels,
        pair.pre.spacing_mm,
        pair.post.spacing_mm,
        pair.pre.masks["field"],
        pair.post.masks["field"],
    )
    assert reg.ok, reg.reasons
    points = tissue_points(pair)
    post_points = apply(np.linalg.inv(true_post_to_pre(pair)), points)
    residual_mm = np.hypot(*(apply(reg.matrix, post_points) - points).T) * pair.pre.spacing_mm
    assert residual_mm.max() < 0.5
    truth = pair.summary["transform"]
    assert reg.rotation_deg == pytest.approx(truth["rotation_deg"], abs=0.1)
    assert reg.scale == pytest.approx(truth["magnification"], abs=0.004)
    assert reg.shift_mm == pytest.approx(truth["shift_mm"], abs=0.5)


def test_an_exposure_change_still_registers(knee) -> None:
    fixed = knee.pre.radiograph.pixels
    rows, cols = fixed.shape
    forward = cv2.getRotationMatrix2D((cols / 2, rows / 2), -3.0, 1.0)
    forward[:, 2] += (-10.0, 18.0)
    shifted = cv2.warpAffine(fixed, forward, (cols, rows), flags=cv2.INTER_LINEAR).astype(np.float64)
    # another tone curve and bit depth: gamma 2.2 on 12 bits
    moving = np.round((shifted / fixed.max()) ** 2.2 * 4095).astype(np.uint16)
    spacing = knee.pre.spacing_mm
    reg = register(fixed, moving, spacing, spacing)
    assert reg.ok, reg.reasons
    truth = cv2.invertAffineTransform(forward)
    assert max_error_px(reg.matrix, truth, grid_points(fixed.shape, margin=100)) * spacing < 0.3


def test_different_spacings_are_taken_into_account(hand) -> None:
    fixed = hand.pre.radiograph.pixels
    spacing = hand.pre.spacing_mm
    # the same film on a detector with 1.5x larger pixels
    rows, cols = fixed.shape
    moving = cv2.resize(fixed, (round(cols / 1.5), round(rows / 1.5)), interpolation=cv2.INTER_AREA)
    factor = np.array([cols / moving.shape[1], rows / moving.shape[0]])
    reg = register(fixed, moving, spacing, spacing * 1.5)
    assert reg.ok, reg.reasons
    assert reg.scale == pytest.approx(1.0, abs=0.005)
    assert reg.rotation_deg == pytest.approx(0.0, abs=0.05)
    points = grid_points(moving.shape, step=30, margin=40)
    expected = (points + 0.5) * factor - 0.5  # pixel centres of the resize
    assert np.hypot(*(apply(reg.matrix, points) - expected).T).max() * spacing < 0.3


def test_affine_model(knee) -> None:
    fixed = knee.pre.radiograph.pixels
    rows, cols = fixed.shape
    forward = np.array([[1.04, 0.02, -20.0], [-0.01, 0.98, 12.0]])
    moving = cv2.warpAffine(fixed, forward, (cols, rows), flags=cv2.INTER_LINEAR)
    spacing = knee.pre.spacing_mm
    truth = cv2.invertAffineTransform(forward)
    points = grid_points(fixed.shape, margin=100)
    affine = register(fixed, moving, spacing, spacing, model="affine")
    assert affine.ok, affine.reasons
    assert affine.model == "affine"
    assert max_error_px(affine.matrix, truth, points) * spacing < 0.3
    similarity = register(fixed, moving, spacing, spacing, model="similarity")
    assert max_error_px(similarity.matrix, truth, points) * spacing > 1.0


def test_unrelated_images_are_flagged(hand, knee) -> None:
    reg = register(hand.pre.radiograph.pixels, knee.post.radiograph.pixels, hand.pre.spacing_mm, knee.post.spacing_mm)
    assert not reg.ok
    assert reg.reasons
    assert reg.quality < 0.4


def test_noise_is_flagged(knee) -> None:
    rng = np.random.default_rng(5)
    noise = rng.integers(0, 4096, knee.post.shape).astype(np.uint16)
    reg = register(knee.pre.radiograph.pixels, noise, knee.pre.spacing_mm, knee.post.spacing_mm)
    assert not reg.ok
    assert any("consistent point pairs" in reason for reason in reg.reasons)


def test_implausible_rotation_is_flagged(knee) -> None:
    fixed = knee.pre.radiograph.pixels
    moving = np.ascontiguousarray(np.rot90(fixed))
    reg = register(fixed, moving, knee.pre.spacing_mm, knee.pre.spacing_mm)
    assert not reg.ok
    assert any("implausible rotation" in reason for reason in reg.reasons)
    assert abs(reg.rotation_deg) == pytest.approx(90.0, abs=0.5)


def test_uncalibrated_images_say_so(knee) -> None:
    pixels = knee.pre.radiograph.pixels
    reg = register(pixels, pixels, None, None)
    assert reg.spacing_assumed
    assert reg.notes and "uncalibrated" in reg.notes[0]
    assert reg.spacing_mm == (0.15, 0.15)
    np.testing.assert_allclose(reg.matrix, np.eye(2, 3), atol=0.05)
    one = register(pixels, pixels, knee.pre.spacing_mm, None)
    assert one.spacing_assumed
    assert one.spacing_mm == (knee.pre.spacing_mm, knee.pre.spacing_mm)


def test_to_dict_is_json_safe(knee) -> None:
    pixels = knee.pre.radiograph.pixels
    record = register(pixels, pixels, knee.pre.spacing_mm, knee.pre.spacing_mm).to_dict()
    text = json.dumps(record, allow_nan=False)
    assert json.loads(text)["ok"] is True
    assert np.asarray(record["matrix"]).shape == (2, 3)
    failed = Registration(np.eye(2, 3), 0.0, 1.0, (0.0, 0.0), "similarity", 0.0, 0.0, False, ["x"])
    assert failed.to_dict()["residual_mm"] is None


def test_invalid_arguments_raise() -> None:
    image = np.zeros((64, 64), np.uint16)
    with pytest.raises(ParameterError, match="model"):
        register(image, image, 0.1, 0.1, model="rigid")
    with pytest.raises(ParameterError, match="2-D"):
        register(np.zeros((4, 64, 64), np.uint16), image, 0.1, 0.1)
    with pytest.raises(ParameterError, match="mask shape"):
        register(image, image, 0.1, 0.1, fixed_mask=np.ones((10, 10), bool))
    with pytest.raises(ParameterError, match="spacing"):
        register(image, image, -0.1, 0.1)


def test_a_blank_image_is_flagged_not_raised() -> None:
    blank = np.zeros((200, 200), np.uint16)
    reg = register(blank, blank, 0.2, 0.2)
    assert not reg.ok
    assert reg.reasons == ["no usable field of view"]


def test_transform_points_and_warp_labels_agree() -> None:
    matrix = cv2.getRotationMatrix2D((40.0, 30.0), 10.0, 1.1)
    matrix[:, 2] += (5.0, -3.0)
    reg = Registration(matrix, 10.0, 1.1, (0.0, 0.0), "similarity", 1.0, 1.0, True)
    labels = np.zeros((60, 80), np.int32)
    labels[20:26, 30:38] = 3
    labels[40:44, 10:13] = 70000  # beyond uint16
    warped = warp_labels(labels, reg, (70, 90))
    assert warped.dtype == np.int32 and warped.shape == (70, 90)
    assert set(np.unique(warped)) == {0, 3, 70000}
    for value in (3, 70000):
        centre = np.argwhere(labels == value).mean(axis=0)
        mapped = transform_points(centre[None, :], reg)[0]
        np.testing.assert_allclose(np.argwhere(warped == value).mean(axis=0), mapped, atol=0.6)
    # (row, col) order in and out
    np.testing.assert_allclose(transform_points([[0.0, 0.0]], reg)[0], matrix[::-1, 2])
