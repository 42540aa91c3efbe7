"""Baseline/follow-up phantom pairs with exact ground truth: :func:`make_pair`.

Both visits are rendered from the same scene in anatomical mm, each on its own grid after its own transform, so
neither image is a resampled copy of the other and both truths are exact.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import pandas as pd

# The pair categories come from the function the pipeline uses; the names stay importable from here.
from calcimg.core.matching import PROGRESSION_PCT as PROGRESSION_PCT
from calcimg.core.matching import RESPONSE_PCT as RESPONSE_PCT
from calcimg.core.matching import categorise as categorise
from calcimg.model import Radiograph
from calcimg.phantom.acquisition import (
    Display,
    Exposure,
    Texture,
    dataclass_dict,
    draw_collimation,
    draw_display,
    draw_exposure,
    expose,
    field_distance,
    make_texture,
    place_marker,
    render_marker,
    to_display,
)
from calcimg.phantom.anatomy import Scene, bone_chords, build_scene, soft_thickness
from calcimg.phantom.config import SITE_SPECS, PhantomConfig, SiteSpec, resolve_site
from calcimg.phantom.geometry import Grid, View, apply, similarity
from calcimg.phantom.lesions import Lesion, _choose, place_lesions, placement_maps, rasterise_lesions

#: Transfer syntax the writer uses (explicit VR little endian), recorded in the radiograph metadata.
TRANSFER_SYNTAX = "1.2.840.10008.1.2.1"
MANUFACTURER = "calcimg phantom"


@dataclass
class PhantomVisit:
    """One rendered visit with its truth.

    Attributes
    ----------
    name : str
        "pre" or "post".
    radiograph : calcimg.model.Radiograph
        Display pixels (uint16, bright = dense), spacing as the DICOM file reports it (ImagerPixelSpacing).
    stored : numpy.ndarray
        uint16 array as written to a DICOM file (inverted when MONOCHROME1).
    identity_labels : numpy.ndarray
        int32 map, 0 background, value = lesion_id (shared by both visits).
    component_labels : numpy.ndarray
        int32 8-connected labelling of ``identity_labels > 0``.
    spacing_mm : float
        Detector pixel spacing (both axes).
    photometric : str
        MONOCHROME1 or MONOCHROME2 (of ``stored``).
    bits_stored : int
    magnification : float
        Detector mm per anatomical mm.
    date : str
        Study date, YYYYMMDD.
    anat_to_det : numpy.ndarray
        3x3 transform from the anatomy frame to the detector plane (mm).
    masks : dict
        bool maps: "bone" (projected bone), "tissue" (under the patient), "field" (exposed, inside the
        collimation), "marker" (lead letter).
    acquisition : dict
        JSON-safe record of the exposure, processing, collimation, marker and display window.
    lesion_windows : dict
        lesion_id -> (row slice, col slice) containing the lesion.
    """

    name: str
    radiograph: Radiograph
    stored: np.ndarray
    identity_labels: np.ndarray
    component_labels: np.ndarray
    spacing_mm: float
    photometric: str
    bits_stored: int
    magnification: float
    date: str
    anat_to_det: np.ndarray
    masks: dict[str, np.ndarray]
    acquisition: dict[str, Any]
    lesion_windows: dict[int, tuple[slice, slice]] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols)."""
        return self.radiograph.shape

    @property
    def grid(self) -> Grid:
        """The visit's pixel grid."""
        return Grid(self.shape[0], self.shape[1], self.spacing_mm)

    @property
    def view(self) -> View:
        """Grid and anatomy transform together."""
        return View(self.grid, self.anat_to_det)


@dataclass
class PhantomPair:
    """A synthetic baseline/follow-up pair and its truth.

    Attributes
    ----------
    site : str
    seed : int
    pre, post : PhantomVisit
    lesions : pandas.DataFrame
        One row per lesion (see ``docs/phantoms.md`` for the columns).
    summary : dict
        JSON-safe pair truth: counts, total areas, % change, category, response, transform, acquisition.
    scene : Scene
        The anatomy (for tests and figures).
    lesion_objects : list of Lesion
        The lesion geometry.
    """

    site: str
    seed: int
    pre: PhantomVisit
    post: PhantomVisit
    lesions: pd.DataFrame
    summary: dict[str, Any]
    scene: Scene
    lesion_objects: list[Lesion]

    @property
    def visits(self) -> tuple[PhantomVisit, PhantomVisit]:
        """(pre, post)."""
        return (self.pre, self.post)


