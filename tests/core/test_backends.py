"""The array-module backend (CuPy's code, run here with numpy) against the OpenCV reference, step by step.

The ``cupy`` tests run only where CuPy finds a CUDA GPU; everywhere else they are skipped, and the same code is
checked through the numpy module.
"""

from __future__ import annotations

import importlib.util

import cv2
import numpy as np
import pytest

from calcimg.cli import main
from calcimg.core import backends, threshold
from calcimg.errors import ParameterError
from calcimg.phantom import make_pair
from calcimg.pipeline import compare_pair, segment_image, working_image


def _cuda_available() -> bool:
    if importlib.util.find_spec("cupy") is None:
        return False
    try:
        backends.ArrayModuleOps("cupy")
    except ImportError:
        return False
    return True


MODULES = ["numpy", pytest.param("cupy", marks=pytest.mark.skipif(not _cuda_available(), reason="no CUDA GPU"))]


@pytest.fixture(scope="module")
def film() -> np.ndarray:
    image, _ = working_image(make_pair(2, "knee").pre.radiograph.pixels)
    return image[:700, :600].copy()


def test_unknown_backend_is_refused_by_name():
    with pytest.raises(ValueError, match="'gpu'"):
        backends.ops_for("gpu")
    radiograph = make_pair(1, "hand").pre.radiograph
    with pytest.raises(ParameterError, match="backend 'gpu'"):
        segment_image(radiograph, backend="gpu")


@pytest.mark.skipif(_cuda_available(), reason="CuPy finds a GPU here")
def test_cupy_without_a_gpu_says_what_is_missing(tmp_path, capsys):
    with pytest.raises(ParameterError, match="CuPy and a CUDA GPU"):
        segment_image(make_pair(1, "hand").pre.radiograph, backend="cupy")
    image = tmp_path / "film.png"
    cv2.imwrite(str(image), make_pair(1, "hand").pre.radiograph.pixels)
    assert main(["segment", str(image), "--out", str(tmp_path / "out"), "--backend", "cupy"]) == 1
    assert "CuPy and a CUDA GPU" in capsys.readouterr().err
    assert not (tmp_path / "out" / "film_summary.json").exists()
    assert main(["batch", str(tmp_path), "--out", str(tmp_path / "batch"), "--backend", "cupy", "-q"]) == 1
    assert "CuPy and a CUDA GPU" in capsys.readouterr().err
    assert not (tmp_path / "batch").exists()


def test_kernel_is_opencvs():
    for sigma in (0.7, 2.0, 5.3):
        kernel = backends.opencv_gaussian_kernel(sigma)
        impulse = np.zeros((1, 101), np.float64)
        impulse[0, 50] = 1.0
        row = cv2.GaussianBlur(impulse, (0, 0), sigmaX=sigma, sigmaY=1e-9)[0]
        half = len(kernel) // 2
        np.testing.assert_allclose(row[50 - half : 51 + half], kernel[::-1], atol=1e-12)
        assert row[: 50 - half].max() == 0 and row[51 + half :].max() == 0


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("sigma", [0.2, 0.8, 3.5])
def test_gaussian_within_one_grey_level_of_opencv(film, module, sigma):
    ops = backends.ArrayModuleOps(module)
    ours = ops.to_host(ops.gaussian(ops.to_device(film), sigma))
    reference = backends.OpenCVOps().gaussian(film, sigma)
    difference = np.abs(ours.astype(np.int32) - reference)
    assert ours.dtype == np.uint16 and ours.shape == film.shape
    assert difference.max() <= (0 if sigma < 0.3 else 1)
    assert np.mean(difference > 0) < 0.01  # OpenCV rounds a fixed-point kernel, the module a float one


@pytest.mark.parametrize("module", MODULES)
def test_subtract_saturates(module):
    ops = backends.ArrayModuleOps(module)
    a = np.array([[5, 1, 65535]], np.uint16)
    b = np.array([[2, 3, 0]], np.uint16)
    assert ops.to_host(ops.subtract(ops.to_device(a), ops.to_device(b))).tolist() == [[3, 0, 65535]]


@pytest.mark.parametrize("module", MODULES)
def test_local_noise_scale_matches_opencv(module):
    rng = np.random.default_rng(3)
    response = rng.integers(0, 40, (300, 280)).astype(np.uint16)
    response[100:120, 50:90] = 900  # a deposit: above the clip, left out
    response[200:, 200:] = 0  # a flat stretch with nothing kept: the clip
    clip = np.full(response.shape, 60, np.uint16)
    clip[:, :20] = 30
    ops = backends.ArrayModuleOps(module)
    ours = ops.to_host(ops.local_noise_scale(ops.to_device(response), ops.to_device(clip), 15))
    reference = threshold.local_noise_scale(response, clip, 15)
    np.testing.assert_allclose(ours, reference, rtol=1e-4)
    assert ours[250, 250] == pytest.approx(60.0)


@pytest.mark.parametrize("module", MODULES)
def test_clip_matches_clip_image(module):
    model = threshold.NoiseModel(np.array([10.0, 900.0]), np.array([3.0, 11.5]), np.array([1, 1]), 0.9)
    background = np.random.default_rng(1).integers(0, 1000, (50, 60)).astype(np.uint16)
    ops = backends.ArrayModuleOps(module)
    ours = ops.to_host(ops.clip(model, ops.to_device(background)))
    np.testing.assert_array_equal(ours, threshold.clip_image(model, background))


@pytest.mark.parametrize("module", MODULES)
def test_hysteresis_and_trim_equal_opencvs(module):
    rng = np.random.default_rng(5)
    response = cv2.GaussianBlur(rng.integers(0, 1000, (200, 220)).astype(np.uint16), (0, 0), 2)
    extent = response > np.percentile(response, 60)
    seeds = response > np.percentile(response, 97)
    ops, reference = backends.ArrayModuleOps(module), backends.OpenCVOps()
    kept = ops.hysteresis(ops.to_device(extent), ops.to_device(seeds))
    np.testing.assert_array_equal(ops.to_host(kept), reference.hysteresis(extent, seeds))
    assert 0 < ops.to_host(kept).sum() < extent.sum()  # some regions without a seed were dropped
    for fraction in (0.0, 0.5, 0.97):
        trimmed = ops.to_host(ops.trim_to_peak_fraction(kept, ops.to_device(response), fraction))
        expected = reference.trim_to_peak_fraction(reference.hysteresis(extent, seeds), response, fraction)
        np.testing.assert_array_equal(trimmed, expected)


@pytest.mark.parametrize("module", MODULES)
def test_segmentation_on_the_module_agrees_with_the_cpu(module):
    radiograph = make_pair(4, "forearm").pre.radiograph
    cpu = segment_image(radiograph)
    other = segment_image(radiograph, backend=module)
    assert other.summary["backend"] == module and cpu.summary["backend"] == "cpu"
    assert len(cpu.lesions) >= 3 and len(other.lesions) == len(cpu.lesions)
    a, b = cpu.labels > 0, other.labels > 0
    assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.99
    np.testing.assert_allclose(other.lesions["area_mm2"], cpu.lesions["area_mm2"], rtol=0.02)


def test_compare_pair_takes_the_backend():
    pair = make_pair(1, "hand")
    result = compare_pair(pair.pre.radiograph, pair.post.radiograph, backend="numpy")
    assert result.pre.summary["backend"] == "numpy" and result.post.summary["backend"] == "numpy"
    assert result.summary["backend"] == "numpy"
