"""A learned score for each candidate: how much it looks like a calcinosis deposit rather than noise or anatomy.

The score is a logistic regression on scale-free features of the candidate (area in mm^2, contrast over the
local noise, excess density relative to the tissue range, width, elongation, eccentricity, how much of its
second-moment ellipse it fills (curved bands and scattered texture fill little of it), bone overlap, bone
outline, background level, local noise). Its coefficients were fitted on phantoms with exact truth by
``scripts/train_candidate_model.py`` and are stored, readable, in ``candidate_model.json`` beside this module;
inference is a dot product, no machine-learning library is needed at run time.
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
            # Large and sparse together (a long curved band, a patch of texture): a logistic model needs the product.
            "sparse_extent": (1.0 - fill) * np.log1p(area_px / px_per_mm**2),
        },
        columns=list(FEATURES),
    )


@cache
def load_model() -> dict[str, Any]:
    """The stored model: feature ``mean`` and ``scale`` for standardisation, ``coef``, ``intercept``, provenance."""
    text = resources.files("calcimg.core").joinpath("candidate_model.json").read_text(encoding="utf-8")
    model = json.loads(text)
    if tuple(model["features"]) != FEATURES:
        raise ValueError("candidate_model.json does not match calcimg.core.candidate_model.FEATURES")
    return model


def candidate_scores(features: pd.DataFrame, model: dict[str, Any] | None = None) -> np.ndarray:
    """Probability-like score in [0, 1] that each candidate is a deposit.

    Examples
    --------
    >>> n = len(FEATURES)
    >>> model = {"features": list(FEATURES), "mean": [0.0] * n, "scale": [1.0] * n,
    ...          "coef": [1.0] + [0.0] * (n - 1), "intercept": 0.0}
    >>> row = pd.DataFrame([[0.0] * n], columns=list(FEATURES))
    >>> float(candidate_scores(row, model)[0])
    0.5
    """
    model = model or load_model()
    values = features.loc[:, list(FEATURES)].to_numpy(float)
    standardised = (values - np.asarray(model["mean"])) / np.asarray(model["scale"])
    logit = standardised @ np.asarray(model["coef"]) + float(model["intercept"])
    return 1.0 / (1.0 + np.exp(-np.clip(logit, -50, 50)))
