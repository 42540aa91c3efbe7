"""load_radiograph on PNG, TIFF and JPEG files written in tmp_path."""

from __future__ import annotations

import hashlib
import struct
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from calcimg.errors import InputError
from calcimg.io import CalibrationWarning, InputWarning, load_radiograph
from calcimg.model import Radiograph

# Most files here have no spacing on purpose; the tests that care about that warning catch it explicitly.
pytestmark = pytest.mark.filterwarnings("ignore::calcimg.io.CalibrationWarning")

RAMP16 = (np.arange(24 * 32, dtype=np.uint32).reshape(24, 32) * 85).astype(np.uint16)
RAMP8 = (np.arange(24 * 32).reshape(24, 32) % 256).astype(np.uint8)


def _load_quiet(path: Path, **kwargs: object) -> Radiograph:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_radiograph(path, **kwargs)


def _write_png(path: Path, image: np.ndarray) -> Path:
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    path.write_bytes(encoded.tobytes())
    return path


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


# --- PNG -----------------------------------------------------------------------------------------------------------


def test_png_8bit_grey(tmp_path: Path) -> None:
    path = _write_png(tmp_path / "grey8.png", RAMP8)
    with pytest.warns(CalibrationWarning, match="no usable pixel spacing"):
        radiograph = load_radiograph(path)
    assert radiograph.pixels.dtype == np.uint8
    assert np.array_equal(radiograph.pixels, RAMP8)
    assert radiograph.bits_stored == 8
    assert radiograph.spacing_source == "none"
    assert radiograph.metadata["format"] == "png"
    assert radiograph.metadata["photometric"] == "grey"
    assert radiograph.metadata["modality"] is None
    assert radiograph.content_hash == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_png_16bit_grey(tmp_path: Path) -> None:
    path = _write_png(tmp_path / "grey16.png", RAMP16)
    radiograph = _load_quiet(path)
    assert radiograph.pixels.dtype == np.uint16
    assert np.array_equal(radiograph.pixels, RAMP16)
    assert radiograph.bits_stored == 16
    assert (radiograph.metadata["rows"], radiograph.metadata["columns"]) == (24, 32)


def test_png_rgb_converted_to_grey_with_warning(tmp_path: Path) -> None:
    bgr = np.zeros((4, 4, 3), np.uint8)
    bgr[0, 0] = (0, 0, 255)  # red
    bgr[0, 1] = (0, 255, 0)  # green
    bgr[0, 2] = (255, 0, 0)  # blue
    bgr[1, 1] = (77, 77, 77)
    path = _write_png(tmp_path / "rgb.png", bgr)
    with pytest.warns(InputWarning, match="colour image converted to grey"):
        radiograph = load_radiograph(path)
    assert radiograph.pixels.shape == (4, 4) and radiograph.pixels.dtype == np.uint8
    assert radiograph.pixels[0, :3] == pytest.approx([76, 150, 29], abs=1)
    assert radiograph.pixels[1, 1] == 77


def test_png_rgba_alpha_dropped(tmp_path: Path) -> None:
    bgra = np.zeros((4, 4, 4), np.uint16)
    bgra[..., 3] = 65535
    bgra[0, 0, :3] = (0, 0, 60000)
    path = _write_png(tmp_path / "rgba.png", bgra)
    with pytest.warns(InputWarning) as record:
        radiograph = load_radiograph(path)
    messages = " ".join(str(w.message) for w in record)
    assert "alpha" in messages and "grey" in messages
    assert radiograph.pixels.dtype == np.uint16
    assert radiograph.pixels[0, 0] == pytest.approx(0.299 * 60000, abs=2)


def test_png_grey_stored_as_rgb_taken_exactly(tmp_path: Path) -> None:
    path = _write_png(tmp_path / "greyrgb.png", np.repeat(RAMP8[..., None], 3, axis=2))
    radiograph = _load_quiet(path)
    assert np.array_equal(radiograph.pixels, RAMP8)
    assert not any("colour" in w for w in radiograph.warnings)


def test_png_phys_metre_gives_spacing(tmp_path: Path) -> None:
    path = tmp_path / "phys.png"
    Image.fromarray(RAMP8).save(path, dpi=(254, 127))  # 10000 and 5000 pixels per metre
    radiograph = load_radiograph(path)
    assert radiograph.spacing_source == "file_resolution"
    assert radiograph.spacing_mm == pytest.approx((0.2, 0.1), rel=1e-3)


@pytest.mark.parametrize("dpi", [72, 96])
def test_png_screen_default_dpi_is_no_spacing(tmp_path: Path, dpi: int) -> None:
    path = tmp_path / "screen.png"
    Image.fromarray(RAMP8).save(path, dpi=(dpi, dpi))
    with pytest.warns(CalibrationWarning, match="screen default"):
        radiograph = load_radiograph(path)
    assert radiograph.spacing_source == "none"


