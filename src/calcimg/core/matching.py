"""Match the lesions of a baseline and a follow-up film and classify their change.

Lesions are matched in the baseline frame: a baseline lesion and a follow-up lesion are linked when their outlines
overlap (the follow-up's label map carried into the baseline frame by the registration), or, for a lesion that
overlaps nothing, to the lesion of the other visit nearest to it when that lies within ``distance_mm``: nearest
pixel to nearest pixel (a fragment of a deposit that split or was segmented in pieces lies near the deposit's
outline, however far from its centroid), or centroid to centroid for a small lesion the warping dropped. The
connected components of this bipartite graph are the match groups, so a deposit that splits or merges forms one
group. Areas are compared as each visit measured them on its own pixels, never on the resampled label map.

The pair categories follow Valenzuela et al. (Semin Arthritis Rheum 2022) for progression and improvement and
Narvaez et al. (Autoimmun Rev 2019) for the radiologic response.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, partial
from typing import TYPE_CHECKING

import cv2
import numpy as np
import pandas as pd
from scipy import ndimage, sparse
from scipy.sparse.csgraph import connected_components

from calcimg.core.measure import padded_window
from calcimg.model import NOMINAL_SPACING_MM

if TYPE_CHECKING:
    from calcimg.core.registration import Registration

#: Thresholds of the pair categories, in percent change of the total area.
PROGRESSION_PCT = 25.0
RESPONSE_PCT = 20.0
#: Change classes of a lesion; ``outside_field`` only when the fields of view are given; ``not_compared`` when
#: the registration is doubtful and no lesion is matched (:func:`without_matching`).
CHANGE_CLASSES = ("stable", "grown", "shrunk", "resolved", "new", "outside_field", "not_compared")

_COLUMNS = [
    "visit",
    "lesion_id",
    "group_id",
    "matched_ids",
    "matched_by",
    "change_class",
    "area_mm2",
    "centroid_row_pre",
    "centroid_col_pre",
    "group_area_pre_mm2",
    "group_area_post_mm2",
    "area_change_mm2",
    "area_change_pct",
]


def categorise(
    pre_total: float,
    post_total: float,
    n_new: int,
    progression_pct: float = PROGRESSION_PCT,
    response_pct: float = RESPONSE_PCT,
) -> tuple[float | None, str, str]:
    """Percent change, change category and radiologic response from total areas.

    Parameters
    ----------
    pre_total, post_total : float
        Total areas of the baseline and the follow-up (mm^2, in the same frame).
    n_new : int
        Lesions present only at follow-up.
    progression_pct : float
        Category band: "progression" above +``progression_pct`` %, "improvement" below -``progression_pct`` %.
    response_pct : float
        A "response" needs a reduction of at least ``response_pct`` % and no new lesion.

    Returns
    -------
    pct_change : float or None
        None when the baseline total is 0.
    category : str
        "progression", "improvement" or "stable" (with no baseline lesion: "progression" when the follow-up has
        any, else "stable").
    response : str
        "complete_resolution" (follow-up 0, baseline > 0), "response" or "no_response".

    Examples
    --------
    >>> categorise(100.0, 70.0, 0)
    (-30.0, 'improvement', 'response')
    >>> categorise(100.0, 70.0, 1)
    (-30.0, 'improvement', 'no_response')
    >>> categorise(100.0, 0.0, 0)
    (-100.0, 'improvement', 'complete_resolution')
    >>> categorise(0.0, 5.0, 2)
    (None, 'progression', 'no_response')
    """
    if pre_total <= 0:
        return None, ("progression" if post_total > 0 else "stable"), "no_response"
    pct = 100.0 * (post_total - pre_total) / pre_total
    category = "progression" if pct > progression_pct else "improvement" if pct < -progression_pct else "stable"
    if post_total == 0:
        response = "complete_resolution"
    elif pct <= -response_pct and n_new == 0:
        response = "response"
    else:
        response = "no_response"
    return pct, category, response


def _overlap_pairs(pre_labels: np.ndarray, post_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pre id, post id, shared pixels) of every pair of labels that share a pixel."""
    both = (pre_labels > 0) & (post_labels > 0)
    if not both.any():
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    pre = pre_labels[both].astype(np.int64)
    post = post_labels[both].astype(np.int64)
    keys, counts = np.unique(pre * (int(post.max()) + 1) + post, return_counts=True)
    return keys // (int(post.max()) + 1), keys % (int(post.max()) + 1), counts


