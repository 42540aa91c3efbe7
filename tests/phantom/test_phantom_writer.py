"""Written files: valid DX DICOM, readable truth, manifest, and a faithful round trip through calcimg.io."""

from __future__ import annotations

import csv
import datetime as dt
import importlib.util
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
import tifffile

from calcimg.errors import ParameterError
from calcimg.phantom import PhantomConfig, make_pair, write_pair, write_phantoms

BODY_PARTS = {"hand": "HAND", "forearm": "ELBOW", "knee": "KNEE", "pelvis": "PELVIS"}


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory, small_config: PhantomConfig) -> dict:
    out = tmp_path_factory.mktemp("phantoms")
    pair = make_pair(8, "hand", small_config)
    return {"pair": pair, "paths": write_pair(pair, out, "P003", "dcm"), "out": out}


def test_dicom_tags(written: dict) -> None:
    pair, paths = written["pair"], written["paths"]
    uids = set()
    for visit in pair.visits:
        raw = Path(paths[visit.name]).read_bytes()
        assert raw[128:132] == b"DICM"
        ds = pydicom.dcmread(paths[visit.name])
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.1.1"
        assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
        assert ds.Modality == "DX" and ds.PresentationIntentType == "FOR PRESENTATION"
        assert ds.PhotometricInterpretation == visit.photometric
        assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit) == (16, visit.bits_stored, visit.bits_stored - 1)
        assert ds.PixelRepresentation == 0 and ds.SamplesPerPixel == 1
        assert (ds.Rows, ds.Columns) == visit.shape
        assert [float(x) for x in ds.ImagerPixelSpacing] == [visit.spacing_mm, visit.spacing_mm]
        assert "PixelSpacing" not in ds and "EstimatedRadiographicMagnificationFactor" not in ds
        assert ds.BodyPartExamined == "HAND" and ds.ViewPosition == "PA"
        assert ds.ImageLaterality == pair.summary["laterality"] in ("L", "R")
        assert ds.StudyDate == ds.AcquisitionDate == visit.date
        assert ds.Manufacturer == "calcimg phantom"
        assert str(ds.PatientName) == "PHANTOM^P003" and ds.PatientID == "PH-P003"
        assert ds.PatientBirthDate == "19600101"
        np.testing.assert_array_equal(ds.pixel_array, visit.stored)
        uids |= {ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID}
        assert all(pydicom.uid.UID(u).is_valid for u in (ds.StudyInstanceUID, ds.SOPInstanceUID))
    assert len(uids) == 6
    days = (
        dt.date.fromisoformat(pair.post.date[:4] + "-" + pair.post.date[4:6] + "-" + pair.post.date[6:])
        - dt.date.fromisoformat(pair.pre.date[:4] + "-" + pair.pre.date[4:6] + "-" + pair.pre.date[6:])
    ).days
    assert 180 <= days < 550


def test_truth_files(written: dict) -> None:
    pair, paths = written["pair"], written["paths"]
    for visit in pair.visits:
        lesions = tifffile.imread(paths[f"{visit.name}_lesions"])
        comps = tifffile.imread(paths[f"{visit.name}_components"])
        assert lesions.dtype == comps.dtype == np.uint16
        np.testing.assert_array_equal(lesions, visit.identity_labels)
        np.testing.assert_array_equal(comps, visit.component_labels)
    table = pd.read_csv(paths["lesions_csv"])
    assert list(table.columns) == list(pair.lesions.columns)
    np.testing.assert_array_equal(table.area_pre_px, pair.lesions.area_pre_px)
    np.testing.assert_allclose(table.area_post_mm2, pair.lesions.area_post_mm2, rtol=1e-5)
    assert table.change.tolist() == pair.lesions.change.tolist()
    summary = json.loads(Path(paths["pair_json"]).read_text())
    assert summary["calcimg_version"]
    assert summary["subject"] == "P003" and summary["files"]["pre"] == "P003_hand_pre.dcm"
    assert summary["category"] == pair.summary["category"]
    assert summary["total_area_post_px"] == pair.summary["total_area_post_px"]
    assert summary["transform"]["rotation_deg"] == pytest.approx(pair.summary["transform"]["rotation_deg"])