def test_png_header_too_large_refused_before_decoding(tmp_path: Path) -> None:
    header = struct.pack(">IIBBBBB", 60000, 60000, 16, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IEND", b"")
    path = tmp_path / "huge.png"
    path.write_bytes(data)
    with pytest.raises(InputError, match="too many pixels"):
        load_radiograph(path)


def test_png_truncated_is_input_error(tmp_path: Path) -> None:
    noisy = np.random.default_rng(1).integers(0, 65535, (64, 64), dtype=np.uint16)
    data = _write_png(tmp_path / "full.png", noisy).read_bytes()
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="could not be decoded"):
        load_radiograph(path)


def test_png_damaged_header(tmp_path: Path) -> None:
    path = tmp_path / "damaged.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(InputError, match="damaged PNG"):
        load_radiograph(path)


@settings(max_examples=25, deadline=None)
@given(arrays(np.uint16, st.tuples(st.integers(1, 12), st.integers(1, 12))))
def test_png_16bit_roundtrip_property(tmp_path_factory: pytest.TempPathFactory, image: np.ndarray) -> None:
    path = _write_png(tmp_path_factory.mktemp("prop") / "p.png", image)
    assert np.array_equal(_load_quiet(path).pixels, image)


# --- TIFF ----------------------------------------------------------------------------------------------------------


def test_tiff_16bit_resolution_in_cm(tmp_path: Path) -> None:
    path = tmp_path / "cm.tif"
    tifffile.imwrite(path, RAMP16, resolution=(50, 40), resolutionunit="CENTIMETER")  # X 50/cm, Y 40/cm
    radiograph = load_radiograph(path)
    assert np.array_equal(radiograph.pixels, RAMP16) and radiograph.pixels.dtype == np.uint16
    assert radiograph.spacing_source == "file_resolution"
    assert radiograph.spacing_mm == pytest.approx((0.25, 0.2))  # (row from Y, col from X)
    assert radiograph.metadata["format"] == "tiff"
    assert radiograph.bits_stored == 16


def test_tiff_resolution_in_inch(tmp_path: Path) -> None:
    path = tmp_path / "inch.tif"
    tifffile.imwrite(path, RAMP16, resolution=(254, 127), resolutionunit="INCH")
    radiograph = load_radiograph(path)
    assert radiograph.spacing_mm == pytest.approx((0.2, 0.1))


@pytest.mark.parametrize("dpi", [72, 96])
def test_tiff_screen_default_dpi_is_no_spacing(tmp_path: Path, dpi: int) -> None:
    path = tmp_path / "screen.tif"
    tifffile.imwrite(path, RAMP16, resolution=(dpi, dpi), resolutionunit="INCH")
    with pytest.warns(CalibrationWarning, match="screen default"):
        radiograph = load_radiograph(path)
    assert radiograph.spacing_source == "none" and radiograph.spacing_mm is None


def test_tiff_without_unit_has_no_spacing(tmp_path: Path) -> None:
    path = tmp_path / "nounit.tif"
    tifffile.imwrite(path, RAMP16)
    radiograph = _load_quiet(path)
    assert radiograph.spacing_source == "none"


def test_tiff_imagej_unit_mm(tmp_path: Path) -> None:
    path = tmp_path / "imagej.tif"
    tifffile.imwrite(path, RAMP16, imagej=True, resolution=(10, 5), metadata={"unit": "mm"})
    radiograph = load_radiograph(path)
    assert radiograph.spacing_source == "file_resolution"
    assert radiograph.spacing_mm == pytest.approx((0.2, 0.1))


def test_tiff_float_kept_float32(tmp_path: Path) -> None:
    image = np.linspace(-1.5, 2.5, 24 * 32).reshape(24, 32)
    path = tmp_path / "float.tif"
    tifffile.imwrite(path, image)  # float64 on disk
    radiograph = _load_quiet(path)
    assert radiograph.pixels.dtype == np.float32
    assert np.allclose(radiograph.pixels, image, atol=1e-6)
    assert radiograph.bits_stored is None


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_tiff_float_nan_or_inf_refused(tmp_path: Path, bad: float) -> None:
    image = np.ones((8, 8), np.float32)
    image[3, 4] = bad
    path = tmp_path / "nan.tif"
    tifffile.imwrite(path, image)
    with pytest.raises(InputError, match="NaN or infinite"):
        load_radiograph(path)


def test_tiff_signed_16bit_shifted(tmp_path: Path) -> None:
    image = np.array([[-32768, -1], [0, 32767]], np.int16)
    path = tmp_path / "signed.tif"
    tifffile.imwrite(path, image)
    radiograph = _load_quiet(path)
    assert radiograph.pixels.dtype == np.uint16
    assert np.array_equal(radiograph.pixels, [[0, 32767], [32768, 65535]])
    assert radiograph.metadata["pixel_offset"] == 32768


