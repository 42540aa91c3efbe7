"""Fixtures for the io tests: the real-data folder, a cached loader for it, and a synthetic DICOM builder."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from calcimg.io import load_radiograph
from calcimg.model import Radiograph

REPO_ROOT = Path(__file__).resolve().parents[2]
CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"


def pytest_configure(config: pytest.Config) -> None:
    """Register the realdata marker (harmless if pyproject registers it too)."""
    config.addinivalue_line("markers", "realdata: needs the real DICOM files in ../shared/realdata")


@pytest.fixture(scope="session")
def realdata_dir() -> Path:
    """The folder of real radiographs ($CALCIMG_REALDATA or ../shared/realdata); skip when absent."""
    override = os.environ.get("CALCIMG_REALDATA")
    folder = Path(override) if override else REPO_ROOT / ".." / "shared" / "realdata"
    if not folder.is_dir():
        pytest.skip(f"real data folder {folder} not found")
    return folder


@pytest.fixture(scope="session")
def load_real(realdata_dir: Path) -> Callable[[str], Radiograph]:
    """Load a real file by name once per session (warnings silenced; tests that check them load again)."""
    cache: dict[str, Radiograph] = {}

    def load(name: str) -> Radiograph:
        if name not in cache:
            path = realdata_dir / name
            if not path.is_file():
                pytest.skip(f"{name} not in {realdata_dir}")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cache[name] = load_radiograph(path)
        return cache[name]

    return load


def build_dataset(pixels: np.ndarray, **elements: Any) -> Dataset:
    """Build a small monochrome CR dataset with file meta around ``pixels`` (uint16 or int16).

    Keyword arguments set or override elements by keyword; a value of None deletes the element.
    """
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = CR_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CR_IMAGE_STORAGE
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CR"
    ds.PatientID = "SYN-1"
    ds.PatientName = "Synthetic^Test"
    frames = pixels.shape[0] if pixels.ndim == 3 else 1
    ds.Rows, ds.Columns = pixels.shape[-2:]
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
    ds.PixelData = pixels.astype(pixels.dtype.newbyteorder("<")).tobytes()
    for keyword, value in elements.items():
        if value is None:
            if keyword in ds:
                delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    return ds


@pytest.fixture
def make_dataset() -> Callable[..., Dataset]:
    """The :func:`build_dataset` function, for tests that change a dataset before writing it."""
    return build_dataset


@pytest.fixture
def write_dicom(tmp_path: Path) -> Callable[..., Path]:
    """Write a synthetic DICOM file: ``write_dicom(pixels, name="x.dcm", **elements) -> Path``."""

    def write(pixels: np.ndarray, name: str = "synthetic.dcm", **elements: Any) -> Path:
        ds = build_dataset(pixels, **elements)
        path = tmp_path / name
        ds.save_as(path, enforce_file_format=True)
        return path

    return write
