"""Tests of the ``calcimg segment`` and ``calcimg params`` subcommands."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import tifffile

from calcimg import __version__
from calcimg.cli import main
from calcimg.model import Params
from calcimg.pipeline import segment_image
from calcimg.report.files import CANDIDATE_COLUMNS, LESION_COLUMNS

OUTPUT_SUFFIXES = ("_labels.tif", "_lesions.csv", "_candidates.csv", "_summary.json", "_overlay.png")
#: (row, col, radius) of the disks on the test images.
DISKS = ((60, 60, 6), (60, 190, 10), (180, 90, 8), (190, 190, 4))


def _disk_pixels(seed: int) -> np.ndarray:
    """256 x 256 uint16: a 1000-level ramp with N(0, 10) noise and four disks raised by 400."""
    rng = np.random.default_rng(seed)
    rows, cols = np.ogrid[:256, :256]
    image = 1000 + rng.normal(0, 10, (256, 256)) + 1000 * cols / 255.0
    for r0, c0, radius in DISKS:
        image[(rows - r0) ** 2 + (cols - c0) ** 2 <= radius**2] += 400
    return np.clip(np.round(image), 0, 65535).astype(np.uint16)


def _write_tiff(path: Path, pixels: np.ndarray, mm_per_px: float | None = 0.1) -> Path:
    """A greyscale TIFF, calibrated through its resolution tags (pixels per cm) unless mm_per_px is None."""
    if mm_per_px is None:
        tifffile.imwrite(path, pixels, photometric="minisblack")
    else:
        resolution = (10.0 / mm_per_px, 10.0 / mm_per_px)
        tifffile.imwrite(path, pixels, photometric="minisblack", resolution=resolution, resolutionunit="CENTIMETER")
    return path


@pytest.fixture
def images(tmp_path) -> list[Path]:
    """Two calibrated (0.1 mm) TIFF radiographs with four disks each."""
    folder = tmp_path / "in"
    folder.mkdir()
    return [_write_tiff(folder / f"scan_{k}.tif", _disk_pixels(k)) for k in (1, 2)]


def _outputs(out: Path, stem: str) -> list[Path]:
    return [out / f"{stem}{suffix}" for suffix in OUTPUT_SUFFIXES]


def test_segment_writes_five_files_per_image(images, tmp_path, capsys):
    """Each image gets <stem>_labels.tif, _lesions.csv, _candidates.csv, _summary.json and _overlay.png; exit
    status 0."""
    out = tmp_path / "out"
    assert main(["segment", *map(str, images), "--out", str(out)]) == 0
    for image in images:
        assert all(path.is_file() for path in _outputs(out, image.stem))
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for i in images for p in _outputs(out, i.stem))
    printed = capsys.readouterr().out
    assert "4 lesion(s)" in printed and "spacing from file_resolution" in printed
    summary = json.loads((out / f"{images[0].stem}_summary.json").read_text())
    rejected = sum(summary["rejected"].values())
    assert f"{rejected} candidate(s) rejected" in printed


def test_segment_outputs_match_the_library(images, tmp_path):
    """The label TIFF holds the same labels as segment_image (uint16 on disk), the CSV one row per lesion with
    the documented columns, the summary the same record; the overlay is a colour picture of the image's size."""
    out = tmp_path / "out"
    assert main(["segment", str(images[0]), "--out", str(out), "-q"]) == 0
    result = segment_image(images[0])
    stem = images[0].stem

    with tifffile.TiffFile(out / f"{stem}_labels.tif") as tif:
        labels = tif.pages[0].asarray()
        description = tif.pages[0].description
    assert labels.dtype == np.uint16
    assert f"calcimg {__version__}" in description
    assert result.summary["input"]["content_hash"] in description
    assert np.array_equal(labels.astype(np.int32), result.labels)

    table = pd.read_csv(out / f"{stem}_lesions.csv")
    assert list(table.columns) == list(LESION_COLUMNS)
    assert len(table) == len(result.lesions) == 4
    assert table["lesion_id"].tolist() == [1, 2, 3, 4]
    assert table["area_px"].tolist() == result.lesions["area_px"].tolist()
    assert np.allclose(table["area_mm2"], result.lesions["area_mm2"], rtol=1e-5)

    candidates = pd.read_csv(out / f"{stem}_candidates.csv", keep_default_na=False)
    assert list(candidates.columns) == list(CANDIDATE_COLUMNS)
    assert candidates["candidate_id"].tolist() == result.candidate_table["candidate_id"].tolist()
    decisions = candidates["decision"].value_counts().to_dict()
    assert decisions.pop("accepted") == 4
    assert decisions == result.summary["rejected"]
    labelled = np.isin(result.candidates, candidates.loc[candidates["decision"] == "accepted", "candidate_id"])
    assert (result.labels[labelled] > 0).all()
    assert np.allclose(candidates["area_mm2"].astype(float), candidates["area_px"] * 0.01, rtol=1e-5)

    summary = json.loads((out / f"{stem}_summary.json").read_text())
    assert summary["calcimg_version"] == __version__
    assert summary["count"] == 4
    assert summary["spacing_source"] == "file_resolution"
    assert summary["spacing_mm"] == pytest.approx([0.1, 0.1])
    assert summary["input"]["content_hash"] == result.summary["input"]["content_hash"]
    assert summary["input"]["path"] == str(images[0])

    overlay = cv2.imread(str(out / f"{stem}_overlay.png"), cv2.IMREAD_UNCHANGED)
    assert overlay.shape == (256, 256, 3) and overlay.dtype == np.uint8