def _label_stats(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pixel count, mean row, mean col) per label value 0..max (label 0: count only, from the labelled pixels
    alone, which are few: no full-size index arrays)."""
    n = int(labels.max()) + 1 if labels.size else 1
    flat = np.flatnonzero(labels > 0)
    label = labels.ravel()[flat].astype(np.int64)
    rows, cols = np.divmod(flat, labels.shape[1] if labels.ndim == 2 else 1)
    count = np.bincount(label, minlength=n).astype(np.float64)
    count[0] = labels.size - len(flat)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_row = np.bincount(label, weights=rows, minlength=n) / count
        mean_col = np.bincount(label, weights=cols, minlength=n) / count
    mean_row[0] = mean_col[0] = np.nan
    return count, mean_row, mean_col


def _lookup(values: np.ndarray, ids: np.ndarray) -> np.ndarray:
    out = np.full(len(ids), np.nan)
    inside = (ids >= 0) & (ids < len(values))
    out[inside] = values[ids[inside]]
    return out


def _nearest_links(
    from_xy: np.ndarray, to_xy: np.ndarray, candidates: np.ndarray, limit_px: float
) -> list[tuple[int, int]]:
    """For each index in ``candidates``, the nearest point of ``to_xy`` within ``limit_px`` (index pairs)."""
    links = []
    if len(to_xy) == 0:
        return links
    finite_to = np.all(np.isfinite(to_xy), axis=1)
    for i in candidates:
        if not np.all(np.isfinite(from_xy[i])):
            continue
        dist = np.hypot(*(to_xy - from_xy[i]).T)
        dist[~finite_to] = np.inf
        j = int(np.argmin(dist))
        if dist[j] <= limit_px:
            links.append((int(i), j))
    return links


def _gap_links(
    from_labels: np.ndarray,
    to_labels: np.ndarray,
    ids: np.ndarray,
    limit_px: float,
    allowed: np.ndarray | None = None,
    boxes: Callable[[], list] | None = None,
) -> dict[int, int]:
    """For each lesion ``ids[k]`` of ``from_labels``, the lesion of ``to_labels`` (same frame) whose nearest pixel
    lies closest to it, when within ``limit_px`` (pixel centre to pixel centre): ``{k: to_label}``. Lesions it
    shares pixels with are left out: their overlap was too small to link them. With ``allowed`` (bool per label
    value of ``to_labels``), only the allowed lesions are looked at. ``boxes`` gives the bounding boxes of
    ``from_labels`` (``scipy.ndimage.find_objects``), when the caller has them or will need them again.

    Each lesion is looked at in its bounding box padded by the limit, so the cost follows the lesions.

    Examples
    --------
    >>> a = np.zeros((5, 12), np.int32); a[2, 1:3] = 7
    >>> b = np.zeros((5, 12), np.int32); b[2, 5:11] = 3
    >>> _gap_links(a, b, np.array([7]), 3.0), _gap_links(a, b, np.array([7]), 2.5)
    ({0: 3}, {})
    """
    links: dict[int, int] = {}
    if len(ids) == 0 or not to_labels.any():
        return links
    found_boxes = boxes() if boxes is not None else ndimage.find_objects(from_labels)
    pad = int(np.ceil(limit_px)) + 1
    for k, lesion_id in enumerate(ids):
        box = found_boxes[lesion_id - 1] if 0 < lesion_id <= len(found_boxes) else None
        if box is None:  # not in the label map (dropped by warping): the centroid rule decides
            continue
        window = padded_window((box[0].start, box[0].stop), (box[1].start, box[1].stop), pad, from_labels.shape)
        other = to_labels[window]
        own = from_labels[window] == lesion_id
        # lesions it grazes were judged by their overlap (too small to link): not linked here either
        near = (other > 0) & ~np.isin(other, other[own])
        if allowed is not None:
            near &= allowed[other]
        if not near.any():
            continue
        distance = cv2.distanceTransform((~own).view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[near]
        nearest = int(np.argmin(distance))
        if distance[nearest] <= limit_px:
            links[k] = int(other[near][nearest])
    return links


def _cluster_joins(
    labels: np.ndarray,
    ids: np.ndarray,
    lone: np.ndarray,
    limit_px: float,
    offset: int,
    boxes: Callable[[], list] | None = None,
) -> list[tuple[int, int]]:
    """(lone node, node it joins) for the lone lesions of one visit that lie within ``limit_px`` of a lesion of the
    same visit that is linked or has joined, in rounds until none joins; nodes are indices into ``ids`` plus
    ``offset``. A lesion absent from ``labels`` (dropped by warping) joins nothing. ``boxes`` as for
    :func:`_gap_links`."""
    joins: list[tuple[int, int]] = []
    if len(lone) == 0 or len(lone) == len(ids):
        return joins
    index = {int(v): k for k, v in enumerate(ids)}
    in_group = np.zeros(max(int(labels.max(initial=0)), int(ids.max())) + 1, bool)
    in_group[ids[np.setdiff1d(np.arange(len(ids)), lone)]] = True
    waiting = np.asarray(lone, dtype=np.int64)
    while len(waiting):
        found = _gap_links(labels, labels, ids[waiting], limit_px, allowed=in_group, boxes=boxes)
        if not found:
            break
        for k, other in found.items():
            joins.append((offset + int(waiting[k]), offset + index[other]))
            in_group[ids[waiting[k]]] = True
        waiting = np.delete(waiting, list(found))
    return joins


def _unlinked(links: dict[tuple[int, int], str], n_pre: int, n_post: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the baseline and of the follow-up lesions that no link reaches yet."""
    linked_pre = {i for i, _ in links}
    linked_post = {j for _, j in links}
    return (
        np.array([i for i in range(n_pre) if i not in linked_pre], dtype=np.int64),
        np.array([j for j in range(n_post) if j not in linked_post], dtype=np.int64),
    )


