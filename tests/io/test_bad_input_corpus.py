"""The bad-input corpus of docs/robustness.md, generated here (no committed binaries).

Every case is read with :func:`calcimg.io.load_radiograph` and, when readable, segmented with
:func:`calcimg.pipeline.segment_image`: it either gives an :class:`~calcimg.errors.InputError` that names the file
and the problem, or a valid result. The same corpus then goes through ``calcimg batch``: every good item completes
and ``errors.csv`` lists every bad one.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import tracemalloc
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import tifffile
from synthetic_dicom import build_dataset

from calcimg.cli import main
from calcimg.errors import InputError
from calcimg.io import load_radiograph
from calcimg.pipeline import segment_image

BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"

#: A small image with some structure: a smooth ramp and one bright disk.
_YY, _XX = np.mgrid[0:48, 0:48]
SCENE = (1000 + 20 * _XX + 1500 * ((_YY - 24) ** 2 + (_XX - 20) ** 2 < 16)).astype(np.uint16)


def dicom_bytes(pixels: np.ndarray | None, **elements: object) -> bytes:
    """A small CR DICOM file (explicit VR little endian) around ``pixels`` (uint16/int16, 2-D or frames), without
    patient identifiers.

    Keyword arguments set elements by keyword; None deletes one. ``pixels=None`` gives a file without pixel data.
    """
    ds = build_dataset(pixels, **{"PatientID": None, "PatientName": None, **elements})
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def sr_bytes() -> bytes:
    """A Basic Text SR-like document: a valid DICOM file that holds no image."""
    data = dicom_bytes(None, SOPClassUID=BASIC_TEXT_SR, Modality="SR", ValueType="CONTAINER")
    return data


def png_bytes(image: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    return encoded.tobytes()


def tiff_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, image)
    return buffer.getvalue()


def huge_png_bytes() -> bytes:
    """A PNG whose IHDR claims 60000 x 60000 16-bit pixels, with one tiny IDAT."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 60000, 60000, 16, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


@dataclass(frozen=True)
class Case:
    """One corpus file: how to make it and what reading it must give.

    Attributes
    ----------
    name : str
        File name (its extension may lie about the content).
    make : callable
        ``make(path)`` creates the file.
    error : str or None
        Regular expression the InputError message must match; None when the file is valid.
    check : callable or None
        For valid files, ``check(radiograph)`` asserts what the reader must have done.
    """

    name: str
    make: Callable[[Path], None]
    error: str | None = None
    check: Callable[..., None] | None = None


def _bytes(data: bytes | Callable[[], bytes]) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data() if callable(data) else data)


def _truncated_dicom(path: Path) -> None:
    data = dicom_bytes(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64))
    path.write_bytes(data[:-1000])  # header intact, pixel data cut


def _symlink_loop(path: Path) -> None:
    path.symlink_to(path.name)


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _random(seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, 4096, dtype=np.uint8).tobytes()


def _spacing_none(radiograph: object) -> None:
    assert radiograph.spacing_source == "none" and radiograph.spacing_mm is None
    assert any("not a valid spacing" in w for w in radiograph.warnings)