# ----------------------------------------------------------------------------------------------------------------
# pair-level draws


def _grid(spec: SiteSpec, spacing: float, config: PhantomConfig) -> Grid:
    fov_h, fov_w = spec.fov_mm
    if config.shape is not None:
        rows, cols = int(config.shape[0]), int(config.shape[1])
        spacing = float(np.ceil(max(fov_h / rows, fov_w / cols) * 1e4) / 1e4)
        return Grid(rows, cols, spacing)
    spacing = round(spacing, 4)
    rows, cols = round(fov_h / spacing), round(fov_w / spacing)
    if config.max_pixels is not None and rows * cols > config.max_pixels:
        spacing = float(np.ceil(spacing * np.sqrt(rows * cols / config.max_pixels) * 1e4) / 1e4)
        rows, cols = int(fov_h / spacing), int(fov_w / spacing)
    return Grid(rows, cols, spacing)


def _detector(rng: np.random.Generator, spec: SiteSpec, config: PhantomConfig) -> tuple[float, int, str]:
    lo, hi = config.spacing_mm if config.spacing_mm is not None else spec.spacing_mm
    spacing = float(rng.uniform(lo, hi))
    bits = int(rng.integers(config.bits_stored[0], config.bits_stored[1] + 1))
    photometric = "MONOCHROME1" if rng.random() < config.p_monochrome1 else "MONOCHROME2"
    return spacing, bits, photometric


def _dates(rng: np.random.Generator) -> tuple[str, str]:
    pre = _dt.date(2012, 1, 1) + _dt.timedelta(days=int(rng.integers(0, 3650)))
    post = pre + _dt.timedelta(days=int(rng.integers(180, 550)))
    return pre.strftime("%Y%m%d"), post.strftime("%Y%m%d")


def _magnification(matrix: np.ndarray) -> float:
    return float(np.sqrt(abs(np.linalg.det(matrix[:2, :2]))))


# ----------------------------------------------------------------------------------------------------------------
# one visit


@dataclass(frozen=True)
class _VisitPlan:
    name: str
    view: View
    exposure: Exposure
    display: Display
    date: str