def _inside(mask: np.ndarray | None, rc: np.ndarray) -> np.ndarray:
    """Whether each (row, col) point lies in ``mask`` (True everywhere when no mask)."""
    if mask is None:
        return np.ones(len(rc), bool)
    out = np.zeros(len(rc), bool)
    finite = np.all(np.isfinite(rc), axis=1)
    r = np.round(rc[finite, 0]).astype(int)
    c = np.round(rc[finite, 1]).astype(int)
    ok = (r >= 0) & (r < mask.shape[0]) & (c >= 0) & (c < mask.shape[1])
    hit = np.zeros(len(r), bool)
    hit[ok] = mask[r[ok], c[ok]]
    out[finite] = hit
    return out


def match_lesions(
    pre_table: pd.DataFrame,
    post_table: pd.DataFrame,
    pre_labels: np.ndarray,
    post_labels_in_pre: np.ndarray,
    *,
    distance_mm: float = 2.0,
    pre_spacing_mm: float | None,
    change_band: float = 0.2,
    post_area_scale: float = 1.0,
    min_overlap_fraction: float = 0.1,
    registration: Registration | None = None,
    area_column: str = "area_mm2",
    pre_field: np.ndarray | None = None,
    post_field_in_pre: np.ndarray | None = None,
    cluster_distance_mm: float = 0.0,
) -> pd.DataFrame:
    """Match baseline and follow-up lesions and classify the change of each match group.

    Parameters
    ----------
    pre_table, post_table : pandas.DataFrame
        One row per lesion with ``lesion_id`` (its value in the visit's label map), ``area_column`` (the area the
        visit measured on its own pixels) and, for the baseline, ``centroid_row`` and ``centroid_col`` (baseline
        pixels; the label map's centroid is used when absent). The follow-up's ``centroid_row`` and
        ``centroid_col`` are used only with ``registration``.
    pre_labels : numpy.ndarray
        Baseline label map (0 background).
    post_labels_in_pre : numpy.ndarray
        Follow-up label map carried into the baseline frame (:func:`calcimg.core.registration.warp_labels`).
    distance_mm : float
        A lesion that overlaps no lesion of the other visit is linked to the one nearest to it within this
        distance (baseline frame): measured between their nearest pixels, or between centroids when the lesion
        has no pixel in its label map (dropped by warping) or none lies near enough.
    pre_spacing_mm : float or None
        Baseline pixel spacing (None when uncalibrated: :data:`NOMINAL_SPACING_MM` is assumed for the distance).
    change_band : float
        Relative area change of a group beyond which it is "grown" (> band) or "shrunk" (< -band); 0.2 = 20%.
    post_area_scale : float
        The follow-up's areas are divided by this before comparison: the registration's ``scale ** 2`` removes a
        change of magnification (1 = no correction).
    min_overlap_fraction : float
        Shared pixels needed to link two lesions, as a fraction of the smaller one (in the baseline frame); a
        graze below it does not link neighbours.
    registration : Registration, optional
        When given, follow-up centroids come from ``post_table`` mapped by it (exact even for a lesion that
        nearest-neighbour warping dropped); otherwise from ``post_labels_in_pre``.
    area_column : str
        The column of both tables holding the areas compared.
    pre_field, post_field_in_pre : numpy.ndarray, optional
        bool fields of view in the baseline frame. An unmatched baseline lesion outside the follow-up's field (or
        an unmatched follow-up lesion outside the baseline's) is classed "outside_field" instead of
        "resolved" ("new").
    cluster_distance_mm : float
        A lesion still linked to nothing of the other visit joins the group of a lesion of its own visit that is
        linked, when their nearest pixels lie within this distance (and so on, from lesion to lesion): the grains
        of a cluster of which one film shows fewer (some too faint to be found) are one deposit that changed,
        not grains that resolved or appeared. Its ``matched_by`` is "cluster". 0 turns this off.

    Returns
    -------
    pandas.DataFrame
        One row per lesion per visit, baseline lesions first, with columns ``visit`` ("pre" or "post"),
        ``lesion_id``, ``group_id`` (1..G), ``matched_ids`` (the other visit's lesion ids in the group, ";"
        separated, "" when none), ``matched_by`` ("overlap", "distance", "cluster", or "" for none),
        ``change_class`` (stable, grown, shrunk, resolved, new, outside_field; the group's), ``area_mm2`` (the
        lesion's area as compared), ``centroid_row_pre``/``centroid_col_pre`` (baseline frame),
        ``group_area_pre_mm2``, ``group_area_post_mm2``, ``area_change_mm2`` and ``area_change_pct`` (NaN without a
        baseline area).

    Examples
    --------
    >>> pre = np.zeros((6, 12), np.int32); pre[1:3, 1:3] = 1; pre[1:3, 8:10] = 2
    >>> post = np.zeros((6, 12), np.int32); post[1:4, 1:4] = 1
    >>> t_pre = pd.DataFrame({"lesion_id": [1, 2], "area_mm2": [4.0, 4.0],
    ...                       "centroid_row": [1.5, 1.5], "centroid_col": [1.5, 8.5]})
    >>> t_post = pd.DataFrame({"lesion_id": [1], "area_mm2": [9.0]})
    >>> m = match_lesions(t_pre, t_post, pre, post, pre_spacing_mm=1.0)
    >>> m[["visit", "lesion_id", "matched_ids", "change_class"]].values.tolist()
    [['pre', 1, '1', 'grown'], ['pre', 2, '', 'resolved'], ['post', 1, '1', 'grown']]
    """
    pre_labels = np.asarray(pre_labels)
    post_labels_in_pre = np.asarray(post_labels_in_pre)
    if pre_labels.shape != post_labels_in_pre.shape:
        raise ValueError(
            f"label maps differ in shape: {pre_labels.shape} (baseline) and {post_labels_in_pre.shape} (follow-up)"
        )
    spacing = float(pre_spacing_mm) if pre_spacing_mm is not None else NOMINAL_SPACING_MM
    pre_ids = pre_table["lesion_id"].to_numpy(dtype=np.int64)
    post_ids = post_table["lesion_id"].to_numpy(dtype=np.int64)
    pre_area = pre_table[area_column].to_numpy(dtype=np.float64)
    post_area = post_table[area_column].to_numpy(dtype=np.float64) / float(post_area_scale)
    n_pre, n_post = len(pre_ids), len(post_ids)

    # centroids in the baseline frame, (row, col)
    pre_count, pre_r, pre_c = _label_stats(pre_labels)
    post_count, post_r, post_c = _label_stats(post_labels_in_pre)
    if {"centroid_row", "centroid_col"} <= set(pre_table.columns):
        pre_rc = pre_table[["centroid_row", "centroid_col"]].to_numpy(dtype=np.float64)
    else:
        pre_rc = np.stack([_lookup(pre_r, pre_ids), _lookup(pre_c, pre_ids)], axis=1)
    if registration is not None and {"centroid_row", "centroid_col"} <= set(post_table.columns):
        from calcimg.core.registration import transform_points

        post_rc = transform_points(post_table[["centroid_row", "centroid_col"]].to_numpy(np.float64), registration)
    else:
        post_rc = np.stack([_lookup(post_r, post_ids), _lookup(post_c, post_ids)], axis=1)

    # links: overlap, then nearest centroid for the lesions that overlap nothing
    pre_index = {int(v): i for i, v in enumerate(pre_ids)}
    post_index = {int(v): j for j, v in enumerate(post_ids)}
    links: dict[tuple[int, int], str] = {}
    for a, b, shared in zip(*_overlap_pairs(pre_labels, post_labels_in_pre), strict=True):
        i, j = pre_index.get(int(a)), post_index.get(int(b))
        if i is None or j is None:
            continue
        smaller = min(pre_count[a], post_count[b])
        if shared >= min_overlap_fraction * smaller:
            links[(i, j)] = "overlap"
    limit_px = float(distance_mm) / spacing
    # Each label map's bounding boxes are found once, when first needed (a pass over the whole map).
    pre_boxes = cache(partial(ndimage.find_objects, pre_labels))
    post_boxes = cache(partial(ndimage.find_objects, post_labels_in_pre))
    lone_pre, lone_post = _unlinked(links, n_pre, n_post)
    # A lone lesion is linked to the lesion of the other visit nearest to its outline (a fragment of a deposit
    # that split, or a neighbour displaced by registration error), else to the nearest centroid.
    for i, other in _gap_links(pre_labels, post_labels_in_pre, pre_ids[lone_pre], limit_px, boxes=pre_boxes).items():
        if other in post_index:
            links.setdefault((lone_pre[i], post_index[other]), "distance")
    for j, other in _gap_links(post_labels_in_pre, pre_labels, post_ids[lone_post], limit_px, boxes=post_boxes).items():
        if other in pre_index:
            links.setdefault((pre_index[other], lone_post[j]), "distance")
    lone_pre, lone_post = _unlinked(links, n_pre, n_post)
    for i, j in _nearest_links(pre_rc, post_rc, lone_pre, limit_px):
        links.setdefault((i, j), "distance")
    for j, i in _nearest_links(post_rc, pre_rc, lone_post, limit_px):
        links.setdefault((i, j), "distance")

    # grains of a cluster: lone lesions join a linked lesion of their own visit (nodes: baseline 0..n_pre-1,
    # then follow-up)
    joins: list[tuple[int, int]] = []
    if cluster_distance_mm > 0:
        cluster_px = float(cluster_distance_mm) / spacing
        lone_pre, lone_post = _unlinked(links, n_pre, n_post)
        joins += _cluster_joins(pre_labels, pre_ids, lone_pre, cluster_px, 0, pre_boxes)
        joins += _cluster_joins(post_labels_in_pre, post_ids, lone_post, cluster_px, n_pre, post_boxes)

    # groups: connected components of the graph
    n = n_pre + n_post
    edges = [(i, n_pre + j) for i, j in links] + joins
    if edges:
        ij = np.array(edges, dtype=np.int64)
        graph = sparse.coo_matrix((np.ones(len(ij)), (ij[:, 0], ij[:, 1])), shape=(n, n))
        _, component = connected_components(graph, directed=False)
    else:
        component = np.arange(n)
    # number groups by their first baseline lesion, then follow-up-only groups by lesion order
    order: dict[int, int] = {}
    for node in range(n):
        order.setdefault(int(component[node]), len(order) + 1)
    group = np.array([order[int(c)] for c in component], dtype=np.int64)

    partners: dict[int, list[int]] = {node: [] for node in range(n)}
    how: dict[int, set[str]] = {node: set() for node in range(n)}
    for (i, j), kind in links.items():
        partners[i].append(n_pre + j)
        partners[n_pre + j].append(i)
        how[i].add(kind)
        how[n_pre + j].add(kind)
    for node, _ in joins:
        how[node].add("cluster")

    pre_seen = _inside(post_field_in_pre, pre_rc) if post_field_in_pre is not None else np.ones(n_pre, bool)
    post_seen = _inside(pre_field, post_rc) if pre_field is not None else np.ones(n_post, bool)
    areas = np.concatenate([pre_area, post_area])
    rows = []
    for g in range(1, len(order) + 1):
        members = np.flatnonzero(group == g)
        pre_members = members[members < n_pre]
        post_members = members[members >= n_pre]
        a_pre = float(areas[pre_members].sum())
        a_post = float(areas[post_members].sum())
        if len(post_members) == 0:
            change = "resolved" if pre_seen[pre_members].all() else "outside_field"
        elif len(pre_members) == 0:
            change = "new" if post_seen[post_members - n_pre].all() else "outside_field"
        else:
            rel = (a_post - a_pre) / a_pre if a_pre > 0 else np.inf
            change = "grown" if rel > change_band else "shrunk" if rel < -change_band else "stable"
        pct = 100.0 * (a_post - a_pre) / a_pre if a_pre > 0 else float("nan")
        for node in members:
            is_pre = node < n_pre
            other = sorted(int(post_ids[p - n_pre]) if is_pre else int(pre_ids[p]) for p in partners[node])
            rc = pre_rc[node] if is_pre else post_rc[node - n_pre]
            rows.append(
                {
                    "visit": "pre" if is_pre else "post",
                    "lesion_id": int(pre_ids[node] if is_pre else post_ids[node - n_pre]),
                    "group_id": g,
                    "matched_ids": ";".join(str(v) for v in other),
                    "matched_by": "+".join(sorted(how[node])),
                    "change_class": change,
                    "area_mm2": float(areas[node]),
                    "centroid_row_pre": float(rc[0]),
                    "centroid_col_pre": float(rc[1]),
                    "group_area_pre_mm2": a_pre,
                    "group_area_post_mm2": a_post,
                    "area_change_mm2": a_post - a_pre,
                    "area_change_pct": pct,
                }
            )
    table = pd.DataFrame(rows, columns=_COLUMNS)
    if len(table):
        table["_pre_first"] = table["visit"] != "pre"
        table = table.sort_values(["_pre_first", "lesion_id"], kind="stable").drop(columns="_pre_first")
        table = table.reset_index(drop=True)
    return table.astype({"lesion_id": np.int64, "group_id": np.int64})