CASES: list[Case] = [
    Case("empty.dcm", _bytes(b""), r"empty file"),
    Case("noise.dcm", _bytes(lambda: _random(1)), r"not a DICOM or image file"),
    Case("noise.png", _bytes(lambda: _random(2)), r"not a DICOM or image file"),
    Case("truncated.dcm", _truncated_dicom, r"truncated pixel data"),
    Case("report_sr.dcm", _bytes(sr_bytes), r"DICOM file without pixel data"),
    Case(
        "huge_header.dcm",
        _bytes(lambda: dicom_bytes(np.zeros((2, 2), np.uint16), Rows=60000, Columns=60000)),
        r"too many pixels.*60000 x 60000",
    ),
    Case("huge_header.png", _bytes(huge_png_bytes), r"too many pixels.*60000 x 60000"),
    Case("nan.tif", _bytes(lambda: tiff_bytes(np.where(SCENE > 2000, np.nan, SCENE).astype(np.float32))), "NaN"),
    Case("inf.tif", _bytes(lambda: tiff_bytes(np.where(SCENE > 2000, np.inf, SCENE).astype(np.float32))), "NaN"),
    Case("symlink_loop.dcm", _symlink_loop, r"could not be read|not readable|not a regular file"),
    Case("fifo.dcm", _fifo, r"not a regular file"),
    Case("one_pixel.png", _bytes(lambda: png_bytes(np.array([[77]], np.uint8)))),
    Case("three_by_three.dcm", _bytes(lambda: dicom_bytes(SCENE[:3, :3], PixelSpacing=[0.1, 0.1]))),
    Case("constant.png", _bytes(lambda: png_bytes(np.full((48, 48), 100, np.uint8)))),
    Case("saturated.dcm", _bytes(lambda: dicom_bytes(np.full((48, 48), 4095, np.uint16), BitsStored=12, HighBit=11))),
    Case("saturated16.png", _bytes(lambda: png_bytes(np.full((48, 48), 65535, np.uint16)))),
    Case(
        "float.tif",
        _bytes(lambda: tiff_bytes(SCENE.astype(np.float32) / 7)),
        check=lambda r: r.pixels.dtype == np.float32 or pytest.fail("float kept"),
    ),
    Case(
        "rgb.png",
        _bytes(lambda: png_bytes(np.dstack([SCENE // 16, SCENE // 20, SCENE // 24]).astype(np.uint8))),
        check=lambda r: any("colour" in w for w in r.warnings) or pytest.fail("colour warning"),
    ),
    Case(
        "rgba.png",
        _bytes(lambda: png_bytes(np.dstack([SCENE // 16] * 3 + [np.full_like(SCENE, 9)]).astype(np.uint8))),
        check=lambda r: any("alpha" in w for w in r.warnings) or pytest.fail("alpha warning"),
    ),
    Case(
        "signed16.dcm",
        _bytes(lambda: dicom_bytes((SCENE.astype(np.int32) - 3000).astype(np.int16))),
        check=lambda r: (r.pixels.dtype == np.uint16 and r.metadata["pixel_offset"] == 32768) or pytest.fail("offset"),
    ),
    Case(
        "signed16.tif",
        _bytes(lambda: tiff_bytes((SCENE.astype(np.int32) - 3000).astype(np.int16))),
        check=lambda r: r.metadata["pixel_offset"] == 32768 or pytest.fail("offset"),
    ),
    Case(
        "multiframe.dcm",
        _bytes(lambda: dicom_bytes(np.stack([SCENE, SCENE // 2, SCENE // 3]))),
        check=lambda r: (
            (np.array_equal(r.pixels, SCENE) and r.metadata["number_of_frames"] == 3) or pytest.fail("first frame")
        ),
    ),
    Case("spacing_zero.dcm", _bytes(lambda: dicom_bytes(SCENE, PixelSpacing=[0, 0])), check=_spacing_none),
    Case("spacing_negative.dcm", _bytes(lambda: dicom_bytes(SCENE, PixelSpacing=[-0.1, 0.1])), check=_spacing_none),
    Case(
        "spacing_nan.dcm",
        _bytes(lambda: dicom_bytes(SCENE, ImagerPixelSpacing="1.5\\2.5").replace(b"1.5\\2.5", b"nan\\nan")),
        check=_spacing_none,
    ),
    Case(
        "spacing_text.dcm",
        _bytes(lambda: dicom_bytes(SCENE, PixelSpacing="1.5\\2.5").replace(b"1.5\\2.5", b"abc\\def")),
        check=_spacing_none,
    ),
    Case(
        "mono1_rescale.dcm",
        _bytes(
            lambda: dicom_bytes(
                SCENE % 4096,
                BitsStored=12,
                HighBit=11,
                RescaleSlope=2,
                RescaleIntercept=-1000,
                PhotometricInterpretation="MONOCHROME1",
            )
        ),
        check=lambda r: (
            np.array_equal(r.pixels, 8190 - 2 * (SCENE % 4096).astype(np.int64)) or pytest.fail("MONOCHROME1 reflected")
        ),
    ),
    Case(
        "png_named.dcm",
        _bytes(lambda: png_bytes((SCENE // 16).astype(np.uint8))),
        check=lambda r: r.metadata["format"] == "png" or pytest.fail("read as PNG"),
    ),
    Case(
        "dicom_named.png",
        _bytes(lambda: dicom_bytes(SCENE, PixelSpacing=[0.1, 0.1])),
        check=lambda r: (r.metadata["format"] == "dicom" and r.spacing_mm == (0.1, 0.1)) or pytest.fail("DICOM"),
    ),
]

BAD = [case for case in CASES if case.error is not None]
GOOD = [case for case in CASES if case.error is None]


def make_corpus(folder: Path) -> dict[str, Case]:
    """Write every corpus file into ``folder`` and return the cases by name."""
    folder.mkdir(parents=True, exist_ok=True)
    for case in CASES:
        case.make(folder / case.name)
    return {case.name: case for case in CASES}


def _load(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_radiograph(path)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("case", BAD, ids=[c.name for c in BAD])
def test_bad_input_is_input_error_naming_file_and_problem(tmp_path: Path, case: Case) -> None:
    path = tmp_path / case.name
    case.make(path)
    with pytest.raises(InputError, match=case.error) as info:
        _load(path)
    assert info.value.path == str(path)
    assert str(info.value).startswith(f"{path}: ")
    with pytest.raises(InputError, match=case.error):  # the pipeline says the same, never a traceback
        segment_image(path)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", GOOD, ids=[c.name for c in GOOD])
def test_valid_odd_input_loads_and_segments(tmp_path: Path, case: Case) -> None:
    path = tmp_path / case.name
    case.make(path)
    radiograph = _load(path)
    assert radiograph.pixels.ndim == 2 and radiograph.pixels.dtype in (np.uint8, np.uint16, np.float32)
    if case.check is not None:
        case.check(radiograph)
    result = segment_image(radiograph)
    assert result.labels.shape == radiograph.shape
    assert result.summary["count"] == len(result.lesions) >= 0
    assert int(result.labels.max()) == result.summary["count"]


@pytest.mark.parametrize("name", ["huge_header.dcm", "huge_header.png"])
def test_huge_header_refused_without_allocation(tmp_path: Path, name: str) -> None:
    """60000 x 60000 16-bit pixels would be 7.2 GB: refused from the header, with less than 5 MB allocated on
    the way (so before any decoding)."""
    path = tmp_path / name
    next(c for c in CASES if c.name == name).make(path)
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match="too many pixels"):
            load_radiograph(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000


def test_symlink_to_device_is_refused_without_reading(tmp_path: Path) -> None:
    """A link to /dev/zero named like an image would be read forever: only regular files are read."""
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    path = tmp_path / "zero.dcm"
    path.symlink_to("/dev/zero")
    with pytest.raises(InputError, match="not a regular file"):
        _load(path)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_in_corpus(tmp_path: Path) -> None:
    path = tmp_path / "locked.dcm"
    path.write_bytes(dicom_bytes(SCENE))
    path.chmod(0)
    try:
        with pytest.raises(InputError, match="not readable"):
            _load(path)
    finally:
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)


@pytest.mark.timeout(120)
def test_batch_over_the_corpus_completes_every_good_item(tmp_path: Path) -> None:
    """``calcimg batch`` on the whole corpus: each valid file gets a whole result, each bad one a row in
    errors.csv naming it, and nothing is left half-written."""
    study = tmp_path / "study"
    cases = make_corpus(study)
    out = tmp_path / "out"
    status = main(["batch", str(study), "--out", str(out), "--jobs", "1", "--pseudonym-key", "k", "-q"])
    assert status == 1
    errors = pd.read_csv(out / "errors.csv")
    named = " ".join(errors["file"].astype(str))
    for case in BAD:
        assert case.name in named, f"{case.name} not in errors.csv"
    assert set(errors["kind"]) <= {"error", "unreadable"}
    records = list(out.rglob("item.json"))
    inputs = {p.parent.name.rsplit("-", 1)[0] for p in records}
    assert inputs == {safe_stem(case.name) for case in GOOD}
    assert not (out / ".partial").exists()
    assert not [p for p in out.rglob("*.tmp")]
    cohort_errors = set(errors["file"])
    assert not any(Path(case).name in cohort_errors for case in cases if cases[case].error is None)


def safe_stem(name: str) -> str:
    """The stem as it appears in an ``unplaced/<stem>-<hash>`` item folder."""
    return Path(name).stem