def _render_visit(
    plan: _VisitPlan,
    scene: Scene,
    lesions: list[Lesion],
    textures: tuple[Texture, Texture],
    letter: str,
    spec: SiteSpec,
    laterality: str,
    config: PhantomConfig,
    rng: np.random.Generator,
) -> PhantomVisit:
    view, grid, exposure, display = plan.view, plan.view.grid, plan.exposure, plan.display
    trabecular, coarse = textures
    soft = soft_thickness(scene, view)
    cortex, medulla, outer = bone_chords(scene, view)
    full = (slice(0, grid.rows), slice(0, grid.cols))
    u, v = view.coords(full, dtype=np.float32)
    beam = np.float32(exposure.beam)
    mu_soft = np.float32(scene.mu_soft) * beam ** np.float32(-0.3)
    mu_cortex = np.float32(scene.mu_cortex) / beam
    mu_trab = np.float32(scene.mu_trabecular) / beam
    att = np.maximum(soft - outer, 0)
    att *= mu_soft * (1 + np.float32(0.015) * coarse(u, v))
    att += mu_cortex * cortex
    att += mu_trab * medulla * (1 + np.float32(0.15) * trabecular(u, v))
    del u, v
    raster = rasterise_lesions(lesions, plan.name, view, texture=trabecular)
    att += mu_cortex * raster.thickness
    keep_out = [(w[0].start, w[0].stop, w[1].start, w[1].stop) for w in raster.windows.values()]
    coll = draw_collimation(rng, config, grid, keep_out)
    field_d = field_distance(coll, grid)
    marker = place_marker(rng, config, grid, field_d, keep_out, letter)
    marker_mask = np.zeros(grid.shape, bool)
    block_mask = np.zeros(grid.shape, bool)
    marker_att = None
    if marker is not None:
        win, m_att, letter_px = render_marker(marker, grid)
        marker_att = np.zeros(grid.shape, np.float32)
        marker_att[win] = m_att
        marker_mask[win] = letter_px
        block_mask[win] = m_att > 0
    tissue = soft > 0.5
    in_field = np.ones(grid.shape, bool) if field_d is None else field_d > 0
    anatomy = tissue & in_field & ~block_mask
    signal, i0 = expose(att, marker_att, anatomy, grid, exposure, field_d, not coll.black, rng)
    del att, marker_att
    pixels, window = to_display(signal, i0, anatomy, grid, exposure, display, field_d, coll.black)
    maxval = np.uint16(2**display.bits_stored - 1)
    stored = maxval - pixels if display.photometric == "MONOCHROME1" else pixels
    components = cv2.connectedComponents((raster.identity > 0).astype(np.uint8), connectivity=8, ltype=cv2.CV_32S)[1]
    radiograph = Radiograph(
        pixels=pixels,
        spacing_mm=(grid.spacing_mm, grid.spacing_mm),
        spacing_source="imager_pixel_spacing",
        path=None,
        content_hash="sha256:" + hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest(),
        bits_stored=display.bits_stored,
        metadata={
            "modality": "DX",
            "body_part": spec.body_part,
            "laterality": laterality,
            "view": spec.view,
            "study_date": plan.date,
            "acquisition_date": plan.date,
            "manufacturer": MANUFACTURER,
            "photometric": display.photometric,
            "transfer_syntax": TRANSFER_SYNTAX,
        },
    )
    acquisition = {
        "shape": [grid.rows, grid.cols],
        "spacing_mm": grid.spacing_mm,
        "magnification": _magnification(view.anat_to_det),
        "i0_quanta": i0,
        "exposure": dataclass_dict(exposure),
        "display": dataclass_dict(display),
        "window": window,
        "collimation": coll.to_dict(),
        "marker": None if marker is None else marker.to_dict(),
        "mu_per_mm": {"soft": float(mu_soft), "cortex": float(mu_cortex), "trabecular": float(mu_trab)},
    }
    return PhantomVisit(
        name=plan.name,
        radiograph=radiograph,
        stored=stored,
        identity_labels=raster.identity,
        component_labels=components,
        spacing_mm=grid.spacing_mm,
        photometric=display.photometric,
        bits_stored=display.bits_stored,
        magnification=_magnification(view.anat_to_det),
        date=plan.date,
        anat_to_det=view.anat_to_det,
        masks={"bone": outer > 0, "tissue": tissue, "field": in_field, "marker": marker_mask},
        acquisition=acquisition,
        lesion_windows=raster.windows,
    )


# ----------------------------------------------------------------------------------------------------------------
# truth tables


def _touching(visit: PhantomVisit) -> set[int]:
    ids = visit.identity_labels.ravel()
    nz = np.flatnonzero(ids)
    pairs = np.unique(np.stack([visit.component_labels.ravel()[nz], ids[nz]]), axis=1)
    comps, counts = np.unique(pairs[0], return_counts=True)
    shared = comps[counts > 1]
    return {int(i) for i in pairs[1][np.isin(pairs[0], shared)]}


def _lesion_stats(visit: PhantomVisit, lesion_id: int) -> tuple[int, float, float, float]:
    """(area px, centroid row, centroid col, fraction over bone) of a lesion at a visit."""
    win = visit.lesion_windows.get(lesion_id)
    if win is None:
        return 0, float("nan"), float("nan"), float("nan")
    rr, cc = np.nonzero(visit.identity_labels[win] == lesion_id)
    if rr.size == 0:
        return 0, float("nan"), float("nan"), float("nan")
    bone = visit.masks["bone"][win][rr, cc]
    return int(rr.size), float(rr.mean() + win[0].start), float(cc.mean() + win[1].start), float(bone.mean())