def test_labels_tiff_reads_with_tifffile_imread(images, tmp_path):
    """The label TIFF opens with plain tifffile.imread (as napari and most Python tools read TIFFs)."""
    out = tmp_path / "out"
    assert main(["segment", str(images[0]), "--out", str(out), "-q"]) == 0
    labels = tifffile.imread(out / f"{images[0].stem}_labels.tif")
    assert labels.shape == (256, 256) and int(labels.max()) == 4


def test_segment_bad_file_among_good_ones(images, tmp_path, capsys):
    """A file that is not an image: exit status 1, stderr names it, the good images' outputs are all written."""
    bad = images[0].parent / "broken_scan.tif"
    bad.write_bytes(b"this is not an image at all")
    out = tmp_path / "out"
    status = main(["segment", str(images[0]), str(bad), str(images[1]), "--out", str(out)])
    assert status == 1
    captured = capsys.readouterr()
    assert "broken_scan.tif" in captured.err
    for image in images:
        assert all(path.is_file() for path in _outputs(out, image.stem))
    assert not any(path.exists() for path in _outputs(out, bad.stem))


def test_segment_missing_file_is_reported(images, tmp_path, capsys):
    """A path that does not exist is reported by name with exit status 1; the other image is still done."""
    out = tmp_path / "out"
    missing = images[0].parent / "nowhere.dcm"
    assert main(["segment", str(missing), str(images[1]), "--out", str(out), "-q"]) == 1
    assert "nowhere.dcm" in capsys.readouterr().err
    assert all(path.is_file() for path in _outputs(out, images[1].stem))


def test_segment_of_only_bad_files_points_to_no_results(images, tmp_path, capsys):
    """When every image fails nothing is written, so no "results in" line points to an empty place."""
    bad = images[0].parent / "broken_scan.tif"
    bad.write_bytes(b"this is not an image at all")
    out = tmp_path / "out"
    assert main(["segment", str(bad), "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert "broken_scan.tif" in captured.err
    assert "results in" not in captured.out
    assert not out.exists()
    assert main(["segment", str(images[0]), "--out", str(out)]) == 0
    assert f"results in {out}" in capsys.readouterr().out


def test_params_prints_json_that_params_reads_back(images, tmp_path, capsys):
    """`calcimg params` prints the default Params as JSON; an edited copy passed with --params is used."""
    assert main(["params"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert Params.from_dict(printed) == Params()
    printed["seed_k"] = 12.0
    params_file = tmp_path / "params.json"
    params_file.write_text(json.dumps(printed), encoding="utf-8")
    out = tmp_path / "out"
    assert main(["segment", str(images[0]), "--out", str(out), "--params", str(params_file), "-q"]) == 0
    summary = json.loads((out / f"{images[0].stem}_summary.json").read_text())
    assert summary["params"]["seed_k"] == 12.0
    assert summary["params"] == Params(seed_k=12.0).to_dict()


def test_invalid_params_file_is_an_error(images, tmp_path, capsys):
    """--params with a broken file: exit status 1, the file named on stderr, nothing written."""
    params_file = tmp_path / "bad_params.json"
    params_file.write_text("{oops", encoding="utf-8")
    out = tmp_path / "out"
    assert main(["segment", str(images[0]), "--out", str(out), "--params", str(params_file)]) == 1
    assert "bad_params.json" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


def test_spacing_option_is_recorded_as_user(images, tmp_path):
    """--spacing 0.2 overrides the files' 0.1 mm: summary spacing_source 'user', areas in 0.04 mm^2 pixels."""
    out = tmp_path / "out"
    assert main(["segment", str(images[0]), "--out", str(out), "--spacing", "0.2", "-q"]) == 0
    summary = json.loads((out / f"{images[0].stem}_summary.json").read_text())
    assert summary["spacing_source"] == "user"
    assert summary["spacing_mm"] == [0.2, 0.2]
    table = pd.read_csv(out / f"{images[0].stem}_lesions.csv")
    assert np.allclose(table["area_mm2"], table["area_px"] * 0.04, rtol=1e-5)
    assert summary["total_area_mm2"] == pytest.approx(0.04 * summary["total_area_px"])


def test_exclude_mask_option(images, tmp_path):
    """--exclude with a TIFF mask over one disk leaves three lesions and records one 'excluded_region'."""
    mask = np.zeros((256, 256), np.uint8)
    mask[40:80, 170:210] = 255
    mask_path = tmp_path / "exclude.tif"
    tifffile.imwrite(mask_path, mask)
    out = tmp_path / "out"
    assert main(["segment", str(images[0]), "--out", str(out), "--exclude", str(mask_path), "-q"]) == 0
    summary = json.loads((out / f"{images[0].stem}_summary.json").read_text())
    assert summary["count"] == 3
    assert summary["rejected"].get("excluded_region") == 1
    assert len(pd.read_csv(out / f"{images[0].stem}_lesions.csv")) == 3


def test_segment_uncalibrated_file(tmp_path):
    """A TIFF without resolution tags is segmented in pixels: units 'px', spacing_source 'none', no mm^2 totals,
    an empty area_mm2 column in the lesion and candidate CSVs."""
    image = _write_tiff(tmp_path / "plain.tif", _disk_pixels(3), mm_per_px=None)
    out = tmp_path / "out"
    assert main(["segment", str(image), "--out", str(out), "-q"]) == 0
    summary = json.loads((out / "plain_summary.json").read_text())
    assert summary["units"] == "px" and summary["spacing_source"] == "none" and summary["total_area_mm2"] is None
    assert summary["count"] == 4
    table = pd.read_csv(out / "plain_lesions.csv")
    assert len(table) == 4 and table["area_mm2"].isna().all()
    candidates = pd.read_csv(out / "plain_candidates.csv")
    assert (candidates["decision"] == "accepted").sum() == 4 and candidates["area_mm2"].isna().all()