def without_matching(matches: pd.DataFrame) -> pd.DataFrame:
    """The match table of a pair whose registration is doubtful: every lesion alone and ``not_compared``.

    Matching through a wrong alignment would call deposits new and resolved that are neither; the per-visit
    measurements stay, every link and change goes.

    Examples
    --------
    >>> m = pd.DataFrame({"visit": ["pre", "post"], "lesion_id": [1, 1], "group_id": [1, 1],
    ...                   "matched_ids": ["1", "1"], "matched_by": ["overlap", "overlap"],
    ...                   "change_class": ["grown", "grown"], "area_mm2": [2.0, 3.0],
    ...                   "centroid_row_pre": [5.0, 5.2], "centroid_col_pre": [5.0, 5.1],
    ...                   "group_area_pre_mm2": [2.0, 2.0], "group_area_post_mm2": [3.0, 3.0],
    ...                   "area_change_mm2": [1.0, 1.0], "area_change_pct": [50.0, 50.0]})
    >>> without_matching(m)[["visit", "group_id", "matched_ids", "change_class"]].values.tolist()
    [['pre', 1, '', 'not_compared'], ['post', 2, '', 'not_compared']]
    """
    table = matches.copy()
    table["group_id"] = np.arange(1, len(table) + 1, dtype=np.int64)
    table["matched_ids"] = ""
    table["matched_by"] = ""
    table["change_class"] = "not_compared"
    unknown = ["group_area_pre_mm2", "group_area_post_mm2", "area_change_mm2", "area_change_pct"]
    table[unknown] = np.nan
    post = table["visit"] == "post"
    table.loc[post, ["centroid_row_pre", "centroid_col_pre"]] = np.nan  # placed by the doubtful transform
    return table


