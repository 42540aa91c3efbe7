"""Fixtures of the napari plugin's tests: a small phantom pair on disk, and napari's settings kept per run.

GUI tests need napari, pytest-qt and a screen: pytest-xvfb starts Xvfb and Qt's normal xcb platform is used
(the offscreen platform has no OpenGL here; see docs/napari.md). They carry the ``gui`` marker.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import pytest

from calcimg.model import Params

#: The scripted review scenarios (which lesion is deleted, merged, ...) were written for this pair's detections
#: without paired support between the visits; they test the review mechanics, not detection, so they pin it off.
SCENARIO_PARAMS = Params(paired_support_min_score=1.0)

# napari reads its settings from the XDG folders: keep them inside this run so runs do not leak into each other.
_XDG = Path(tempfile.mkdtemp(prefix="calcimg-napari-tests-"))
for _name in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_RUNTIME_DIR", "XDG_DATA_HOME"):
    os.environ.setdefault(_name, str(_XDG / _name.lower()))
    Path(os.environ[_name]).mkdir(parents=True, exist_ok=True, mode=0o700)
os.environ.setdefault("NAPARI_CONFIG", str(_XDG / "napari-settings.yaml"))

#: A 384 x 384 hand phantom at 0.65 mm: 4 lesions found at each visit (1 grown group, 3 new, 3 resolved).
PAIR_SEED = 1
PAIR_SITE = "hand"


@pytest.fixture(scope="session")
def phantom_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The small phantom pair written as DICOM files (so results record real input paths)."""
    from calcimg.phantom import PhantomConfig, make_pair, write_pair

    pair = make_pair(PAIR_SEED, PAIR_SITE, PhantomConfig(shape=(384, 384)))
    written = write_pair(pair, tmp_path_factory.mktemp("phantom"), "P001", fmt="dcm")
    return {"pre": Path(written["pre"]), "post": Path(written["post"])}


@pytest.fixture(scope="session")
def phantom_radiographs(phantom_files: dict[str, Path]) -> dict[str, object]:
    """The pair read back with calcimg's reader."""
    from calcimg import load_radiograph

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {visit: load_radiograph(path) for visit, path in phantom_files.items()}


@pytest.fixture(scope="session")
def phantom_result(phantom_radiographs: dict[str, object]) -> object:
    """``compare_pair`` of the phantom pair."""
    from calcimg import compare_pair

    return compare_pair(phantom_radiographs["pre"], phantom_radiographs["post"], SCENARIO_PARAMS)
