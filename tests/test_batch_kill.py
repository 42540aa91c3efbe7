"""A batch killed with SIGKILL part way leaves only whole results; a re-run completes them, byte for byte."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from calcimg.batch import ITEM_RECORD
from calcimg.cli import main

SAMPLES = Path(__file__).resolve().parents[1] / "sample_images"
KEY = "kill-test-key"


def files(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != "batch.log"
    }


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_sigkill_then_rerun_equals_an_uninterrupted_run(tmp_path):
    study = tmp_path / "study"
    study.mkdir()
    for name in ("S02_forearm_pre.png", "S02_forearm_post.png", "S03_knee_pre.tif", "S03_knee_post.tif"):
        shutil.copy(SAMPLES / name, study / name)
    shutil.copy(SAMPLES / "S01_hand_pre.dcm", study / "S01_hand_pre.dcm")

    reference = tmp_path / "reference"
    assert main(["batch", str(study), "--out", str(reference), "--jobs", "1", "--pseudonym-key", KEY, "-q"]) == 0

    out = tmp_path / "killed"
    command = [sys.executable, "-m", "calcimg", "batch", str(study), "--out", str(out), "--jobs", "1"]
    process = subprocess.Popen(
        [*command, "--pseudonym-key", KEY, "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    try:
        while not list(out.glob(f"*/*/*/{ITEM_RECORD}")):
            assert process.poll() is None, "the batch finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL
    killed = files(out)
    assert "cohort.csv" not in killed  # the run did not get to the end
    # whatever is there is whole: every item folder holds its record, and the record lists its files
    for record in out.glob(f"*/*/*/{ITEM_RECORD}"):
        listed = json.loads(record.read_text())["files"]
        assert sorted(p.name for p in record.parent.iterdir()) == sorted([*listed, ITEM_RECORD])
    assert main(["batch", str(study), "--out", str(out), "--jobs", "1", "--pseudonym-key", KEY, "-q"]) == 0
    log = (out / "batch.log").read_text()
    assert "skipped" in log.splitlines()[-1] and "0 skipped" not in log.splitlines()[-1]
    assert files(out) == files(reference)
    assert not (out / ".partial").exists()