def lesion_table(lesions: list[Lesion], pre: PhantomVisit, post: PhantomVisit) -> pd.DataFrame:
    """The per-lesion truth table of a pair.

    Parameters
    ----------
    lesions : list of Lesion
    pre, post : PhantomVisit

    Returns
    -------
    pandas.DataFrame
        One row per lesion, ordered by lesion_id.
    """
    touching = _touching(pre) | _touching(post)
    rows = []
    to_pre_mm = np.linalg.inv(pre.grid.mm_to_px())
    for les in lesions:
        a_pre, r_pre, c_pre, bone_pre = _lesion_stats(pre, les.lesion_id)
        a_post, r_post, c_post, bone_post = _lesion_stats(post, les.lesion_id)
        # baseline frame; a lesion absent at baseline is placed by its anatomical centre
        xy = apply(to_pre_mm, np.array([c_pre, r_pre])) if a_pre else apply(pre.anat_to_det, np.array(les.centre))
        xy = xy / pre.magnification
        mm2_pre = a_pre * pre.spacing_mm**2
        mm2_post = a_post * post.spacing_mm**2
        anat_pre = mm2_pre / pre.magnification**2
        anat_post = mm2_post / post.magnification**2
        present = les.geometry("pre") or les.geometry("post")
        peak = {}
        for visit in (pre, post):
            parts = les.geometry(visit.name)
            mu = visit.acquisition["mu_per_mm"]["cortex"] * les.mu_ratio
            peak[visit.name] = float("nan") if parts is None else mu * max(p.depth for p in parts)
        rows.append(
            {
                "lesion_id": les.lesion_id,
                "kind": les.kind,
                "n_parts": len(les.parts),
                "change": les.change,
                "factor": les.factor,
                "over_bone": bool((bone_pre if a_pre else bone_post) >= 0.5),
                "bone_overlap": bone_pre if a_pre else bone_post,
                "touches": les.lesion_id in touching,
                "centroid_x_mm": float(xy[0]),
                "centroid_y_mm": float(xy[1]),
                "pre_row": r_pre,
                "pre_col": c_pre,
                "post_row": r_post,
                "post_col": c_post,
                "area_pre_px": a_pre,
                "area_post_px": a_post,
                "area_pre_mm2": mm2_pre,
                "area_post_mm2": mm2_post,
                "area_pre_anat_mm2": anat_pre,
                "area_post_anat_mm2": anat_post,
                "area_ratio": anat_post / anat_pre if anat_pre > 0 else float("nan"),
                "max_diameter_mm": 2.0 * max(p.bound() for p in present),
                "peak_depth_mm": max(p.depth for p in present),
                "mu_ratio": les.mu_ratio,
                "peak_attenuation_pre": peak["pre"],
                "peak_attenuation_post": peak["post"],
            }
        )
    return pd.DataFrame(rows)