def pair_counts(matches: pd.DataFrame) -> dict[str, int]:
    """Counts of a match table: ``new`` and ``resolved`` lesions, ``grown``, ``shrunk`` and ``stable`` groups,
    ``outside_field`` lesions.

    Parameters
    ----------
    matches : pandas.DataFrame
        The output of :func:`match_lesions`.

    Returns
    -------
    dict of str to int
        A matched group counts once however many lesions it holds (a split deposit is one "grown" or "shrunk").

    Examples
    --------
    >>> m = pd.DataFrame({"visit": ["pre", "post", "post", "post"], "group_id": [1, 1, 1, 2],
    ...                   "change_class": ["grown", "grown", "grown", "new"]})
    >>> pair_counts(m)
    {'new': 1, 'resolved': 0, 'grown': 1, 'shrunk': 0, 'stable': 0, 'outside_field': 0}
    """
    counts = dict.fromkeys(("new", "resolved", "grown", "shrunk", "stable", "outside_field"), 0)
    if len(matches) == 0:
        return counts
    cls = matches["change_class"]
    counts["new"] = int(((cls == "new") & (matches["visit"] == "post")).sum())
    counts["resolved"] = int(((cls == "resolved") & (matches["visit"] == "pre")).sum())
    counts["outside_field"] = int((cls == "outside_field").sum())
    groups = matches.drop_duplicates("group_id")
    for name in ("grown", "shrunk", "stable"):
        counts[name] = int((groups["change_class"] == name).sum())
    return counts
