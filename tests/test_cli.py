import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from calcimg import __version__
from calcimg.cli import main


def test_version_is_printed(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_python_dash_m_runs_the_same_command():
    done = subprocess.run([sys.executable, "-m", "calcimg", "--help"], capture_output=True, text=True, check=False)
    assert done.returncode == 0
    assert "phantom" in done.stdout and "info" in done.stdout


def test_phantom_then_info_round_trip(tmp_path, capsys):
    out = tmp_path / "ph"
    assert main(["phantom", "--out", str(out), "--pairs", "2", "--seed", "5", "--site", "hand", "--format", "png"]) == 0
    manifest = pd.read_csv(out / "manifest.csv")
    assert list(manifest.columns) == ["subject", "site", "timepoint", "date", "path"]
    assert len(manifest) == 4
    assert set(manifest["site"]) == {"hand"}

    report = tmp_path / "report"
    assert main(["info", str(out), "--out", str(report)]) == 0
    table = pd.read_csv(report / "inputs.csv")
    assert len(table) == 4  # truth label maps are not inputs
    assert set(table["spacing_source"]) == {"file_resolution"}
    record = json.loads((report / "inputs.json").read_text())
    assert record["calcimg_version"] == __version__
    assert not (report / "errors.csv").exists()
    assert "4 image(s) read, 0 failed" in capsys.readouterr().out


def test_phantom_same_seed_same_bytes(tmp_path):
    for name in ("a", "b"):
        assert (
            main(
                [
                    "phantom",
                    "--out",
                    str(tmp_path / name),
                    "--pairs",
                    "1",
                    "--seed",
                    "9",
                    "--site",
                    "knee",
                    "--compress",
                    "-q",
                ]
            )
            == 0
        )
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files
    for relative in files:
        assert (tmp_path / "a" / relative).read_bytes() == (tmp_path / "b" / relative).read_bytes(), relative


def test_info_reports_unreadable_files_and_goes_on(tmp_path, capsys):
    good = tmp_path / "ph"
    main(["phantom", "--out", str(good), "--pairs", "1", "--seed", "1", "--format", "tif", "-q"])
    (good / "broken.dcm").write_bytes(b"not a dicom file at all" * 10)
    report = tmp_path / "report"
    status = main(["info", str(good), "--out", str(report)])
    assert status == 1
    errors = pd.read_csv(report / "errors.csv")
    assert len(errors) == 1
    assert "broken.dcm" in errors.loc[0, "message"]
    assert len(pd.read_csv(report / "inputs.csv")) == 2


def test_info_never_writes_identifiers_unless_asked(tmp_path):
    ph = tmp_path / "ph"
    main(["phantom", "--out", str(ph), "--pairs", "1", "--seed", "2", "-q"])
    plain, kept = tmp_path / "plain", tmp_path / "kept"
    main(["info", str(ph), "--out", str(plain), "-q"])
    main(["info", str(ph), "--out", str(kept), "--keep-identifiers", "-q"])
    for name in ("inputs.csv", "inputs.json"):
        assert "PH-P001" not in (plain / name).read_text()
        assert "PHANTOM" not in (plain / name).read_text()
    assert "PH-P001" in (kept / "inputs.csv").read_text()


def test_missing_input_is_a_clear_error(tmp_path, capsys):
    assert main(["info", str(tmp_path / "nowhere")]) == 1
    assert "nowhere: no such file or folder" in capsys.readouterr().err


def test_compare_writes_the_pair_and_says_what_each_film_took_on_the_others_evidence(tmp_path, capsys):
    """`calcimg compare` on a bundled sample pair: the summary's keys, the printed line, and the count of lesions
    each film took on the other's evidence, as summary.json records them."""
    samples = Path(__file__).resolve().parents[1] / "sample_images"
    out = tmp_path / "pair"
    assert (
        main(["compare", str(samples / "S03_knee_pre.tif"), str(samples / "S03_knee_post.tif"), "--out", str(out)]) == 0
    )
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    for key in ("pre_count", "post_count", "area_change_pct", "category", "registration", "needs_review", "version"):
        assert key in summary
    printed = capsys.readouterr().out
    assert f"baseline {summary['pre_count']} lesion(s)" in printed and f"results in {out}" in printed
    taken = {
        visit: sum(
            summary[key][visit] for key in ("supported_by_other_visit", "pieces_from_other_visit", "faint_counterparts")
        )
        for visit in ("pre", "post")
    }
    assert any(taken.values())  # this pair takes some (a sample whose engine takes none tests nothing here)
    assert f"taken on the other film's evidence: baseline {taken['pre']}, follow-up {taken['post']}" in printed
    unconfirmed = summary["unconfirmed"]
    line = f"rejected): baseline {unconfirmed['pre']}, follow-up {unconfirmed['post']} candidate(s)"
    assert (line in printed) == any(unconfirmed.values())
