"""Calcinosis deposits: shapes, placement in the anatomy, change between visits and exact rasterisation.

A lesion is one or more *parts*, each a closed region with an analytic normalised radius ``rho`` (below 1 inside)
and a dome-shaped thickness ``depth * sqrt(1 - rho**2)`` (brighter in the middle). The truth mask of a lesion on
a grid is the set of pixels whose centre has ``rho < 1`` for some part (the pixel-centre rule), so it is exact on
every grid; the attenuation is the same thickness averaged over 3 x 3 sub-pixel samples (partial volume).

A lesion's follow-up geometry is its baseline geometry scaled by ``sqrt(factor)`` (all lengths, so the area is
multiplied by ``factor``): about the lesion centre for single bodies and masses, about each grain's own centre for
clusters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import cv2
import numpy as np

from calcimg.phantom.anatomy import Scene, bone_chords, soft_thickness
from calcimg.phantom.config import CHANGES, PhantomConfig
from calcimg.phantom.geometry import BBox, Grid, View, apply, similarity

Sampler = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class StarPart:
    """A star-shaped body: an ellipse with a harmonic (lobulated) radius.

    Attributes
    ----------
    centre : tuple of float
        Anatomy mm.
    a, b : float
        Semi-axes of the base ellipse (mm).
    angle_deg : float
    harmonics : tuple of (int, float, float)
        (order, relative amplitude, phase) terms of the radius modulation.
    depth : float
        Peak thickness along the beam (mm).
    """

    centre: tuple[float, float]
    a: float
    b: float
    angle_deg: float
    harmonics: tuple[tuple[int, float, float], ...]
    depth: float

    def bound(self) -> float:
        """Radius of a circle about the centre that contains the part."""
        return max(self.a, self.b) * (1.0 + sum(abs(h[1]) for h in self.harmonics))

    def bbox(self) -> BBox:
        r = self.bound()
        return (self.centre[0] - r, self.centre[1] - r, self.centre[0] + r, self.centre[1] + r)

    def rho(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Normalised radius: below 1 inside."""
        ang = np.deg2rad(self.angle_deg)
        du, dv = u - self.centre[0], v - self.centre[1]
        x = np.cos(ang) * du - np.sin(ang) * dv
        y = np.sin(ang) * du + np.cos(ang) * dv
        theta = np.arctan2(y, x)
        radius = self.a * self.b / np.sqrt(np.square(self.b * np.cos(theta)) + np.square(self.a * np.sin(theta)))
        if self.harmonics:
            mod = np.ones_like(theta)
            for order, amp, phase in self.harmonics:
                mod += amp * np.cos(order * theta + phase)
            radius = radius * mod
        return np.hypot(x, y) / radius

    def thickness(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Material crossed by the ray (mm)."""
        return self.depth * np.sqrt(np.maximum(1.0 - np.square(self.rho(u, v)), 0.0))

    def scaled(self, factor: float, about: tuple[float, float]) -> StarPart:
        """The part with every length multiplied by ``factor`` about the point ``about``."""
        c = (about[0] + factor * (self.centre[0] - about[0]), about[1] + factor * (self.centre[1] - about[1]))
        return replace(self, centre=c, a=self.a * factor, b=self.b * factor, depth=self.depth * factor)

    def moved(self, offset: tuple[float, float]) -> StarPart:
        """The part translated by ``offset``."""
        return replace(self, centre=(self.centre[0] + offset[0], self.centre[1] + offset[1]))


@dataclass(frozen=True)
class ArcPart:
    """A sheet or plate seen edge-on: a curved lens of half-width tapering to zero at both ends.

    Attributes
    ----------
    centre : tuple of float
        Midpoint of the centre line (anatomy mm).
    angle_deg : float
        Direction of the tangent at the midpoint.
    length : float
        Arc length of the centre line (mm).
    curvature : float
        Signed curvature of the centre line (1/mm); 0 is straight.
    half_width : float
        Half-width at the middle (mm).
    depth : float
        Peak thickness along the beam (mm).
    """

    centre: tuple[float, float]
    angle_deg: float
    length: float
    curvature: float
    half_width: float
    depth: float

    def bound(self) -> float:
        """Radius of a circle about the centre that contains the part."""
        return 0.5 * self.length + self.half_width

    def bbox(self) -> BBox:
        r = self.bound()
        return (self.centre[0] - r, self.centre[1] - r, self.centre[0] + r, self.centre[1] + r)

    def _local(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(arc length from the midpoint, normal distance) of each point."""
        ang = np.deg2rad(self.angle_deg)
        du, dv = u - self.centre[0], v - self.centre[1]
        x = np.cos(ang) * du + np.sin(ang) * dv
        y = -np.sin(ang) * du + np.cos(ang) * dv
        if abs(self.curvature) < 1e-9:
            return x, np.abs(y)
        rc = 1.0 / abs(self.curvature)
        y = y if self.curvature > 0 else -y
        s = rc * np.arctan2(x, rc - y)
        n = np.abs(rc - np.hypot(x, y - rc))
        return s, n

    def _width(self, s: np.ndarray) -> np.ndarray:
        return self.half_width * np.sqrt(np.maximum(1.0 - np.square(2.0 * s / self.length), 0.0))

    def rho(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Normalised distance from the centre line: below 1 inside."""
        s, n = self._local(u, v)
        w = self._width(s)
        return np.where(w > 0, n / np.maximum(w, 1e-12), np.inf)

    def thickness(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Material crossed by the ray (mm): thickest on the centre line and at the middle."""
        s, n = self._local(u, v)
        w = self._width(s)
        inside = np.maximum(np.square(w) - np.square(n), 0.0)
        return self.depth / self.half_width * np.sqrt(inside)

    def scaled(self, factor: float, about: tuple[float, float]) -> ArcPart:
        """The part with every length multiplied by ``factor`` about the point ``about``."""
        c = (about[0] + factor * (self.centre[0] - about[0]), about[1] + factor * (self.centre[1] - about[1]))
        return replace(
            self,
            centre=c,
            length=self.length * factor,
            curvature=self.curvature / factor,
            half_width=self.half_width * factor,
            depth=self.depth * factor,
        )

    def moved(self, offset: tuple[float, float]) -> ArcPart:
        """The part translated by ``offset``."""
        return replace(self, centre=(self.centre[0] + offset[0], self.centre[1] + offset[1]))


Part = StarPart | ArcPart


@dataclass(frozen=True)
class Lesion:
    """One calcinosis deposit, with its identity shared by both visits.

    Attributes
    ----------
    lesion_id : int
        Identity (1, 2, ...), the value of the lesion in both identity label maps.
    kind : str
        punctate, stone, cluster, sheet or mass.
    parts : tuple of Part
        The baseline geometry (for a new lesion: the follow-up geometry).
    centre : tuple of float
        Anatomy mm.
    change : str
        stable, grown, shrunk, resolved or new.
    factor : float
        Nominal follow-up / baseline area ratio (0 when resolved, NaN when new).
    mu_ratio : float
        Attenuation per mm relative to cortical bone.
    mottle : float
        Relative amplitude of internal density texture.
    scale_about_parts : bool
        Scale each part about its own centre (grain clusters) instead of about the lesion centre.
    over_bone : bool
        Placed so that it projects over bone.
    """

    lesion_id: int
    kind: str
    parts: tuple[Part, ...]
    centre: tuple[float, float]
    change: str
    factor: float
    mu_ratio: float
    mottle: float
    scale_about_parts: bool
    over_bone: bool

    def geometry(self, visit: str) -> tuple[Part, ...] | None:
        """The lesion's parts at a visit ("pre" or "post"), or None when absent then."""
        if visit == "pre":
            return None if self.change == "new" else self.parts
        if self.change == "resolved":
            return None
        if self.change == "new":
            return self.parts
        k = float(np.sqrt(self.factor))
        return tuple(p.scaled(k, p.centre if self.scale_about_parts else self.centre) for p in self.parts)

    def bbox(self, visit: str) -> BBox | None:
        """Anatomy bounding box at a visit."""
        parts = self.geometry(visit)
        if parts is None:
            return None
        boxes = np.array([p.bbox() for p in parts])
        return (boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max())

    def bound(self) -> float:
        """Radius about the centre that contains the lesion at both visits."""
        r = 0.0
        for visit in ("pre", "post"):
            for p in self.geometry(visit) or ():
                r = max(r, float(np.hypot(p.centre[0] - self.centre[0], p.centre[1] - self.centre[1])) + p.bound())
        return r


# ----------------------------------------------------------------------------------------------------------------
# shapes (built at the origin)


def _harmonics(rng: np.random.Generator, orders: range, amp: float) -> tuple[tuple[int, float, float], ...]:
    return tuple((int(k), float(rng.uniform(0, amp)), float(rng.uniform(0, 2 * np.pi))) for k in orders)


#: Thinnest deposit along the beam (mm): smaller grains would be invisible on any film.
MIN_DEPTH_MM = 1.5


def _star(
    rng: np.random.Generator,
    radius: float,
    aspect: float,
    amp: float,
    min_r: float,
    depth_ratio: tuple[float, float],
    centre: tuple[float, float] = (0.0, 0.0),
) -> StarPart:
    a = max(radius * np.sqrt(aspect), min_r)
    b = max(radius / np.sqrt(aspect), min_r)
    harm = _harmonics(rng, range(2, 5), amp) if amp > 0 else ()
    depth = max(2.0 * np.sqrt(a * b) * rng.uniform(*depth_ratio), MIN_DEPTH_MM)
    return StarPart(centre, float(a), float(b), float(rng.uniform(0, 180)), harm, float(depth))


def make_shape(
    rng: np.random.Generator, kind: str, min_r: float, spread: float
) -> tuple[tuple[Part, ...], bool, float]:
    """Draw the parts of a lesion of one kind, centred at the origin.

    Parameters
    ----------
    rng : numpy.random.Generator
    kind : str
    min_r : float
        Smallest radius or half-width (anatomy mm) so that the smaller visit still shows the lesion.
    spread : float
        Largest linear growth factor of the lesion (keeps cluster grains apart at both visits).

    Returns
    -------
    parts : tuple of Part
    scale_about_parts : bool
    mottle : float
    """
    if kind == "punctate":
        r = rng.uniform(0.2, 0.5)
        return (_star(rng, r, rng.uniform(1.0, 1.3), 0.0, min_r, (0.8, 1.0)),), False, 0.0
    if kind == "stone":
        r = 0.5 * np.exp(rng.uniform(np.log(1.0), np.log(8.0)))
        return (_star(rng, r, rng.uniform(1.0, 1.7), 0.06, min_r, (0.7, 1.0)),), False, 0.08
    if kind == "cluster":
        n = int(rng.integers(3, 13))
        extent = rng.uniform(1.5, 5.0)
        grains: list[StarPart] = []
        for _ in range(200):
            if len(grains) == n:
                break
            r = max(rng.uniform(0.2, 0.6), min_r)
            c = rng.uniform(-extent, extent, 2)
            if np.hypot(*c) > extent:
                continue
            gap = 2.0 * min_r
            if all(
                np.hypot(c[0] - g.centre[0], c[1] - g.centre[1]) > spread * (r + g.bound()) * 1.3 + gap for g in grains
            ):
                grains.append(_star(rng, r, rng.uniform(1.0, 1.4), 0.05, min_r, (0.8, 1.0), (float(c[0]), float(c[1]))))
        return tuple(grains), True, 0.0
    if kind == "sheet":
        length = rng.uniform(5.0, 30.0)
        curvature = rng.uniform(-1.0, 1.0) * min(1.0 / 12.0, 1.8 / length)
        half_width = max(rng.uniform(0.4, 1.5), min_r)
        arc = ArcPart(
            (0.0, 0.0),
            float(rng.uniform(0, 180)),
            float(length),
            float(curvature),
            float(half_width),
            float(rng.uniform(MIN_DEPTH_MM, 3.0)),
        )
        return (arc,), False, 0.1
    if kind == "mass":
        diameter = rng.uniform(12.0, 40.0)
        main = _star(rng, 0.38 * diameter, rng.uniform(1.0, 1.4), 0.0, min_r, (0.55, 0.7))
        main = replace(main, harmonics=_harmonics(rng, range(2, 7), 0.1))
        parts: list[Part] = [main]
        for _ in range(int(rng.integers(2, 5))):
            phi = rng.uniform(0, 2 * np.pi)
            dist = 0.38 * diameter * rng.uniform(0.5, 0.85)
            lobe = _star(
                rng,
                0.38 * diameter * rng.uniform(0.3, 0.5),
                rng.uniform(1.0, 1.3),
                0.08,
                min_r,
                (0.6, 0.8),
                (float(dist * np.cos(phi)), float(dist * np.sin(phi))),
            )
            parts.append(lobe)
        return tuple(parts), False, 0.3
    raise ValueError(f"unknown lesion kind {kind!r}")


def _scale_parts(parts: tuple[Part, ...], k: float) -> tuple[Part, ...]:
    return tuple(p.scaled(k, (0.0, 0.0)) for p in parts)


def _min_extent(parts: tuple[Part, ...]) -> float:
    return min(min(p.a, p.b) if isinstance(p, StarPart) else p.half_width for p in parts)


# ----------------------------------------------------------------------------------------------------------------
# placement


@dataclass(frozen=True)
class PlacementMaps:
    """Maps of the anatomy on a coarse grid used to choose lesion positions.

    Attributes
    ----------
    view : View
        Coarse grid whose detector frame is the anatomy frame (shifted).
    cell : float
        Cell size (mm).
    tissue, bone : numpy.ndarray
        bool maps.
    dist_skin, dist_bone, dist_in_bone, fov_margin : numpy.ndarray
        float32 distances in anatomy mm (inside the tissue, to bone, inside bone, to the edge of either field).
    weight : numpy.ndarray
        Placement density (unnormalised).
    """

    view: View
    cell: float
    tissue: np.ndarray
    bone: np.ndarray
    dist_skin: np.ndarray
    dist_bone: np.ndarray
    dist_in_bone: np.ndarray
    fov_margin: np.ndarray
    weight: np.ndarray


def _dist(mask: np.ndarray, cell: float) -> np.ndarray:
    return cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE) * np.float32(cell)


def placement_maps(scene: Scene, views: tuple[View, ...], cell: float) -> PlacementMaps:
    """Coarse maps of where a lesion may go, given the anatomy and the fields of every visit.

    Parameters
    ----------
    scene : Scene
    views : tuple of View
        The visits' views; a lesion must lie inside all of their fields.
    cell : float
        Cell size in anatomy mm.

    Returns
    -------
    PlacementMaps
    """
    corners = []
    for view in views:
        h, w = view.grid.rows - 1, view.grid.cols - 1
        px = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float64)
        corners.append(apply(view.px_to_anat, px))
    corners = np.concatenate(corners)
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    rows, cols = int(np.ceil((hi[1] - lo[1]) / cell)) + 1, int(np.ceil((hi[0] - lo[0]) / cell)) + 1
    grid = Grid(rows, cols, cell)
    centre = 0.5 * (lo + hi)
    pview = View(grid, similarity(shift=(-centre[0], -centre[1])))
    soft = soft_thickness(scene, pview)
    _, _, outer = bone_chords(scene, pview)
    tissue = soft > 2.0
    bone = outer > 0
    win = (slice(0, rows), slice(0, cols))
    u, v = pview.coords(win)
    margin = np.full((rows, cols), np.inf, np.float32)
    for view in views:
        det = apply(view.anat_to_det, np.stack([u, v], axis=-1))
        half_h, half_w = 0.5 * view.grid.rows * view.grid.spacing_mm, 0.5 * view.grid.cols * view.grid.spacing_mm
        m = np.minimum(half_w - np.abs(det[..., 0]), half_h - np.abs(det[..., 1]))
        scale = view.grid.spacing_mm / view.anat_mm_per_px
        margin = np.minimum(margin, (m / scale).astype(np.float32))
    weight = np.full((rows, cols), scene.uniform_weight, np.float64)
    for h in scene.hotspots:
        weight += h.weight * np.exp(-0.5 * (np.square(u - h.x) + np.square(v - h.y)) / h.sigma**2)
    weight *= tissue
    return PlacementMaps(
        pview, cell, tissue, bone, _dist(tissue, cell), _dist(~bone, cell), _dist(bone, cell), margin, weight
    )