def _summary(
    seed: int,
    site: str,
    spec: SiteSpec,
    laterality: str,
    trend: str,
    table: pd.DataFrame,
    pre: PhantomVisit,
    post: PhantomVisit,
    delta: dict[str, Any],
    config: PhantomConfig,
) -> dict[str, Any]:
    pre_total = float(table["area_pre_anat_mm2"].sum()) if len(table) else 0.0
    post_total = float(table["area_post_anat_mm2"].sum()) if len(table) else 0.0
    n_new = int(((table["area_pre_px"] == 0) & (table["area_post_px"] > 0)).sum()) if len(table) else 0
    n_resolved = int(((table["area_pre_px"] > 0) & (table["area_post_px"] == 0)).sum()) if len(table) else 0
    pct, category, response = categorise(pre_total, post_total, n_new)

    def visit_facts(v: PhantomVisit) -> dict[str, Any]:
        return {
            "date": v.date,
            "photometric": v.photometric,
            "bits_stored": v.bits_stored,
            "n_lesions": int((table[f"area_{v.name}_px"] > 0).sum()) if len(table) else 0,
            "n_components": int(v.component_labels.max()),
            **v.acquisition,
        }

    return {
        "seed": int(seed),
        "site": site,
        "body_part": spec.body_part,
        "view": spec.view,
        "laterality": laterality,
        "intended_trend": trend,
        "n_lesions": len(table),
        "n_lesions_pre": int((table["area_pre_px"] > 0).sum()) if len(table) else 0,
        "n_lesions_post": int((table["area_post_px"] > 0).sum()) if len(table) else 0,
        "n_new": n_new,
        "n_resolved": n_resolved,
        "n_components_pre": int(pre.component_labels.max()),
        "n_components_post": int(post.component_labels.max()),
        "total_area_pre_px": int(table["area_pre_px"].sum()) if len(table) else 0,
        "total_area_post_px": int(table["area_post_px"].sum()) if len(table) else 0,
        "total_area_pre_mm2": float(table["area_pre_mm2"].sum()) if len(table) else 0.0,
        "total_area_post_mm2": float(table["area_post_mm2"].sum()) if len(table) else 0.0,
        "total_area_pre_anat_mm2": pre_total,
        "total_area_post_anat_mm2": post_total,
        "pct_change": pct,
        "category": category,
        "response": response,
        "transform": delta,
        "spacing_mm": {"pre": pre.spacing_mm, "post": post.spacing_mm},
        "bits_stored": {"pre": pre.bits_stored, "post": post.bits_stored},
        "photometric": {"pre": pre.photometric, "post": post.photometric},
        "visits": {"pre": visit_facts(pre), "post": visit_facts(post)},
        "conventions": {
            "coordinates": "mm from the image centre, x right (columns), y down (rows); pixel centres",
            "mask_rule": "a pixel belongs to a lesion when its centre lies inside the lesion outline",
            "area_mm2": "pixel count x spacing^2 at the detector (ImagerPixelSpacing)",
            "area_anat_mm2": "detector area / magnification^2",
            "pct_change": "on total anatomical areas; category progression > +25%, improvement < -25%",
            "response": "complete_resolution if post total 0; response if reduction >= 20% and no new lesion",
            "transform": "post detector mm = magnification * R(rotation_deg) @ pre detector mm + shift_mm; "
            "rotation counter-clockwise as displayed",
        },
        "config": config.to_dict(),
    }


# ----------------------------------------------------------------------------------------------------------------
# public entry point


def make_pair(seed: int, site: str = "hand", config: PhantomConfig | None = None) -> PhantomPair:
    """Render a synthetic baseline/follow-up radiograph pair with exact truth.

    Parameters
    ----------
    seed : int
        Seed of every random draw: the same seed and config give identical arrays.
    site : str
        One of :data:`calcimg.phantom.SITES` ("hand", "forearm", "knee", "pelvis"); "elbow" and "hip" are aliases.
    config : PhantomConfig, optional
        Ranges and probabilities; defaults mimic clinical films.

    Returns
    -------
    PhantomPair

    Raises
    ------
    calcimg.errors.ParameterError
        For an unknown site.

    Examples
    --------
    >>> from calcimg.phantom import PhantomConfig, make_pair
    >>> pair = make_pair(3, "hand", PhantomConfig(shape=(256, 256)))
    >>> pair.pre.radiograph.shape
    (256, 256)
    >>> pair.summary["category"] in ("progression", "improvement", "stable")
    True
    """
    config = config or PhantomConfig()
    site = resolve_site(site)
    # A draw can make a lesion vanish on a coarse grid (or under a neighbour); it is then redrawn from a stream
    # derived from the seed, so the result stays a pure function of (seed, site, config).
    for attempt in range(_MAX_ATTEMPTS):
        rng = np.random.default_rng(seed if attempt == 0 else [seed, attempt])
        try:
            return _draw_pair(seed, site, config, rng)
        except _DegenerateDraw:
            continue
    raise RuntimeError(f"phantom seed {seed}: no valid draw in {_MAX_ATTEMPTS} attempts")


_MAX_ATTEMPTS = 20


