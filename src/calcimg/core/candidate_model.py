"""A learned score for each candidate: how much it looks like a calcinosis deposit rather than noise or anatomy.

The score comes from gradient-boosted decision trees on scale-free features of the candidate (area in mm^2,
contrast over the local noise, excess density relative to the tissue range, width, elongation, eccentricity, how
much of its second-moment ellipse it fills (curved bands and scattered texture fill little of it), bone overlap,
bone outline, background level, local noise, how much texture adds to the noise of its level, how crowded it is
by other candidates). The trees were fitted with scikit-learn on phantoms with exact truth by
``scripts/train_candidate_model.py`` and are stored as plain arrays in ``candidate_model.json`` beside this
module; inference walks them with numpy, so no machine-learning library is needed at run time. Trees, unlike the
logistic regression used before, can learn that the same contrast means a deposit in clean soft tissue and
texture among a crowd of candidates on bone; monotonic constraints (the score only rises with contrast and
density, only falls with texture and crowding) keep them sensible on films unlike the phantoms they learned from.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

#: The features, in the model's order.
FEATURES = (
    "log_area_mm2",
    "log_contrast_k",
    "log_relative_excess",
    "log_relative_peak",
    "log_width_mm",
    "log_elongation",
    "eccentricity",
    "bone_overlap",
    "bone_edge_fraction",
    "background_fraction",
    "log_relative_noise",
    "log_peak_over_mean",
    "rim_over_mean",
    "ellipse_fill",
    "sparse_extent",
    "log_texture_ratio",
    "neighbour_fraction",
)


def candidate_features(table: pd.DataFrame, px_per_mm: float, levels: dict[str, float]) -> pd.DataFrame:
    """The model's features of every candidate, from the candidate table of :func:`calcimg.segment_image`.

    Parameters
    ----------
    table : pandas.DataFrame
        Candidate measurements (``area_px``, ``width_px``, ``contrast_k``, ``mean_excess``, ``max_excess``,
        ``rim_excess``, ``max_intensity``, ``background_level``, ``noise_scale``, ``eccentricity``,
        ``major_axis_px``, ``minor_axis_px``,
        ``bone_overlap``, ``bone_edge_fraction``).
    px_per_mm : float
        Pixels per mm of the image.
    levels : dict
        Tissue levels with ``dark`` and ``range``.

    Returns
    -------
    pandas.DataFrame
        One column per name of :data:`FEATURES`.
    """
    tissue_range = max(float(levels["range"]), 1.0)
    width_px = np.maximum(table["width_px"].to_numpy(float), 1.0)
    area_px = table["area_px"].to_numpy(float)
    ellipse_px = np.pi / 4 * table["major_axis_px"].to_numpy(float) * table["minor_axis_px"].to_numpy(float)
    fill = np.clip(area_px / np.maximum(ellipse_px, 1.0), 0.0, 1.0)
    return pd.DataFrame(
        {
            "log_area_mm2": np.log(area_px / px_per_mm**2),
            "log_contrast_k": np.log(np.maximum(table["contrast_k"].to_numpy(float), 1e-3)),
            "log_relative_excess": np.log(np.maximum(table["mean_excess"].to_numpy(float) / tissue_range, 1e-5)),
            "log_relative_peak": np.log(
                np.maximum(
                    (table["max_intensity"].to_numpy(float) - table["background_level"].to_numpy(float)) / tissue_range,
                    1e-5,
                )
            ),
            "log_width_mm": np.log(width_px / px_per_mm),
            "log_elongation": np.log(area_px / width_px**2),
            "eccentricity": table["eccentricity"].to_numpy(float),
            "bone_overlap": table["bone_overlap"].to_numpy(float),
            "bone_edge_fraction": table["bone_edge_fraction"].to_numpy(float),
            "background_fraction": (table["background_level"].to_numpy(float) - float(levels["dark"])) / tissue_range,
            "log_relative_noise": np.log(np.maximum(table["noise_scale"].to_numpy(float) / tissue_range, 1e-6)),
            "log_peak_over_mean": np.log(
                np.maximum(table["max_excess"].to_numpy(float), 1.0)
                / np.maximum(table["mean_excess"].to_numpy(float), 1.0)
            ),
            "rim_over_mean": table["rim_excess"].to_numpy(float)
            / np.maximum(table["mean_excess"].to_numpy(float), 1.0),
            "ellipse_fill": fill,
            # Large and sparse together (a long curved band, a patch of texture), as one number.
            "sparse_extent": (1.0 - fill) * np.log1p(area_px / px_per_mm**2),
            # Local scale over the noise of the background level: above 1 where texture (trabecular bone) adds to
            # the quantum noise.
            "log_texture_ratio": np.log(
                np.maximum(table["noise_scale"].to_numpy(float), 1e-3)
                / np.maximum(table["level_noise_scale"].to_numpy(float), 1e-3)
            ),
            "neighbour_fraction": table["neighbour_fraction"].to_numpy(float),
        },
        columns=list(FEATURES),
    )


@cache
def load_model() -> dict[str, Any]:
    """The stored model: ``features``, ``baseline`` (log-odds before any tree), ``learning_rate``, ``trees``
    (arrays ``feature``, ``threshold``, ``left``, ``right``, ``value``, one row per tree, padded) and its
    provenance (``training``)."""
    text = resources.files("calcimg.core").joinpath("candidate_model.json").read_text(encoding="utf-8")
    model = json.loads(text)
    if tuple(model["features"]) != FEATURES:
        raise ValueError("candidate_model.json does not match calcimg.core.candidate_model.FEATURES")
    model["trees"] = {name: np.asarray(rows) for name, rows in model["trees"].items()}
    return model


def tree_log_odds(values: np.ndarray, trees: dict[str, Any], max_depth: int) -> np.ndarray:
    """Sum over trees of the leaf value each row of ``values`` reaches.

    Every tree is walked for every row at once: at each of ``max_depth`` steps a row at an inner node moves to
    its left child when ``value <= threshold`` (scikit-learn's rule) and to its right child otherwise (also when
    the value is NaN), and stays put once at a leaf (``feature < 0``).

    Parameters
    ----------
    values : numpy.ndarray
        (n, n_features) feature values.
    trees : dict
        ``feature``, ``threshold``, ``left``, ``right``, ``value``: (n_trees, n_nodes) arrays or nested lists.
    max_depth : int
        Depth of the deepest tree.

    Returns
    -------
    numpy.ndarray
        (n,) summed leaf values.

    Examples
    --------
    >>> stump = {"feature": [[0, -1, -1]], "threshold": [[0.5, 0, 0]], "left": [[1, -1, -1]],
    ...          "right": [[2, -1, -1]], "value": [[0.0, -1.0, 2.0]]}
    >>> tree_log_odds(np.array([[0.0], [1.0]]), stump, max_depth=1).tolist()
    [-1.0, 2.0]
    """
    feature, threshold, left, right, leaf_value = (
        np.asarray(trees[name]) for name in ("feature", "threshold", "left", "right", "value")
    )
    x = np.asarray(values, np.float64)
    n, n_trees, n_nodes = len(x), feature.shape[0], feature.shape[1]
    # All trees as one flat array of nodes. A leaf points to itself on both sides and tests feature 0 against
    # +inf, so every row can take exactly max_depth steps without asking where it is; indices are flat.
    at_leaf = feature < 0
    first = (np.arange(n_trees) * n_nodes)[:, None]
    itself = first + np.arange(n_nodes)[None, :]
    left_flat = np.where(at_leaf, itself, first + left).ravel()
    right_flat = np.where(at_leaf, itself, first + right).ravel()
    feature_flat = np.where(at_leaf, 0, feature).ravel()
    threshold_flat = np.where(at_leaf, np.inf, threshold).ravel()
    by_feature = np.ascontiguousarray(x.T).ravel()  # value of feature f for row r at f * n + r
    rows = np.tile(np.arange(n), n_trees)
    node = np.repeat(first.ravel(), n)  # every tree's root, for every row
    for _ in range(max_depth):
        goes_left = by_feature[feature_flat[node] * n + rows] <= threshold_flat[node]
        node = np.where(goes_left, left_flat[node], right_flat[node])
    return leaf_value.ravel()[node].reshape(n_trees, n).sum(axis=0)


def candidate_scores(features: pd.DataFrame, model: dict[str, Any] | None = None) -> np.ndarray:
    """Probability-like score in [0, 1] that each candidate is a deposit.

    Examples
    --------
    >>> n = len(FEATURES)
    >>> stump = {"feature": [[0, -1, -1]], "threshold": [[0.0, 0, 0]], "left": [[1, -1, -1]],
    ...          "right": [[2, -1, -1]], "value": [[0.0, -2.0, 2.0]]}
    >>> model = {"features": list(FEATURES), "baseline": 0.0, "learning_rate": 1.0, "max_depth": 1,
    ...          "trees": stump}
    >>> rows = pd.DataFrame([[-1.0] + [0.0] * (n - 1), [1.0] + [0.0] * (n - 1)], columns=list(FEATURES))
    >>> candidate_scores(rows, model).round(3).tolist()
    [0.119, 0.881]
    """
    model = model or load_model()
    values = features.loc[:, list(FEATURES)].to_numpy(float)
    if not len(values):
        return np.zeros(0)
    logit = float(model["baseline"]) + float(model["learning_rate"]) * tree_log_odds(
        values, model["trees"], int(model["max_depth"])
    )
    return 1.0 / (1.0 + np.exp(-np.clip(logit, -50, 50)))
