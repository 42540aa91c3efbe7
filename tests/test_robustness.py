"""Robustness of the batch: identifiers never leak, paths never escape, results are deterministic, and a write
failure (disk full) leaves no corrupt result and a re-run completes. See docs/robustness.md."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pandas as pd
import pydicom
import pytest

import calcimg._files
from calcimg.batch import build_plan
from calcimg.cli import main
from calcimg.errors import InputError
from calcimg.pairing import parse_manifest, safe_name

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "sample_images"
KEY = "robustness-key"
REAL_NAME = "deiddata_DX_cat_thorax_LAT.dcm"

#: DICOM attributes that identify a patient, a person or an institution: none may reach an output.
IDENTIFYING_KEYWORDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "OtherPatientIDs",
    "OtherPatientNames",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "PatientMotherBirthName",
    "MedicalRecordLocator",
    "AccessionNumber",
    "StudyID",
    "InstitutionName",
    "InstitutionAddress",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "OperatorsName",
    "PhysiciansOfRecord",
    "ResponsiblePerson",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
)


def output_files(out: Path) -> dict[str, bytes]:
    """Every file under ``out`` by relative path."""
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def identifying_values(path: Path) -> set[str]:
    """The identifying values of a DICOM file, whole and by name component (at least 4 characters)."""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    values: set[str] = set()
    for keyword in IDENTIFYING_KEYWORDS:
        raw = ds.get(keyword)
        if raw is None:
            continue
        items = raw if isinstance(raw, (list, pydicom.multival.MultiValue)) else [raw]
        for item in items:
            text = str(item).strip()
            values.add(text)
            values.update(part.strip() for part in text.replace("^", ",").split(",") if part.strip())
    return {v for v in values if len(v) >= 4}


@pytest.fixture(scope="module")
def real_file() -> Path:
    """The real DX file with fake identifiers ($CALCIMG_REALDATA or ../shared/realdata); skip when absent."""
    override = os.environ.get("CALCIMG_REALDATA")
    folder = Path(override) if override else REPO / ".." / "shared" / "realdata"
    path = folder / REAL_NAME
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


# --- identifiers ----------------------------------------------------------------------------------------------


@pytest.mark.realdata
@pytest.mark.timeout(120)
def test_no_identifier_in_any_output_of_a_real_file(real_file: Path, tmp_path: Path, capsys) -> None:
    """The real file is referenced in place, through a symbolic link in a study folder; every byte of every
    output, and every file and folder name, is searched for its identifying attributes."""
    forbidden = identifying_values(real_file)
    assert {"16550", "Wetzel", "20110106"} <= forbidden  # the fake identifiers the file is known to carry
    study = tmp_path / "study"
    study.mkdir()
    (study / "film.dcm").symlink_to(real_file)
    out = tmp_path / "out"
    assert main(["batch", str(study), "--out", str(out), "--jobs", "1", "--pseudonym-key", KEY]) == 0
    assert main(["info", str(study), "--out", str(tmp_path / "info"), "-q"]) == 0
    printed = capsys.readouterr()
    files = output_files(out) | {f"info/{k}": v for k, v in output_files(tmp_path / "info").items()}
    assert any(name.endswith("_labels.tif") for name in files) and "cohort.json" in files
    for name, data in files.items():
        for value in forbidden:
            assert value.encode() not in data, f"{value!r} in {name}"
            assert value not in name, f"{value!r} in the name {name}"
    for value in forbidden:
        assert value not in printed.out and value not in printed.err

    # with --keep-identifiers the subject is named by its id (the plan shows it; no second full run needed)
    assert main(["batch", str(study), "--out", str(tmp_path / "o2"), "--keep-identifiers", "--dry-run"]) == 0
    assert "16550/chest" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("../outside.png", "leads outside the study root"),
        ("films/../../outside.png", "leads outside the study root"),
        ("/etc/passwd", "absolute path"),
        ("C:\\films\\a.png", "absolute path"),
        ("\\\\server\\share\\a.png", "absolute path"),
        ("link/a.png", "leads outside the study root"),
    ],
)
def test_manifest_paths_cannot_leave_the_study(tmp_path: Path, path: str, problem: str) -> None:
    study = tmp_path / "study"
    (study / "films").mkdir(parents=True)
    (study / "link").symlink_to(tmp_path)  # a folder link inside the study that points above it
    text = f"subject,site,timepoint,path\nP1,hand,pre,{path}\n"
    with pytest.raises(InputError, match=problem):
        parse_manifest(text, study, study)


def test_output_names_are_sanitised(tmp_path: Path) -> None:
    """Subjects, sites and timepoints from a manifest (or a header) become single safe path components."""
    study = tmp_path / "study"
    study.mkdir()
    for name in ("S02_forearm_pre.png", "S02_forearm_post.png"):
        shutil.copy(SAMPLES / name, study / name)
    (study / "m.csv").write_text(
        "subject,site,timepoint,date,path\n"
        '"../../evil/x",../../etc,"../pre",2020-01-01,S02_forearm_pre.png\n'
        '"../../evil/x",../../etc,"a/../../b",2021-01-01,S02_forearm_post.png\n'
    )
    plan = build_plan(study / "m.csv", keep_identifiers=True)
    (item,) = plan.items
    parts = item.item_id.split("/")
    assert len(parts) == 3 and all(p == safe_name(p) and p not in ("", ".", "..") for p in parts)
    out = tmp_path / "out"
    assert main(["batch", str(study / "m.csv"), "--out", str(out), "--keep-identifiers", "--jobs", "1", "-q"]) == 0
    written = [p.resolve() for p in out.rglob("*")]
    assert all(p.is_relative_to(out.resolve()) for p in written)
    assert not (tmp_path / "evil").exists() and not (tmp_path / "etc").exists()
    assert safe_name("../../evil/x") == "evil-x" and "/" not in safe_name("a/../../b")
    assert safe_name("\x00\n/..") == "unknown"


def test_a_single_file_input_reads_only_that_file(tmp_path: Path) -> None:
    """Naming one image reads that image, not every file of its folder."""
    for name in ("S02_forearm_pre.png", "S02_forearm_post.png"):
        shutil.copy(SAMPLES / name, tmp_path / name)
    plan = build_plan(tmp_path / "S02_forearm_pre.png")
    assert [image.relpath for item in plan.items for image in item.images] == ["S02_forearm_pre.png"]


def test_symlink_loop_and_fifo_in_a_study_are_unreadable_not_fatal(tmp_path: Path) -> None:
    study = tmp_path / "study"
    study.mkdir()
    shutil.copy(SAMPLES / "S03_knee_pre.tif", study / "S03_knee_pre.tif")
    (study / "loop.dcm").symlink_to("loop.dcm")
    os.mkfifo(study / "pipe.dcm")
    os.mkfifo(study / "pipe_no_extension")
    plan = build_plan(study)
    assert [i.images[0].relpath for i in plan.items] == ["S03_knee_pre.tif"]
    assert sorted(p.files for p in plan.unreadable) == [("loop.dcm",), ("pipe.dcm",)]


# --- determinism ------------------------------------------------------------------------------------------------


def _small_study(root: Path) -> Path:
    root.mkdir(parents=True)
    for name in ("S02_forearm_pre.png", "S02_forearm_post.png", "S03_knee_pre.tif"):
        shutil.copy(SAMPLES / name, root / name)
    return root


@pytest.mark.timeout(180)
def test_same_bytes_across_runs_and_job_counts(tmp_path: Path) -> None:
    """Two runs with --jobs 1 and one with --jobs 2 write byte-identical results (label maps, tables, records,
    overlays, cohort, errors); only the log (timestamps) differs."""
    study = _small_study(tmp_path / "study")
    runs = {}
    for name, jobs in (("a", "1"), ("b", "1"), ("c", "2")):
        out = tmp_path / name
        assert main(["batch", str(study), "--out", str(out), "--jobs", jobs, "--pseudonym-key", KEY, "-q"]) == 0
        files = output_files(out)
        files.pop("batch.log")
        runs[name] = files
    assert any(k.endswith("_labels.tif") for k in runs["a"]) and any(k.endswith("pair_overlay.png") for k in runs["a"])
    assert runs["a"] == runs["b"]
    assert sorted(runs["a"]) == sorted(runs["c"])
    assert [k for k in runs["a"] if runs["a"][k] != runs["c"][k]] == []


# --- crash safety: disk full ------------------------------------------------------------------------------------


class DiskFull:
    """Replaces ``os.fsync`` in :mod:`calcimg._files`: the first ``allowed`` writes succeed, then every one fails
    with ENOSPC (the temporary file has been written, so this is the moment a full disk is noticed)."""

    def __init__(self, allowed: int) -> None:
        self.allowed = allowed
        self.calls = 0

    def __call__(self, fd: int) -> None:
        self.calls += 1
        if self.calls > self.allowed:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        os.fsync(fd)


def _no_debris(out: Path) -> None:
    assert not (out / ".partial").exists() or not any((out / ".partial").iterdir())
    assert [p.name for p in out.rglob("*.tmp")] == []
    for record in out.rglob("item.json"):  # every item folder that exists is whole
        for name in pd.read_json(record, typ="series")["files"]:
            assert (record.parent / name).stat().st_size > 0


@pytest.mark.timeout(180)
@pytest.mark.parametrize("allowed", [2, 1000])
def test_disk_full_then_rerun_completes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, allowed: int) -> None:
    """Disk full part way through an item (2 files written) or at the cohort files (items done): a clear error,
    only whole results on disk, and a re-run gives exactly what an undisturbed run gives."""
    study = _small_study(tmp_path / "study")
    reference = tmp_path / "reference"
    assert main(["batch", str(study), "--out", str(reference), "--jobs", "1", "--pseudonym-key", KEY, "-q"]) == 0
    out = tmp_path / "out"
    args = ["batch", str(study), "--out", str(out), "--jobs", "1", "--pseudonym-key", KEY, "-q"]
    full = DiskFull(allowed)
    if allowed > 100:  # let the items through, fail at the cohort files
        full.allowed = sum(1 for p in reference.rglob("*") if p.is_file() and p.parent != reference)
    monkeypatch.setattr(calcimg._files.os, "fsync", full)
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "Traceback" not in err
    _no_debris(out)
    assert not (out / "cohort.csv").exists()
    monkeypatch.undo()
    assert main(args) == 0
    expected, got = output_files(reference), output_files(out)
    expected.pop("batch.log"), got.pop("batch.log")
    assert got == expected