def test_tiff_8bit_stays_uint8(tmp_path: Path) -> None:
    path = tmp_path / "u8.tif"
    tifffile.imwrite(path, RAMP8)
    radiograph = _load_quiet(path)
    assert radiograph.pixels.dtype == np.uint8 and radiograph.bits_stored == 8
    assert np.array_equal(radiograph.pixels, RAMP8)


def test_tiff_multipage_first_page_with_warning(tmp_path: Path) -> None:
    path = tmp_path / "pages.tif"
    with tifffile.TiffWriter(path) as writer:
        writer.write(RAMP16)
        writer.write(RAMP16 + 1)
    with pytest.warns(InputWarning, match="first page"):
        radiograph = load_radiograph(path)
    assert np.array_equal(radiograph.pixels, RAMP16)
    assert radiograph.metadata["number_of_frames"] == 2


def test_tiff_many_samples_not_2d(tmp_path: Path) -> None:
    path = tmp_path / "seven.tif"
    tifffile.imwrite(path, np.zeros((8, 9, 7), np.uint8), photometric="minisblack", planarconfig="contig")
    with pytest.raises(InputError, match="not a 2-D image"):
        load_radiograph(path)


def test_tiff_rgb_planar_converted(tmp_path: Path) -> None:
    rgb = np.zeros((3, 4, 5), np.uint8)
    rgb[0] = 200  # red plane
    path = tmp_path / "planar.tif"
    tifffile.imwrite(path, rgb, photometric="rgb", planarconfig="separate")
    with pytest.warns(InputWarning, match="grey"):
        radiograph = load_radiograph(path)
    assert radiograph.shape == (4, 5)
    assert int(radiograph.pixels[0, 0]) == pytest.approx(0.299 * 200, abs=1)


def test_tiff_min_is_white_inverted(tmp_path: Path) -> None:
    path = tmp_path / "miniswhite.tif"
    tifffile.imwrite(path, RAMP8, photometric="miniswhite")
    with pytest.warns(InputWarning, match="MinIsWhite"):
        radiograph = load_radiograph(path)
    assert np.array_equal(radiograph.pixels, 255 - RAMP8)


def test_tiff_lzw_decoded_without_imagecodecs(tmp_path: Path) -> None:
    path = tmp_path / "lzw.tif"
    Image.fromarray(RAMP16).save(path, format="TIFF", compression="tiff_lzw")
    radiograph = _load_quiet(path)
    assert np.array_equal(radiograph.pixels, RAMP16)


def test_tiff_limit_checked(tmp_path: Path) -> None:
    path = tmp_path / "limit.tif"
    tifffile.imwrite(path, RAMP16)
    with pytest.raises(InputError, match="too many pixels"):
        load_radiograph(path, max_pixels=100)


@pytest.mark.parametrize(("keep", "message"), [(20, "damaged or unsupported TIFF"), (-500, "could not be decoded")])
def test_tiff_truncated(tmp_path: Path, keep: int, message: str) -> None:
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, RAMP16)
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(InputError, match=message):
        load_radiograph(path)


# --- JPEG ----------------------------------------------------------------------------------------------------------


def _smooth8() -> np.ndarray:
    rows, cols = np.mgrid[0:48, 0:64]
    return (100 + 60 * np.sin(rows / 9.0) * np.cos(cols / 11.0)).astype(np.uint8)


def test_jpeg_grey(tmp_path: Path) -> None:
    image = _smooth8()
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 100])
    assert ok
    path = tmp_path / "x.jpg"
    path.write_bytes(encoded.tobytes())
    radiograph = _load_quiet(path)
    assert radiograph.pixels.dtype == np.uint8 and radiograph.shape == (48, 64)
    assert np.abs(radiograph.pixels.astype(int) - image).mean() < 1.5
    assert radiograph.metadata["format"] == "jpeg"
    assert radiograph.metadata["photometric"] == "grey"


def test_jpeg_density_gives_spacing(tmp_path: Path) -> None:
    path = tmp_path / "dpi.jpg"
    Image.fromarray(_smooth8()).save(path, dpi=(254, 254), quality=95)
    radiograph = load_radiograph(path)
    assert radiograph.spacing_source == "file_resolution"
    assert radiograph.spacing_mm == pytest.approx((0.1, 0.1))


def test_jpeg_colour_to_grey(tmp_path: Path) -> None:
    path = tmp_path / "colour.jpg"
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., 0] = 200
    Image.fromarray(rgb).save(path, quality=100)
    with pytest.warns(InputWarning, match="grey"):
        radiograph = load_radiograph(path)
    assert radiograph.pixels.shape == (16, 16)
    assert float(radiograph.pixels.mean()) == pytest.approx(0.299 * 200, abs=3)


def test_jpeg_limit_checked(tmp_path: Path) -> None:
    path = tmp_path / "limit.jpg"
    Image.fromarray(_smooth8()).save(path)
    with pytest.raises(InputError, match="too many pixels"):
        load_radiograph(path, max_pixels=1000)