def _choose(weights: dict[str, float], rng: np.random.Generator) -> str:
    keys = [k for k, w in weights.items() if w > 0]
    p = np.array([weights[k] for k in keys], dtype=np.float64)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _factor(change: str, config: PhantomConfig, rng: np.random.Generator) -> float:
    if change == "grown":
        return float(rng.uniform(*config.grow_factor))
    if change == "shrunk":
        return float(rng.uniform(*config.shrink_factor))
    if change == "stable":
        return float(rng.uniform(*config.stable_factor))
    return 0.0 if change == "resolved" else float("nan")


def place_lesions(
    rng: np.random.Generator,
    scene: Scene,
    maps: PlacementMaps,
    config: PhantomConfig,
    kinds: tuple[str, ...],
    trend: str,
    min_r: float,
    field_margin: float = 8.0,
) -> list[Lesion]:
    """Draw and place the lesions of a pair.

    Parameters
    ----------
    rng : numpy.random.Generator
    scene : Scene
    maps : PlacementMaps
    config : PhantomConfig
    kinds : tuple of str
        Kinds allowed at the site.
    trend : str
        Intended pair trend (selects the change-class weights).
    min_r : float
        Smallest radius or half-width of any visible version of a lesion (anatomy mm).
    field_margin : float
        Minimum distance (mm) between a lesion and the edge of either field.

    Returns
    -------
    list of Lesion
        Identities 1..n in placement order; at least one lesion is present at baseline.
    """
    n = int(rng.integers(config.n_lesions[0], config.n_lesions[1] + 1))
    kind_w = {k: w for k, w in config.kind_weights.items() if k in kinds}
    change_w = config.change_weights[trend]
    occupied = np.zeros(maps.tissue.shape, np.uint8)
    gap = max(1.0, 3.0 * min_r)
    lesions: list[Lesion] = []
    u_of = maps.view.px_to_anat
    for _ in range(n):
        kind = _choose(kind_w, rng)
        change = _choose(change_w, rng)
        factor = _factor(change, config, rng)
        shrink = min(factor, 1.0) if change in ("grown", "shrunk", "stable") else 1.0
        grow = max(factor, 1.0) if change in ("grown", "shrunk", "stable") else 1.0
        local_min = min_r / np.sqrt(shrink)
        parts, about_parts, mottle = make_shape(rng, kind, local_min, float(np.sqrt(grow)))
        over_bone = bool(rng.random() < config.p_over_bone)
        touching = bool(lesions and rng.random() < config.p_touching)
        mu_ratio = float(rng.uniform(*config.lesion_mu_ratio))
        placed = None
        for _attempt in range(8):
            bound = max(float(np.hypot(*p.centre)) + p.bound() for p in parts) * float(np.sqrt(grow))
            valid = maps.tissue & (maps.dist_skin >= bound) & (maps.fov_margin >= bound + field_margin)
            if over_bone:
                valid &= maps.bone & (maps.dist_in_bone >= min(0.5 * bound, 3.0))
            else:
                valid &= maps.dist_bone >= bound + 0.5
            if touching:
                placed = _touching_position(rng, lesions, bound, valid, maps)
            if placed is None:
                free = _dist(occupied == 0, maps.cell)
                idx = np.flatnonzero(valid & (free >= bound))
                if idx.size:
                    w = maps.weight.ravel()[idx]
                    pick = idx[int(rng.choice(idx.size, p=w / w.sum()))] if w.sum() > 0 else idx[0]
                    r, c = divmod(int(pick), maps.tissue.shape[1])
                    jitter = rng.uniform(-0.5, 0.5, 2)
                    placed = tuple(apply(u_of, np.array([c + jitter[0], r + jitter[1]])))
            if placed is not None:
                break
            if _min_extent(parts) * 0.75 < local_min:
                break
            parts = _scale_parts(parts, 0.75)
        if placed is None:
            continue
        centre = (float(placed[0]), float(placed[1]))
        lesion = Lesion(
            len(lesions) + 1,
            kind,
            tuple(p.moved(centre) for p in parts),
            centre,
            change,
            factor,
            mu_ratio,
            mottle,
            about_parts,
            over_bone,
        )
        lesions.append(lesion)
        cr = apply(maps.view.anat_to_px, np.array(centre))
        radius = int(np.ceil((lesion.bound() + gap) / maps.cell))
        cv2.circle(occupied, (round(cr[0]), round(cr[1])), radius, 1, -1)
    if lesions and all(les.change == "new" for les in lesions):
        first = lesions[0]
        lesions[0] = replace(first, change="stable", factor=1.0)
    return lesions


