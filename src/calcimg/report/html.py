"""The batch's ``report.html``: one self-contained page (inline CSS, images as data URIs, no script, no network).

It shows the cohort table, a waterfall plot of the % area change of every pair with the progression and
improvement bands, a thumbnail of each pair's overlay, the problems of the run, the Params and the version.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from calcimg._files import atomic_write_text

#: Longest side of the overlay thumbnails, in pixels.
THUMBNAIL_SIDE = 900

_CATEGORY_COLOURS = {"progression": "#c0392b", "improvement": "#2471a3", "stable": "#7f8c8d"}

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1200px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; font-size: .85em; margin: .5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: .25em .5em; text-align: right; }
th { background: #f0f0f0; } td:nth-child(-n+4) { text-align: left; }
tr.review td { background: #fff4d6; }
.note { color: #555; font-size: .9em; }
figure { margin: 1em 0 2em; } figure img { max-width: 100%; border: 1px solid #ccc; }
figcaption { font-size: .9em; margin-top: .3em; }
pre { background: #f7f7f7; padding: .8em; font-size: .8em; overflow-x: auto; }
.tag { display: inline-block; padding: 0 .4em; border-radius: 3px; color: #fff; font-size: .85em; }
"""

_TABLE_COLUMNS = (
    "subject",
    "site",
    "baseline_timepoint",
    "followup_timepoint",
    "baseline_date",
    "followup_date",
    "pre_count",
    "post_count",
    "area_units",
    "pre_area",
    "post_area",
    "area_change_pct",
    "new",
    "resolved",
    "category",
    "response",
    "needs_review",
)


def data_uri(data: bytes, mime: str) -> str:
    """``data:`` URI of some bytes."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def thumbnail_uri(path: Path, side: int = THUMBNAIL_SIDE) -> str | None:
    """A downscaled JPEG data URI of a picture file; None when the file is missing or unreadable."""
    picture = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if picture is None:
        return None
    scale = side / max(picture.shape[:2])
    if scale < 1:
        size = (max(1, round(picture.shape[1] * scale)), max(1, round(picture.shape[0] * scale)))
        picture = cv2.resize(picture, size, interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return data_uri(encoded.tobytes(), "image/jpeg") if ok else None


def waterfall_png(table: pd.DataFrame, band_pct: float) -> bytes | None:
    """Waterfall plot of the % area change of every pair (largest increase first) with the +/- band.

    Parameters
    ----------
    table : pandas.DataFrame
        The cohort table (``area_change_pct``, ``category``, ``subject``, ``site``, timepoints).
    band_pct : float
        Half-width of the stable band (Params.progression_pct).

    Returns
    -------
    bytes or None
        PNG bytes (no timestamp, so the same table gives the same bytes); None when no pair has a % change.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    data = table.dropna(subset=["area_change_pct"]).sort_values("area_change_pct", ascending=False, kind="stable")
    if data.empty:
        return None
    values = data["area_change_pct"].astype(float).to_numpy()
    # Few pairs: upright labels on three lines (subject, site, visits) with room for each; many: one turned line.
    rotated = len(values) > 8
    separator = " " if rotated else "\n"
    labels = [
        separator.join((str(r.subject), str(r.site), f"{r.baseline_timepoint}→{r.followup_timepoint}"))
        for r in data.itertuples(index=False)
    ]
    colours = [_CATEGORY_COLOURS.get(str(c), "#555555") for c in data["category"]]
    width = min(14.0, max(5.0, (0.6 if rotated else 1.3) * len(values) + 2))
    fig, ax = plt.subplots(figsize=(width, 4.2), dpi=100)
    try:
        x = np.arange(len(values))
        span = ax.axhspan(-band_pct, band_pct, color="#dddddd", alpha=0.6, zorder=0)
        for level in (band_pct, -band_pct):
            ax.axhline(level, color="#555555", linestyle="--", linewidth=1, zorder=1)
        ax.bar(x, values, color=colours, zorder=2)
        ax.axhline(0, color="black", linewidth=0.8, zorder=3)
        ax.set_xticks(x, labels, rotation=90 if rotated else 0, fontsize=7)
        ax.set_ylabel("total calcinosis area change (%)")
        ax.set_title("Change in calcinosis area per pair")
        handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in _CATEGORY_COLOURS.values()]
        ax.legend([*handles, span], [*_CATEGORY_COLOURS, f"stable band ±{band_pct:g}%"], fontsize=8)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", metadata={"Software": None})
    finally:
        plt.close(fig)
    return buffer.getvalue()


