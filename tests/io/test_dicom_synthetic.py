"""load_radiograph on small DICOM files built with pydicom in tmp_path."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset

from calcimg.errors import InputError, ParameterError
from calcimg.io import CalibrationWarning, InputWarning, load_radiograph
from calcimg.io.dicom import parse_spacing

Writer = Callable[..., Path]
Builder = Callable[..., Dataset]

BASE = np.array([[0, 100, 200], [1000, 2000, 4095]], dtype=np.uint16)


def _load_quiet(path: Path, **kwargs: object):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_radiograph(path, **kwargs)


def test_plain_uncompressed_roundtrip_and_identity(write_dicom: Writer) -> None:
    path = write_dicom(BASE, BitsStored=12, HighBit=11, PixelSpacing=[0.1, 0.2])
    radiograph = load_radiograph(path)
    assert radiograph.pixels.dtype == np.uint16
    assert np.array_equal(radiograph.pixels, BASE)
    assert radiograph.bits_stored == 12
    assert radiograph.spacing_mm == (0.1, 0.2) and radiograph.spacing_source == "pixel_spacing"
    assert radiograph.content_hash == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    assert radiograph.path == str(path)
    assert radiograph.metadata["patient_id"] == "SYN-1"
    assert radiograph.metadata["patient_name"] == "Synthetic^Test"
    assert radiograph.metadata["transfer_syntax"] == "1.2.840.10008.1.2.1"
    assert radiograph.metadata["transfer_syntax_name"] == "Explicit VR Little Endian"
    assert radiograph.metadata["body_part"] is None
    assert radiograph.metadata["pixel_offset"] == 0
    assert radiograph.warnings == []


def test_rescale_slope_intercept_integral_is_shifted_uint16(write_dicom: Writer) -> None:
    path = write_dicom(BASE, BitsStored=12, HighBit=11, RescaleSlope=2, RescaleIntercept=-1000, PixelSpacing=[1, 1])
    radiograph = load_radiograph(path)
    # output range of 2*v - 1000 over 0..4095 is [-1000, 7190]: shifted by 1000
    assert radiograph.pixels.dtype == np.uint16
    assert np.array_equal(radiograph.pixels, 2 * BASE.astype(np.int64))
    assert radiograph.metadata["pixel_offset"] == 1000
    assert radiograph.metadata["modality_transform"] == "rescale"
    assert radiograph.metadata["value_max"] == 8190
    assert radiograph.bits_stored == 13


def test_rescale_non_integral_gives_float32(write_dicom: Writer) -> None:
    path = write_dicom(BASE, BitsStored=12, HighBit=11, RescaleSlope=0.5, RescaleIntercept=-10, PixelSpacing=[1, 1])
    radiograph = load_radiograph(path)
    assert radiograph.pixels.dtype == np.float32
    assert np.allclose(radiograph.pixels, 0.5 * BASE - 10)
    assert radiograph.bits_stored is None
    assert radiograph.metadata["pixel_offset"] == 0


def test_monochrome1_with_rescale_reflected_within_output_range(write_dicom: Writer) -> None:
    path = write_dicom(
        BASE,
        BitsStored=12,
        HighBit=11,
        RescaleSlope=2,
        RescaleIntercept=-1000,
        PhotometricInterpretation="MONOCHROME1",
        PixelSpacing=[1, 1],
    )
    radiograph = load_radiograph(path)
    # value = 2v - 1000 in [-1000, 7190]; new = -1000 + 7190 - value, then + 1000
    assert np.array_equal(radiograph.pixels, 8190 - 2 * BASE.astype(np.int64))


def test_monochrome1_plain_is_max_minus_stored(write_dicom: Writer) -> None:
    path = write_dicom(BASE, BitsStored=12, HighBit=11, PhotometricInterpretation="MONOCHROME1", PixelSpacing=[1, 1])
    radiograph = load_radiograph(path)
    assert np.array_equal(radiograph.pixels, 4095 - BASE)
    assert radiograph.metadata["photometric"] == "MONOCHROME1"


def test_signed_pixels_shifted_to_zero(write_dicom: Writer) -> None:
    signed = np.array([[-2048, -5], [0, 2047]], dtype=np.int16)
    path = write_dicom(signed, BitsStored=12, HighBit=11, PixelSpacing=[1, 1])
    radiograph = load_radiograph(path)
    assert radiograph.pixels.dtype == np.uint16
    assert np.array_equal(radiograph.pixels, [[0, 2043], [2048, 4095]])
    assert radiograph.metadata["pixel_offset"] == 2048
    assert radiograph.bits_stored == 12


def test_bits_stored_masks_garbage_high_bits(write_dicom: Writer) -> None:
    garbage = np.array([[0xF001, 0x0FFF], [0x1234, 0xA005]], dtype=np.uint16)
    path = write_dicom(garbage, BitsStored=12, HighBit=11, PixelSpacing=[1, 1])
    radiograph = load_radiograph(path)
    assert np.array_equal(radiograph.pixels, [[0x001, 0xFFF], [0x234, 0x005]])
    assert radiograph.bits_stored == 12


def test_calibrated_pixel_spacing_wins(write_dicom: Writer) -> None:
    path = write_dicom(
        BASE,
        PixelSpacing=[0.1, 0.1],
        ImagerPixelSpacing=[0.2, 0.2],
        PixelSpacingCalibrationType="GEOMETRY",
        EstimatedRadiographicMagnificationFactor=1.2,
    )
    radiograph = load_radiograph(path)
    assert radiograph.spacing_source == "calibrated_pixel_spacing"
    assert radiograph.spacing_mm == pytest.approx((0.1, 0.1))


def test_magnification_factor_divides_imager_spacing(write_dicom: Writer) -> None:
    path = write_dicom(
        BASE, PixelSpacing=[0.2, 0.15], ImagerPixelSpacing=[0.2, 0.15], EstimatedRadiographicMagnificationFactor=1.25
    )
    radiograph = load_radiograph(path)
    assert radiograph.spacing_source == "imager_pixel_spacing_magnification_corrected"
    assert radiograph.spacing_mm == pytest.approx((0.16, 0.12))


def test_magnification_factor_one_is_no_correction(write_dicom: Writer) -> None:
    path = write_dicom(BASE, ImagerPixelSpacing=[0.2, 0.2], EstimatedRadiographicMagnificationFactor=1)
    radiograph = load_radiograph(path)
    assert radiograph.spacing_source == "imager_pixel_spacing"
    assert radiograph.spacing_mm == pytest.approx((0.2, 0.2))


def test_imager_spacing_preferred_over_uncalibrated_pixel_spacing(write_dicom: Writer) -> None:
    path = write_dicom(BASE, PixelSpacing=[0.1, 0.1], ImagerPixelSpacing=[0.12, 0.12])
    with pytest.warns(CalibrationWarning, match="differs"):
        radiograph = load_radiograph(path)
    assert radiograph.spacing_source == "imager_pixel_spacing"
    assert radiograph.spacing_mm == pytest.approx((0.12, 0.12))


@pytest.mark.filterwarnings("ignore:Invalid value for VR DS")
@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("0\\0", "zero or negative"),
        ("-0.1\\-0.1", "zero or negative"),
        ("0.1\\0", "zero or negative"),
        ("nan\\nan", "not finite"),
        ("inf\\0.1", "not finite"),
        ("0.1", "needs two values"),
        ("0.1\\0.1\\0.1", "needs two values"),
    ],
)
def test_invalid_pixel_spacing_counts_as_missing(write_dicom: Writer, value: str, reason: str) -> None:
    path = write_dicom(BASE, PixelSpacing=value)
    with pytest.warns(CalibrationWarning) as record:
        radiograph = load_radiograph(path)
    assert radiograph.spacing_source == "none" and radiograph.spacing_mm is None
    assert any("PixelSpacing" in w and reason in w for w in radiograph.warnings)
    assert any("no usable pixel spacing" in str(w.message) for w in record)


def test_invalid_imager_spacing_falls_back_to_pixel_spacing(write_dicom: Writer) -> None:
    path = write_dicom(BASE, PixelSpacing=[0.3, 0.3], ImagerPixelSpacing="0\\0")
    with pytest.warns(CalibrationWarning, match="ImagerPixelSpacing"):
        radiograph = load_radiograph(path)
    assert radiograph.spacing_source == "pixel_spacing"
    assert radiograph.spacing_mm == pytest.approx((0.3, 0.3))


def test_invalid_magnification_ignored(write_dicom: Writer) -> None:
    path = write_dicom(BASE, ImagerPixelSpacing=[0.2, 0.2], EstimatedRadiographicMagnificationFactor=-2)
    with pytest.warns(CalibrationWarning, match="Magnification"):
        radiograph = load_radiograph(path)
    assert radiograph.spacing_source == "imager_pixel_spacing"


def test_text_pixel_spacing_counts_as_missing(write_dicom: Writer) -> None:
    path = write_dicom(BASE, PixelSpacing="1.5\\2.5", ImagerPixelSpacing=None)
    raw = path.read_bytes()
    assert raw.count(b"1.5\\2.5") == 1
    path.write_bytes(raw.replace(b"1.5\\2.5", b"abc\\def"))  # same length, DS VR kept
    with pytest.warns(CalibrationWarning):
        radiograph = load_radiograph(path)
    assert radiograph.spacing_source == "none"
    assert any("abc" in w and "not a number" in w for w in radiograph.warnings)


def test_calibration_type_without_valid_pixel_spacing_falls_through(write_dicom: Writer) -> None:
    path = write_dicom(BASE, PixelSpacing="0\\0", PixelSpacingCalibrationType="GEOMETRY", ImagerPixelSpacing=[0.2, 0.2])
    with pytest.warns(CalibrationWarning):
        radiograph = load_radiograph(path)
    assert radiograph.spacing_source == "imager_pixel_spacing"


@pytest.mark.parametrize(
    ("given", "expected"),
    [(0.15, (0.15, 0.15)), ((0.1, 0.2), (0.1, 0.2)), (np.float32(0.5), (0.5, 0.5)), (1, (1.0, 1.0))],
)
def test_user_spacing_overrides_everything(write_dicom: Writer, given: object, expected: tuple) -> None:
    path = write_dicom(BASE, PixelSpacing=[0.3, 0.3], PixelSpacingCalibrationType="GEOMETRY")
    radiograph = load_radiograph(path, spacing=given)
    assert radiograph.spacing_source == "user"
    assert radiograph.spacing_mm == pytest.approx(expected)
    assert radiograph.metadata["file_spacing_source"] == "calibrated_pixel_spacing"
    assert radiograph.metadata["file_spacing_row_mm"] == pytest.approx(0.3)


def test_user_spacing_silences_missing_calibration_warning(write_dicom: Writer) -> None:
    path = write_dicom(BASE)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        radiograph = load_radiograph(path, spacing=0.2)
    assert radiograph.warnings == []


@pytest.mark.parametrize(
    "bad",
    [0, -0.1, float("nan"), float("inf"), "0.2", (0.1,), (0.1, 0.2, 0.3), (0.1, -1), (0.1, "x"), True, [0.1, None]],
)
def test_invalid_user_spacing_is_parameter_error(write_dicom: Writer, bad: object) -> None:
    path = write_dicom(BASE)
    with pytest.raises(ParameterError):
        load_radiograph(path, spacing=bad)


@pytest.mark.parametrize("bad", [0, -5, 1.5, "100", True])
def test_invalid_max_pixels_is_parameter_error(write_dicom: Writer, bad: object) -> None:
    with pytest.raises(ParameterError):
        load_radiograph(write_dicom(BASE), max_pixels=bad)


def test_multi_frame_takes_first_frame_with_warning(write_dicom: Writer) -> None:
    frames = np.stack([BASE, BASE + 1, BASE + 2]).astype(np.uint16)
    path = write_dicom(frames, BitsStored=16, PixelSpacing=[1, 1])
    with pytest.warns(InputWarning, match="first frame"):
        radiograph = load_radiograph(path)
    assert np.array_equal(radiograph.pixels, BASE)
    assert radiograph.metadata["number_of_frames"] == 3


def test_huge_header_refused_before_decoding(write_dicom: Writer) -> None:
    path = write_dicom(np.zeros((2, 2), np.uint16), Rows=60000, Columns=60000)
    with pytest.raises(InputError, match="pixels") as info:
        load_radiograph(path)
    assert "60000 x 60000" in str(info.value) and str(path) in str(info.value)


def test_max_pixels_limit_applies(write_dicom: Writer) -> None:
    path = write_dicom(BASE)
    with pytest.raises(InputError, match="too many pixels"):
        load_radiograph(path, max_pixels=5)
    assert _load_quiet(path, max_pixels=6).shape == (2, 3)


def test_dicom_without_pixel_data(tmp_path: Path, make_dataset: Builder) -> None:
    ds = make_dataset(BASE, PixelData=None)
    path = tmp_path / "nopixels.dcm"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(InputError, match="without pixel data"):
        load_radiograph(path)


def test_truncated_pixel_data(write_dicom: Writer) -> None:
    image = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    path = write_dicom(image)
    path.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(InputError, match="truncated pixel data"):
        load_radiograph(path)


def test_unknown_transfer_syntax_named(write_dicom: Writer) -> None:
    path = write_dicom(BASE)
    raw = path.read_bytes()
    # replace the explicit little endian UID (19 chars + pad) by a private one of the same length
    path.write_bytes(raw.replace(b"1.2.840.10008.1.2.1\x00", b"1.2.3.4.5.6.7.8.9.1\x00", 1))
    with pytest.raises(InputError, match=r"1\.2\.3\.4\.5\.6\.7\.8\.9\.1"):
        load_radiograph(path)


def test_missing_photometric_assumes_monochrome2(write_dicom: Writer) -> None:
    path = write_dicom(BASE, PhotometricInterpretation=None, PixelSpacing=[1, 1])
    with pytest.warns(InputWarning, match="MONOCHROME2"):
        radiograph = load_radiograph(path)
    assert np.array_equal(radiograph.pixels, BASE)


def test_rgb_dicom_converted_to_grey(tmp_path: Path, make_dataset: Builder) -> None:
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)
    rgb[1, 1] = (90, 90, 90)
    ds = make_dataset(
        np.zeros((2, 2), np.uint16),
        SamplesPerPixel=3,
        PhotometricInterpretation="RGB",
        PlanarConfiguration=0,
        BitsAllocated=8,
        BitsStored=8,
        HighBit=7,
        PixelData=rgb.tobytes(),
        PixelSpacing=[1, 1],
    )
    path = tmp_path / "rgb.dcm"
    ds.save_as(path, enforce_file_format=True)
    with pytest.warns(InputWarning, match="grey"):
        radiograph = load_radiograph(path)
    assert radiograph.pixels.dtype == np.uint16
    assert radiograph.pixels[0, 0] == pytest.approx(76, abs=1)
    assert radiograph.pixels[1, 1] == 90


def test_bare_dicom_without_preamble(tmp_path: Path, make_dataset: Builder) -> None:
    ds = make_dataset(BASE, BitsStored=12, HighBit=11, PixelSpacing=[0.5, 0.5])
    path = tmp_path / "bare.dcm"
    ds.file_meta = FileMetaDataset()
    ds.save_as(path, implicit_vr=True, little_endian=True)  # no preamble, no file meta
    assert path.read_bytes()[128:132] != b"DICM"
    with pytest.warns(InputWarning, match="Implicit VR Little Endian"):
        radiograph = load_radiograph(path)
    assert np.array_equal(radiograph.pixels, BASE)
    assert radiograph.spacing_mm == (0.5, 0.5)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0.2\\0.3", (0.2, 0.3)), (" 0.2 \\ 0.3 ", (0.2, 0.3)), ("1e-1\\1E-1", (0.1, 0.1)), (None, None)],
)
def test_parse_spacing_valid(text: str | None, expected: tuple | None) -> None:
    spacing, note = parse_spacing(text, "PixelSpacing")
    assert spacing == (pytest.approx(expected) if expected else None)
    assert note is None
