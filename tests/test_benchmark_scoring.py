"""The pair scoring of benchmarks/accuracy.py: a withheld % change counts as the worst error, never as a pair
left out, and the response is scored."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def accuracy():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import accuracy as module
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module


def _pairs(errors: list[tuple[float | None, float | None]]) -> pd.DataFrame:
    rows = []
    for pct, true_pct in errors:
        row = {"pct": pct, "true_pct": true_pct, "category_ok": True, "response_ok": pct is not None}
        row |= {
            f"{name}_{key}": 0 for name in ("new", "resolved") for key in ("found", "truth", "called", "called_right")
        }
        rows.append(row | {"residual_mm": 0.1, "flagged": False, "needs_review": False})
    table = pd.DataFrame(rows)
    return table


def test_a_withheld_percent_change_is_the_worst_error_and_a_truth_without_one_is_left_out(accuracy):
    assert accuracy.pct_error(-40.0, -50.0) == pytest.approx(10.0)
    assert accuracy.pct_error(None, -50.0) == np.inf
    assert np.isnan(accuracy.pct_error(12.0, None))
    pairs = _pairs([(10.0, 11.0), (20.0, 23.0), (30.0, 35.0), (None, 40.0), (5.0, None)])
    pairs["pct_error"] = [accuracy.pct_error(p, t) for p, t in zip(pairs["pct"], pairs["true_pct"], strict=True)]
    row = accuracy.summarise_pairs(pairs, None).iloc[0]
    # Errors 1, 3, 5 and the withheld one (inf); the pair without a true % change is left out.
    assert row["pct_undefined"] == 1
    assert row["pct_err_median"] == pytest.approx(4.0)
    assert row["pct_err_p90"] == np.inf
    assert row["response_agreement"] == pytest.approx(0.8)


def test_error_quantile_matches_pandas_where_every_error_is_finite(accuracy):
    errors = pd.Series(np.random.default_rng(3).random(17) * 40)
    for q in (0.5, 0.9):
        assert accuracy.error_quantile(errors, q) == pytest.approx(errors.quantile(q))
    assert np.isnan(accuracy.error_quantile(pd.Series([np.nan]), 0.5))
