"""Same seed, same pair, same bytes; different seeds, different pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from calcimg.phantom import PhantomConfig, make_pair, pair_seed, write_pair, write_phantoms


def _arrays(pair) -> list[np.ndarray]:
    out = []
    for v in pair.visits:
        out += [v.stored, v.radiograph.pixels, v.identity_labels, v.component_labels]
        out += [v.masks[k] for k in sorted(v.masks)]
    return out


@pytest.mark.parametrize("site", ["hand", "pelvis"])
def test_same_seed_same_pair(site: str, small_config: PhantomConfig) -> None:
    a = make_pair(17, site, small_config)
    b = make_pair(17, site, small_config)
    for x, y in zip(_arrays(a), _arrays(b), strict=True):
        np.testing.assert_array_equal(x, y)
    pd.testing.assert_frame_equal(a.lesions, b.lesions)
    assert a.summary == b.summary
    assert a.pre.radiograph.content_hash == b.pre.radiograph.content_hash


def test_different_seeds_differ(small_config: PhantomConfig) -> None:
    a = make_pair(1, "hand", small_config)
    b = make_pair(2, "hand", small_config)
    assert not np.array_equal(a.pre.radiograph.pixels, b.pre.radiograph.pixels)
    assert a.pre.radiograph.content_hash != b.pre.radiograph.content_hash
    assert a.summary["transform"] != b.summary["transform"]


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("fmt", ["dcm", "png", "tif"])
def test_same_seed_same_bytes(fmt: str, tmp_path: Path, small_config: PhantomConfig) -> None:
    for run in ("a", "b"):
        write_pair(make_pair(5, "forearm", small_config), tmp_path / run, "P007", fmt)
    a, b = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert sorted(a) == [
        f"P007_forearm_post.{fmt}",
        f"P007_forearm_pre.{fmt}",
        "P007_forearm_truth/lesions.csv",
        "P007_forearm_truth/pair.json",
        "P007_forearm_truth/post_components.tif",
        "P007_forearm_truth/post_lesions.tif",
        "P007_forearm_truth/pre_components.tif",
        "P007_forearm_truth/pre_lesions.tif",
    ]
    assert a == b


def test_cohort_is_reproducible(tmp_path: Path) -> None:
    config = PhantomConfig(shape=(160, 128))
    first = write_phantoms(tmp_path / "a", pairs=3, seed=9, fmt="png", config=config)
    write_phantoms(tmp_path / "b", pairs=3, seed=9, fmt="png", config=config)
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")
    assert [item["seed"] for item in first] == [pair_seed(9, k) for k in range(3)]
    assert len({pair_seed(9, k) for k in range(50)} | {pair_seed(10, 0)}) == 51
