"""Tests of calcimg.core.candidate_model: the stored model, its features and its scores."""

import numpy as np
import pandas as pd
import pytest

from calcimg.core.candidate_model import FEATURES, candidate_features, candidate_scores, load_model, tree_log_odds


def _table(**changes) -> pd.DataFrame:
    row = {
        "area_px": 400.0,
        "width_px": 20.0,
        "contrast_k": 30.0,
        "mean_excess": 300.0,
        "max_excess": 600.0,
        "rim_excess": 150.0,
        "max_intensity": 1600.0,
        "background_level": 1000.0,
        "noise_scale": 10.0,
        "eccentricity": 0.3,
        "major_axis_px": 24.0,  # a disk of 400 px: its second-moment ellipse is itself (fill ~0.88 with these axes)
        "minor_axis_px": 24.0,
        "bone_overlap": 0.0,
        "bone_edge_fraction": 0.0,
        "level_noise_scale": 10.0,
        "neighbour_fraction": 0.0,
    }
    row.update(changes)
    return pd.DataFrame([row])


LEVELS = {"dark": 500.0, "range": 2000.0}


def test_stored_model_is_a_consistent_tree_ensemble():
    """Every split of the stored trees names a known feature and two children inside its tree; the model says
    how it was trained, and never on the accuracy benchmark's cohort."""
    model = load_model()
    trees = model["trees"]
    assert model["features"] == list(FEATURES)
    n_trees, n_nodes = trees["feature"].shape
    assert n_trees == model["training"]["settings"]["max_iter"]
    inner = trees["feature"] >= 0
    assert trees["feature"].max() < len(FEATURES)
    assert ((trees["left"][inner] > 0) & (trees["left"][inner] < n_nodes)).all()
    assert ((trees["right"][inner] > 0) & (trees["right"][inner] < n_nodes)).all()
    assert (trees["left"][~inner] == -1).all()
    assert model["training"]["cohort_seed"] not in (50000, 1000, 8000)  # neither benchmark nor tuning cohorts


def test_tree_walk_follows_each_split():
    """A hand-built depth-2 tree: each row lands in the leaf its two comparisons lead to, ties going left."""
    tree = {
        "feature": [[0, 1, -1, -1, -1]],
        "threshold": [[0.0, 5.0, 0.0, 0.0, 0.0]],
        "left": [[1, 3, -1, -1, -1]],
        "right": [[2, 4, -1, -1, -1]],
        "value": [[0.0, 0.0, 7.0, 1.0, 2.0]],
    }
    rows = np.array([[-1.0, 5.0], [-1.0, 6.0], [0.5, 0.0], [0.0, 0.0]])
    assert tree_log_odds(rows, tree, max_depth=2).tolist() == [1.0, 2.0, 7.0, 1.0]
    two_trees = {name: values * 2 for name, values in tree.items()}
    assert tree_log_odds(rows, two_trees, max_depth=2).tolist() == [2.0, 4.0, 14.0, 2.0]


def test_features_are_scale_free():
    """The same deposit at half the spacing (4x the pixels, 2x the width) has the same features."""
    coarse = candidate_features(_table(), px_per_mm=5.0, levels=LEVELS)
    fine = candidate_features(
        _table(area_px=1600.0, width_px=40.0, major_axis_px=48.0, minor_axis_px=48.0), px_per_mm=10.0, levels=LEVELS
    )
    pd.testing.assert_frame_equal(coarse, fine)
    assert coarse.loc[0, "log_area_mm2"] == np.log(16.0)


def test_dense_compact_deposit_scores_above_faint_noise_blob():
    """A dense, compact, well-contrasted deposit scores high; a faint blob in a noisy region scores low."""
    deposit = candidate_features(_table(), 10.0, LEVELS)
    noise = candidate_features(
        _table(
            area_px=20.0,
            width_px=3.0,
            contrast_k=3.0,
            mean_excess=30.0,
            max_excess=40.0,
            rim_excess=28.0,
            max_intensity=1060.0,
            noise_scale=10.0,
        ),
        10.0,
        LEVELS,
    )
    scores = candidate_scores(pd.concat([deposit, noise], ignore_index=True))
    assert scores[0] > 0.9
    assert scores[1] < 0.5
    assert ((scores >= 0) & (scores <= 1)).all()


def test_ellipse_fill_separates_a_compact_blob_from_a_curved_band():
    """A band bent into an arc fills little of its second-moment ellipse; a disk fills nearly all of it."""
    disk = candidate_features(_table(area_px=np.pi * 12**2, major_axis_px=24.0, minor_axis_px=24.0), 10.0, LEVELS)
    band = candidate_features(_table(area_px=300.0, major_axis_px=80.0, minor_axis_px=40.0), 10.0, LEVELS)
    assert disk.loc[0, "ellipse_fill"] == pytest.approx(1.0)
    assert band.loc[0, "ellipse_fill"] == pytest.approx(300 / (np.pi / 4 * 80 * 40))
    assert band.loc[0, "sparse_extent"] > disk.loc[0, "sparse_extent"] == pytest.approx(0.0)