def test_tiff_resolution(tmp_path: Path, small_config: PhantomConfig) -> None:
    pair = make_pair(2, "knee", small_config)
    paths = write_pair(pair, tmp_path, "P001", "tif")
    with tifffile.TiffFile(paths["pre"]) as tif:
        page = tif.pages[0]
        assert page.resolutionunit == tifffile.RESUNIT.CENTIMETER
        assert 10.0 / page.resolution[0] == pytest.approx(pair.pre.spacing_mm, rel=1e-9)
        np.testing.assert_array_equal(page.asarray(), pair.pre.radiograph.pixels)


@pytest.mark.parametrize("fmt", ["dcm", "png", "tif"])
def test_round_trip_through_calcimg_io(fmt: str, tmp_path: Path, pair_of, small_config: PhantomConfig) -> None:
    if importlib.util.find_spec("calcimg.io") is None:
        pytest.skip("calcimg.io is not available")
    from calcimg.io import load_radiograph

    pair = pair_of(3, "pelvis", small_config)
    paths = write_pair(pair, tmp_path, "P002", fmt)
    for visit in pair.visits:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            loaded = load_radiograph(paths[visit.name])
        np.testing.assert_array_equal(loaded.pixels, visit.radiograph.pixels)
        # PNG stores whole pixels per metre: within 0.1% at this coarse test spacing, 0.01% at clinical ones
        assert loaded.spacing_mm == pytest.approx(visit.radiograph.spacing_mm, rel=1e-3)
        expected = {"dcm": "imager_pixel_spacing", "png": "file_resolution", "tif": "file_resolution"}[fmt]
        assert loaded.spacing_source == expected
        if fmt == "dcm":
            assert loaded.bits_stored == visit.bits_stored
            assert loaded.spacing_mm == visit.radiograph.spacing_mm


def test_write_phantoms_manifest(tmp_path: Path) -> None:
    config = PhantomConfig(shape=(160, 128))
    written = write_phantoms(tmp_path, pairs=5, seed=3, fmt="tif", config=config)
    assert [w["subject"] for w in written] == ["P001", "P002", "P003", "P004", "P005"]
    assert [w["site"] for w in written] == ["hand", "forearm", "knee", "pelvis", "hand"]
    with open(tmp_path / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["timepoint"] for r in rows[:2]] == ["pre", "post"] and len(rows) == 10
    assert rows[2] == {
        "subject": "P002",
        "site": "forearm",
        "timepoint": "pre",
        "date": written[1]["pre_date"],
        "path": "P002_forearm_pre.tif",
    }
    for r in rows:
        assert (tmp_path / r["path"]).is_file()
    only = write_phantoms(tmp_path / "elbows", pairs=2, seed=3, sites="elbow", fmt="png", config=config)
    assert {w["site"] for w in only} == {"forearm"}


def test_body_parts(tmp_path: Path) -> None:
    config = PhantomConfig(shape=(96, 96))
    for item in write_phantoms(tmp_path, pairs=4, seed=1, config=config):
        ds = pydicom.dcmread(item["pre"], stop_before_pixels=True)
        assert ds.BodyPartExamined == BODY_PARTS[item["site"]]
        assert ds.ImageLaterality == ("B" if item["site"] == "pelvis" else ds.ImageLaterality)


def test_bad_arguments(tmp_path: Path, small_config: PhantomConfig) -> None:
    pair = make_pair(0, "hand", PhantomConfig(shape=(64, 64)))
    with pytest.raises(ParameterError, match="format"):
        write_pair(pair, tmp_path, "P001", "jpg")
    with pytest.raises(ParameterError, match="site"):
        write_phantoms(tmp_path, pairs=1, seed=0, sites=["foot"])
    with pytest.raises(ParameterError, match="at least 1"):
        write_phantoms(tmp_path, pairs=0, seed=0)
    with pytest.raises(ParameterError, match="site"):
        make_pair(0, "skull")
