"""The cohort table of a batch: one row per compared pair, written as ``cohort.csv`` and ``cohort.json``.

Rows are built from the ``item.json`` records the batch writes beside each pair's results, so a resumed batch
gives the same table as an uninterrupted one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from calcimg._files import atomic_write_json, atomic_write_text, json_safe

#: Columns of ``cohort.csv``, in order (documented in docs/batch.md).
COHORT_COLUMNS = (
    "item",
    "subject",
    "site",
    "reference",
    "baseline_timepoint",
    "followup_timepoint",
    "baseline_date",
    "followup_date",
    "area_units",
    "pre_count",
    "post_count",
    "count_change",
    "pre_area",
    "post_area",
    "area_change",
    "area_change_pct",
    "pre_burden",
    "post_burden",
    "burden_change_pct",
    "new",
    "resolved",
    "grown",
    "shrunk",
    "stable",
    "category",
    "response",
    "needs_review",
    "review_reasons",
    "pre_from_other_film",
    "post_from_other_film",
    "pre_unconfirmed",
    "post_unconfirmed",
    "baseline_file",
    "baseline_hash",
    "baseline_spacing_mm",
    "baseline_spacing_source",
    "followup_file",
    "followup_hash",
    "followup_spacing_mm",
    "followup_spacing_source",
)


#: Keys of a pair summary counting, per film, the lesions taken on the other film's evidence.
OTHER_FILM_KEYS = ("supported_by_other_visit", "pieces_from_other_visit", "faint_counterparts")


def from_other_film(summary: dict[str, Any]) -> dict[str, int]:
    """How many lesions each film (``pre``, ``post``) of a pair summary took on the other film's evidence: faint
    candidates supported whole, pieces of rejected candidates and faint counterparts (0 for a summary without
    them)."""
    return {visit: sum(int(summary.get(key, {}).get(visit, 0)) for key in OTHER_FILM_KEYS) for visit in ("pre", "post")}


def cohort_row(record: dict[str, Any]) -> dict[str, Any]:
    """One cohort row from a pair's ``item.json`` record.

    Parameters
    ----------
    record : dict
        With ``item``, ``subject``, ``site``, ``reference``, ``inputs`` (baseline first, each with
        ``timepoint``, ``date``, ``path``, ``content_hash``) and ``summary`` (what ``compare_pair`` returned).

    Returns
    -------
    dict
        The values of :data:`COHORT_COLUMNS`; the area columns are in ``area_units`` (``mm2``, or ``px2`` when
        a film is uncalibrated).
    """
    summary = record["summary"]
    units = summary.get("units", "mm")
    baseline, followup = record["inputs"]
    identity = summary.get("inputs", {})
    row: dict[str, Any] = {
        "item": record["item"],
        "subject": record["subject"],
        "site": record["site"],
        "reference": record.get("reference", "baseline"),
        "baseline_timepoint": baseline["timepoint"],
        "followup_timepoint": followup["timepoint"],
        "baseline_date": baseline.get("date") or summary.get("dates", {}).get("pre"),
        "followup_date": followup.get("date") or summary.get("dates", {}).get("post"),
        "area_units": f"{units}2",
        "pre_area": summary.get(f"pre_area_{units}2"),
        "post_area": summary.get(f"post_area_{units}2"),
        "area_change": summary.get(f"area_change_{units}2"),
        "review_reasons": "; ".join(summary.get("review_reasons", [])),
        **{f"{visit}_from_other_film": count for visit, count in from_other_film(summary).items()},
        **{f"{visit}_unconfirmed": int(summary.get("unconfirmed", {}).get(visit, 0)) for visit in ("pre", "post")},
    }
    for key in COHORT_COLUMNS:
        if key not in row and key in summary:
            row[key] = summary[key]
    for role, image, visit in (("baseline", baseline, "pre"), ("followup", followup, "post")):
        seen = identity.get(visit, {})
        spacing = seen.get("spacing_mm")
        row[f"{role}_file"] = image["path"]
        row[f"{role}_hash"] = seen.get("content_hash", image.get("content_hash"))
        row[f"{role}_spacing_mm"] = None if spacing is None else float(spacing[0])
        row[f"{role}_spacing_source"] = seen.get("spacing_source")
    return {key: row.get(key) for key in COHORT_COLUMNS}


def cohort_table(records: list[dict[str, Any]]) -> pd.DataFrame:
    """The cohort table of pair records, sorted by item id."""
    rows = sorted((cohort_row(r) for r in records if r.get("kind") == "pair"), key=lambda row: row["item"])
    return pd.DataFrame(rows, columns=list(COHORT_COLUMNS))


def write_cohort(table: pd.DataFrame, out_dir: str | Path, run: dict[str, Any]) -> dict[str, Path]:
    """Write ``cohort.csv`` and ``cohort.json`` atomically.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`cohort_table`.
    out_dir : str or Path
    run : dict
        Run-level facts recorded in ``cohort.json`` (version, Params, pseudonymisation, singles, problems).

    Returns
    -------
    dict of str to pathlib.Path
    """
    out = Path(out_dir)
    csv = table.to_csv(index=False, float_format="%.6g", lineterminator="\n")
    rows = json_safe(table.astype(object).where(table.notna(), None).to_dict(orient="records"))
    return {
        "cohort_csv": atomic_write_text(out / "cohort.csv", csv),
        "cohort_json": atomic_write_json(out / "cohort.json", json_safe({**run, "pairs": rows})),
    }
