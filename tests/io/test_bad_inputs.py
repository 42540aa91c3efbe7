"""Files load_radiograph must refuse with a plain-words InputError, and format recognition by content."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from calcimg.errors import CalcimgError, InputError
from calcimg.io import load_radiograph, sniff_format


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.dcm"
    with pytest.raises(InputError, match="file not found") as info:
        load_radiograph(path)
    assert info.value.path == str(path)


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a directory"):
        load_radiograph(tmp_path)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "locked.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n")
    path.chmod(0)
    try:
        with pytest.raises(InputError, match="not readable"):
            load_radiograph(path)
    finally:
        path.chmod(0o600)


def test_permission_denied_is_reported_even_as_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The operating system's refusal (simulated, since root reads any file) becomes an InputError naming the file."""
    path = tmp_path / "locked.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n")

    def refuse(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(InputError, match="not readable") as info:
        load_radiograph(path)
    assert info.value.path == str(path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.dcm"
    path.write_bytes(b"")
    with pytest.raises(InputError, match="empty file"):
        load_radiograph(path)


@pytest.mark.parametrize("name", ["noise.dcm", "noise.png", "noise.tif", "noise"])
def test_random_bytes(tmp_path: Path, name: str) -> None:
    data = np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    assert sniff_format(data) is None
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(InputError, match="not a DICOM or image file") as info:
        load_radiograph(path)
    assert name in str(info.value)


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.dcm"
    path.write_text("patient notes, not an image\n")
    with pytest.raises(InputError, match="not a DICOM or image file"):
        load_radiograph(path)


def test_png_named_dcm_loads_by_content(tmp_path: Path) -> None:
    image = (np.arange(20).reshape(4, 5) * 3).astype(np.uint8)
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    path = tmp_path / "really_a_png.dcm"
    path.write_bytes(encoded.tobytes())
    with pytest.warns(UserWarning):
        radiograph = load_radiograph(path)
    assert radiograph.metadata["format"] == "png"
    assert np.array_equal(radiograph.pixels, image)


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
def test_dicom_magic_but_garbage(tmp_path: Path) -> None:
    path = tmp_path / "garbage.dcm"
    path.write_bytes(b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\xff" + b"\x01" * 20)
    with pytest.raises(InputError):
        load_radiograph(path)


def test_input_error_is_calcimg_error(tmp_path: Path) -> None:
    with pytest.raises(CalcimgError):
        load_radiograph(tmp_path / "missing.png")


def test_relative_path_kept_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ok, encoded = cv2.imencode(".png", np.zeros((2, 2), np.uint8))
    assert ok
    (tmp_path / "rel.png").write_bytes(encoded.tobytes())
    monkeypatch.chdir(tmp_path)
    with pytest.warns(UserWarning):
        radiograph = load_radiograph("rel.png")
    assert radiograph.path == "rel.png"


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 200, "png"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 200, "jpeg"),
        (b"II*\x00" + b"\x00" * 200, "tiff"),
        (b"MM\x00*" + b"\x00" * 200, "tiff"),
        (b"\x00" * 128 + b"DICM" + b"\x00" * 100, "dicom"),
        (b"\x08\x00\x05\x00CS\x0a\x00" + b"\x00" * 200, "dicom_bare"),
        (b"GIF89a" + b"\x00" * 200, None),
        (b"BM" + b"\x00" * 200, None),
    ],
)
def test_sniff_format(head: bytes, expected: str | None) -> None:
    assert sniff_format(head) == expected


def test_load_mask_reads_values_unchanged_and_refuses_what_is_not_a_mask(tmp_path: Path) -> None:
    """Masks keep their label values; a wrong shape, a colour image or a DICOM file is an InputError naming it."""
    import cv2
    import numpy as np
    import tifffile

    from calcimg.io import load_mask

    labels = np.zeros((6, 5), np.uint16)
    labels[1:3, 1:3] = 7
    tifffile.imwrite(tmp_path / "labels.tif", labels)
    cv2.imwrite(str(tmp_path / "mask.png"), (labels > 0).astype(np.uint8) * 255)
    assert np.array_equal(load_mask(tmp_path / "labels.tif"), labels)
    assert np.array_equal(load_mask(tmp_path / "mask.png") > 0, labels > 0)
    with pytest.raises(InputError, match=r"labels\.tif.*shape"):
        load_mask(tmp_path / "labels.tif", shape=(5, 5))
    cv2.imwrite(str(tmp_path / "colour.png"), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(InputError, match=r"colour\.png.*single-channel"):
        load_mask(tmp_path / "colour.png")
    (tmp_path / "fake.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 64)
    with pytest.raises(InputError, match=r"fake\.dcm.*TIFF or PNG"):
        load_mask(tmp_path / "fake.dcm")
