"""Fixtures for the io tests: the real-data folder, a cached loader for it, and a synthetic DICOM builder."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom.dataset import Dataset
from synthetic_dicom import build_dataset

from calcimg.io import load_radiograph
from calcimg.model import Radiograph

REPO_ROOT = Path(__file__).resolve().parents[2]


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