class _DegenerateDraw(RuntimeError):
    """A lesion present at a visit has no pixel on that visit's grid."""


def _draw_pair(seed: int, site: str, config: PhantomConfig, rng: np.random.Generator) -> PhantomPair:
    """One attempt of :func:`make_pair` with the given random stream."""
    spec = SITE_SPECS[site]
    scene = build_scene(site, rng)
    if site == "pelvis":
        laterality, letter = "B", str(rng.choice(["L", "R"]))
    else:
        laterality = str(rng.choice(["R", "L"]))
        letter = laterality
    m_pre = float(rng.uniform(*config.pre_magnification))
    pose = similarity(
        m_pre,
        float(rng.uniform(-1, 1) * config.pose_rotation_deg),
        tuple(rng.uniform(-1, 1, 2) * config.pose_shift_mm),
        mirror=laterality == "L",
    )
    spacing, bits, photometric = _detector(rng, spec, config)
    new_detector = config.shape is None and bool(rng.random() < config.p_new_detector)
    if new_detector:
        spacing_post, bits_post, photometric_post = _detector(rng, spec, config)
    else:
        spacing_post, bits_post, photometric_post = spacing, bits, photometric
    rot = float(rng.uniform(-1, 1) * config.max_rotation_deg)
    shift = (float(rng.uniform(-1, 1) * config.max_shift_mm), float(rng.uniform(-1, 1) * config.max_shift_mm))
    mag = float(1.0 + rng.uniform(-1, 1) * config.max_magnification)
    delta = similarity(mag, rot, shift)
    grid_pre = _grid(spec, spacing, config)
    grid_post = _grid(spec, spacing_post, config) if new_detector else grid_pre
    views = (View(grid_pre, pose), View(grid_post, delta @ pose))
    trend = _choose(config.trend_weights, rng)
    min_r = config.min_lesion_px * max(v.anat_mm_per_px for v in views)
    fov_area = spec.fov_mm[0] * spec.fov_mm[1]
    maps = placement_maps(scene, views, 0.5 if fov_area < 1e5 else 1.0)
    lesions = place_lesions(rng, scene, maps, config, spec.kinds, trend, min_r)
    # anatomy-fixed textures, so the trabecular pattern moves with the bone between visits
    cover = apply(maps.view.px_to_anat, np.array([[0, 0], [maps.tissue.shape[1], maps.tissue.shape[0]]]))
    bbox = (float(cover[:, 0].min()), float(cover[:, 1].min()), float(cover[:, 0].max()), float(cover[:, 1].max()))
    fine = min(v.anat_mm_per_px for v in views)
    textures = (make_texture(rng, bbox, fine, (0.3, 1.5), ridges=True), make_texture(rng, bbox, 2.0, (6.0, 30.0)))
    date_pre, date_post = _dates(rng)
    plans = (
        _VisitPlan("pre", views[0], draw_exposure(rng, config), draw_display(rng, config, bits, photometric), date_pre),
        _VisitPlan(
            "post",
            views[1],
            draw_exposure(rng, config),
            draw_display(rng, config, bits_post, photometric_post),
            date_post,
        ),
    )
    pre, post = (_render_visit(p, scene, lesions, textures, letter, spec, laterality, config, rng) for p in plans)
    for visit in (pre, post):
        for les in lesions:
            present = les.geometry(visit.name) is not None
            if present and not np.any(visit.identity_labels[visit.lesion_windows[les.lesion_id]] == les.lesion_id):
                raise _DegenerateDraw(f"phantom seed {seed}: lesion {les.lesion_id} has no pixel at {visit.name}")
    table = lesion_table(lesions, pre, post)
    transform = {
        "rotation_deg": rot,
        "shift_mm": list(shift),
        "magnification": mag,
        "matrix": [[float(x) for x in row] for row in delta],
        "pre_magnification": pre.magnification,
        "post_magnification": post.magnification,
        "new_detector": new_detector,
    }
    summary = _summary(seed, site, spec, laterality, trend, table, pre, post, transform, config)
    return PhantomPair(site, int(seed), pre, post, table, summary, scene, lesions)