def _table_html(table: pd.DataFrame, columns: tuple[str, ...], review_column: str | None = None) -> str:
    shown = [c for c in columns if c in table.columns]
    head = "".join(f"<th>{html.escape(c.replace('_', ' '))}</th>" for c in shown)
    rows = []
    for record in table.to_dict(orient="records"):
        cls = ' class="review"' if review_column and bool(record.get(review_column)) else ""
        cells = "".join(f"<td>{html.escape(_fmt(record.get(c)))}</td>" for c in shown)
        rows.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        return f"{value:.1f}"
    return str(value)


def render_report(
    table: pd.DataFrame,
    singles: list[dict[str, Any]],
    problems: list[dict[str, str]],
    out_dir: Path,
    run: dict[str, Any],
) -> str:
    """The report page as a string.

    Parameters
    ----------
    table : pandas.DataFrame
        The cohort table (one row per pair).
    singles : list of dict
        ``item``, ``subject``, ``site``, ``timepoint``, ``count``, ``area``, ``area_units`` of each single.
    problems : list of dict
        The rows of ``errors.csv``.
    out_dir : pathlib.Path
        The batch's output folder (the overlays are read from the items' folders).
    run : dict
        ``calcimg_version``, ``params``, ``pseudonymised``, ``default_key`` ...
    """
    esc = html.escape
    params = run["params"]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>calcimg batch report</title><style>{_CSS}</style></head><body>",
        "<h1>calcimg batch report</h1>",
        f"<p class='note'>calcimg {esc(str(run['calcimg_version']))} · {len(table)} pair(s), {len(singles)} single "
        f"image(s), {sum(p['kind'] != 'review' for p in problems)} problem(s), "
        f"{sum(p['kind'] == 'review' for p in problems)} pair(s) to review. ",
        "Subjects are shown under keyed pseudonyms." if run.get("pseudonymised") else "Subjects are shown by id.",
        " <b>The pseudonym key is the published default, so the pseudonyms are not secret.</b>"
        if run.get("pseudonymised") and run.get("default_key")
        else "",
        "</p>",
        "<h2>Cohort</h2>",
        f"<p class='note'>Categories on the % change of the total area: progression above "
        f"+{params['progression_pct']:g}%, improvement below -{params['progression_pct']:g}%, stable between; "
        f"radiologic response: at least {params['response_pct']:g}% reduction and no new lesion. "
        "Rows needing review are shaded.</p>",
        _table_html(table, _TABLE_COLUMNS, "needs_review") if len(table) else "<p>No pair was compared.</p>",
    ]
    png = waterfall_png(table, float(params["progression_pct"])) if len(table) else None
    if png is not None:
        parts += [
            "<h2>Waterfall</h2>",
            f"<figure><img alt='waterfall plot of the % area change per pair' src='{data_uri(png, 'image/png')}'>",
            "<figcaption>% change of the total calcinosis area, follow-up against baseline; dashed lines: "
            f"±{params['progression_pct']:g}% band. Pairs without calcinosis at baseline have no % change and are "
            "not drawn.</figcaption></figure>",
        ]
    if len(table):
        parts.append("<h2>Pairs</h2>")
        for record in table.to_dict(orient="records"):
            uri = thumbnail_uri(out_dir / record["item"] / "pair_overlay.png")
            caption = (
                f"{record['subject']} · {record['site']} · {record['baseline_timepoint']} → "
                f"{record['followup_timepoint']}: {_fmt(record['area_change_pct'])}% ({record['category']}, "
                f"{str(record['response']).replace('_', ' ')})"
                + (f" — needs review: {record['review_reasons']}" if record["needs_review"] else "")
            )
            image = f"<img alt='overlay of {esc(record['item'])}' src='{uri}'>" if uri else "<p>(no overlay)</p>"
            parts.append(f"<figure>{image}<figcaption>{esc(caption)}</figcaption></figure>")
    if singles:
        parts += ["<h2>Single images</h2>", _table_html(pd.DataFrame(singles), tuple(singles[0]))]
    if problems:
        parts += [
            "<h2>Problems and reviews</h2>",
            _table_html(pd.DataFrame(problems), ("item", "file", "kind", "message")),
        ]
    parts += [
        "<h2>Params</h2>",
        f"<pre>{esc(json.dumps(params, indent=2))}</pre>",
        f"<p class='note'>Made by calcimg {esc(str(run['calcimg_version']))}.</p>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def write_report(
    table: pd.DataFrame,
    singles: list[dict[str, Any]],
    problems: list[dict[str, str]],
    out_dir: str | Path,
    run: dict[str, Any],
) -> Path:
    """Render :func:`render_report` and write ``report.html`` atomically; returns its path."""
    out = Path(out_dir)
    return atomic_write_text(out / "report.html", render_report(table, singles, problems, out, run))
