"""DICOM Segmentation output of ``calcimg batch --dicom-seg``: readable, referencing its source, same mask."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import highdicom
import numpy as np
import pydicom
import pytest
import tifffile

from calcimg.cli import main
from calcimg.report.dicom_seg import segmentation_bytes

SAMPLES = Path(__file__).resolve().parents[1] / "sample_images"


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("study")
    for name in ("S01_hand_pre.dcm", "S01_hand_post.dcm"):
        shutil.copy(SAMPLES / name, folder / name)
    return folder


def test_dicom_seg_needs_keep_identifiers(study, tmp_path, capsys):
    assert main(["batch", str(study), "--out", str(tmp_path / "out"), "--dicom-seg", "-q"]) == 1
    assert "--dicom-seg needs --keep-identifiers" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_batch_writes_segmentations_that_reference_their_sources(study, tmp_path):
    out = tmp_path / "out"
    args = ["batch", str(study), "--out", str(out), "--dicom-seg", "--keep-identifiers", "--jobs", "1", "-q"]
    assert main(args) == 0
    segs = sorted(out.rglob("*_seg.dcm"))
    assert [p.name for p in segs] == ["post_seg.dcm", "pre_seg.dcm"]
    for seg_path in segs:
        visit = seg_path.name.split("_")[0]
        source = pydicom.dcmread(study / f"S01_hand_{visit}.dcm")
        seg = highdicom.seg.segread(seg_path)
        assert seg.Modality == "SEG"
        assert seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == (
            source.SOPInstanceUID
        )
        assert seg.StudyInstanceUID == source.StudyInstanceUID
        mask = seg.get_pixels_by_source_instance([source.SOPInstanceUID], segment_numbers=[1])[0, :, :, 0]
        labels = tifffile.imread(seg_path.with_name(f"{visit}_labels.tif"))
        assert np.array_equal(mask > 0, labels > 0)
        assert seg.SegmentSequence[0].SegmentLabel == "Calcinosis"
        assert seg.SegmentSequence[0].SegmentAlgorithmName == "calcimg"


def test_segmentation_refuses_a_label_map_of_another_shape():
    from calcimg.errors import InputError

    with pytest.raises(InputError, match="pixel grid differs"):
        segmentation_bytes(np.zeros((3, 3), np.int32), SAMPLES / "S01_hand_pre.dcm")


def test_segmentation_of_no_lesion_is_an_empty_mask():
    source = pydicom.dcmread(SAMPLES / "S01_hand_pre.dcm")
    data = segmentation_bytes(np.zeros((source.Rows, source.Columns), np.int32), SAMPLES / "S01_hand_pre.dcm")
    seg = highdicom.seg.segread(io.BytesIO(data))
    assert seg.get_pixels_by_source_instance([source.SOPInstanceUID], segment_numbers=[1]).sum() == 0