def _touching_position(
    rng: np.random.Generator, lesions: list[Lesion], bound: float, valid: np.ndarray, maps: PlacementMaps
) -> tuple[float, float] | None:
    """A centre next to an earlier single-body lesion, so that the two masks touch or overlap slightly."""
    hosts = [les for les in lesions if len(les.parts) == 1 and isinstance(les.parts[0], StarPart)]
    if not hosts:
        return None
    host = hosts[int(rng.integers(len(hosts)))]
    part = host.parts[0]
    phi = rng.uniform(0, 2 * np.pi)
    dist = np.sqrt(part.a * part.b) + 0.6 * bound
    c = np.array([host.centre[0] + dist * np.cos(phi), host.centre[1] + dist * np.sin(phi)])
    cr = np.round(apply(maps.view.anat_to_px, c)).astype(int)
    if not (0 <= cr[1] < valid.shape[0] and 0 <= cr[0] < valid.shape[1]):
        return None
    ok = maps.tissue[cr[1], cr[0]] and maps.dist_skin[cr[1], cr[0]] >= bound
    ok = ok and maps.fov_margin[cr[1], cr[0]] >= bound + 8.0
    return (float(c[0]), float(c[1])) if ok else None


# ----------------------------------------------------------------------------------------------------------------
# rasterisation


