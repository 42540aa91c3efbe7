"""The bundled sample pairs are what the phantom generator makes today, and every one of them reads back."""

import filecmp
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

import calcimg
from calcimg.batch import discover_images

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_images"


def _sample_script():
    spec = importlib.util.spec_from_file_location("make_sample_images", ROOT / "scripts" / "make_sample_images.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_committed_samples_match_the_generator(tmp_path):
    _sample_script().make_samples(tmp_path)
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    committed = sorted(p.relative_to(SAMPLES) for p in SAMPLES.rglob("*") if p.is_file() and p.name != "README.md")
    assert fresh == committed
    differing = [str(p) for p in fresh if not filecmp.cmp(tmp_path / p, SAMPLES / p, shallow=False)]
    # pair.json records the calcimg version, which moves on its own; everything else must be byte-identical.
    assert [p for p in differing if not p.endswith("pair.json")] == []


def test_every_sample_image_reads_with_its_truth():
    images = discover_images(SAMPLES)
    assert len(images) == 6  # three pairs; the truth folders are not taken as images
    for path in images:
        radiograph = calcimg.load_radiograph(path)
        subject_site, visit = path.stem.rsplit("_", 1)
        truth_dir = SAMPLES / f"{subject_site}_truth"
        labels = tifffile.imread(truth_dir / f"{visit}_lesions.tif")
        assert labels.shape == radiograph.shape
        summary = json.loads((truth_dir / "pair.json").read_text())
        assert radiograph.spacing_mm[0] == pytest.approx(summary["spacing_mm"][visit], rel=1e-3)
        ids = np.unique(labels[labels > 0])
        assert len(ids) == summary[f"n_lesions_{visit}"]
        # bright means dense: the lesions are brighter than the image's median
        assert np.median(radiograph.pixels[labels > 0]) > np.median(radiograph.pixels)