@dataclass
class LesionRaster:
    """The lesions of one visit on its grid.

    Attributes
    ----------
    identity : numpy.ndarray
        int32 identity label map (0 background); where two lesions overlap the lower id wins.
    thickness : numpy.ndarray
        float32 ``sum(mu_ratio * thickness)`` in mm of cortical-bone equivalent, area-averaged per pixel.
    windows : dict
        lesion_id -> (row slice, col slice) containing the lesion.
    """

    identity: np.ndarray
    thickness: np.ndarray
    windows: dict[int, tuple[slice, slice]]


def rasterise_lesions(
    lesions: list[Lesion], visit: str, view: View, texture: Sampler | None = None, sub: int = 3
) -> LesionRaster:
    """Rasterise the lesions of a visit (exact pixel-centre masks and partial-volume thickness).

    Parameters
    ----------
    lesions : list of Lesion
    visit : str
        "pre" or "post".
    view : View
    texture : callable, optional
        ``texture(u, v)`` giving a zero-mean density texture at anatomy points, for mottled lesions.
    sub : int
        Supersampling of the thickness.

    Returns
    -------
    LesionRaster

    Raises
    ------
    RuntimeError
        If a lesion present at the visit falls outside the grid (a placement bug).
    """
    identity = np.zeros(view.grid.shape, np.int32)
    thickness = np.zeros(view.grid.shape, np.float32)
    windows: dict[int, tuple[slice, slice]] = {}
    for lesion in lesions:
        parts = lesion.geometry(visit)
        if parts is None:
            continue
        win = view.window(lesion.bbox(visit), margin_px=2)
        if win is None:
            raise RuntimeError(f"lesion {lesion.lesion_id} lies outside the {visit} field")
        windows[lesion.lesion_id] = win
        u, v = view.coords(win)
        rho = np.min([p.rho(u, v) for p in parts], axis=0)
        target = identity[win]
        target[(rho < 1.0) & (target == 0)] = lesion.lesion_id
        us, vs = view.coords(win, sub=sub)
        thick = np.max([p.thickness(us, vs) for p in parts], axis=0)
        if lesion.mottle > 0 and texture is not None:
            thick = thick * np.clip(1.0 + lesion.mottle * texture(us, vs), 0.2, None)
        h, w = target.shape
        thickness[win] += (lesion.mu_ratio * thick.reshape(h, sub, w, sub).mean(axis=(1, 3))).astype(np.float32)
    return LesionRaster(identity, thickness, windows)


__all__ = [
    "CHANGES",
    "ArcPart",
    "Lesion",
    "LesionRaster",
    "PlacementMaps",
    "StarPart",
    "make_shape",
    "place_lesions",
    "placement_maps",
    "rasterise_lesions",
]
