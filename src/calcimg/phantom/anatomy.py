"""Synthetic anatomy: soft tissue and bones of each site, in anatomical mm, and their projection onto a grid.

Each site is built in a canonical right-sided pose (the thumb, radius or fibula side fixed) centred on the
detector; the visit transform adds the patient's pose, the side (mirror) and the magnification. Sizes vary per
pair by a global factor and small per-bone jitter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calcimg.phantom.geometry import Ellipsoid, Ring, SoftTube, Tube, View

BonePrimitive = Tube | Ellipsoid | Ring
SoftPrimitive = SoftTube | Ellipsoid


@dataclass(frozen=True)
class Hotspot:
    """A place where calcinosis is common: a Gaussian weight centred at (x, y) anatomy mm."""

    x: float
    y: float
    sigma: float
    weight: float


@dataclass(frozen=True)
class Scene:
    """Everything in the anatomy frame that does not change between visits (except the lesions).

    Attributes
    ----------
    site : str
    soft : tuple
        Soft-tissue bodies (their thicknesses are joined by a smooth maximum).
    gas : tuple of Ellipsoid
        Gas pockets (thickness removed from the soft tissue).
    bones : tuple
        Bone primitives.
    hotspots : tuple of Hotspot
        Where lesions prefer to lie.
    uniform_weight : float
        Weight of the uniform background of the lesion placement density.
    mu_soft, mu_cortex, mu_trabecular : float
        Linear attenuation per mm of soft tissue, cortical bone and cancellous bone at the site's typical beam.
    """

    site: str
    soft: tuple[SoftPrimitive, ...]
    gas: tuple[Ellipsoid, ...]
    bones: tuple[BonePrimitive, ...]
    hotspots: tuple[Hotspot, ...]
    uniform_weight: float
    mu_soft: float
    mu_cortex: float
    mu_trabecular: float


#: Smooth-maximum exponent used to join soft-tissue bodies without creases.
SOFT_UNION_POWER = 6.0


def soft_thickness(scene: Scene, view: View) -> np.ndarray:
    """Soft tissue crossed by each pixel's ray, in anatomical mm.

    Parameters
    ----------
    scene : Scene
    view : View

    Returns
    -------
    numpy.ndarray
        float32 array of the grid's shape.
    """
    acc = np.zeros(view.grid.shape, np.float32)
    for prim in scene.soft:
        win = view.window(prim.bbox())
        if win is None:
            continue
        u, v = view.coords(win, dtype=np.float32)
        acc[win] += prim.thickness(u, v) ** SOFT_UNION_POWER
    out = acc ** np.float32(1.0 / SOFT_UNION_POWER)
    for pocket in scene.gas:
        win = view.window(pocket.bbox())
        if win is None:
            continue
        u, v = view.coords(win, dtype=np.float32)
        out[win] = np.maximum(out[win] - pocket.thickness(u, v), 0.0)
    return out


def bone_chords(scene: Scene, view: View) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cortical and cancellous bone crossed by each pixel's ray.

    Parameters
    ----------
    scene : Scene
    view : View

    Returns
    -------
    cortex, medulla, outer : numpy.ndarray
        float32 arrays (mm, already weighted by each bone's density): the cortical chord, the medullary
        (cancellous) chord and the total bone chord, which is also the soft tissue displaced by bone. ``outer > 0``
        is the projected bone mask.
    """
    shape = view.grid.shape
    cortex = np.zeros(shape, np.float32)
    medulla = np.zeros(shape, np.float32)
    outer_sum = np.zeros(shape, np.float32)
    for bone in scene.bones:
        win = view.window(bone.bbox())
        if win is None:
            continue
        u, v = view.coords(win, dtype=np.float32)
        outer, inner = bone.chords(u, v)
        cortex[win] += bone.density * (outer - inner)
        medulla[win] += bone.density * inner
        outer_sum[win] += outer
    return cortex, medulla, outer_sum


# ----------------------------------------------------------------------------------------------------------------
# site builders (canonical right side, anatomy mm, y down)


def _dir(angle_deg: float) -> np.ndarray:
    """Unit vector pointing 'up' the image, turned by angle_deg towards +x."""
    a = np.deg2rad(angle_deg)
    return np.array([np.sin(a), -np.cos(a)])


def _pt(p: np.ndarray) -> tuple[float, float]:
    return (float(p[0]), float(p[1]))


def _hand(rng: np.random.Generator) -> Scene:
    s = rng.uniform(0.9, 1.06)
    oy = 14.0  # whole hand lower in the field so that the fingertips stay in view
    j = lambda sd: rng.normal(0.0, sd)  # noqa: E731 - small jitter helper
    bones: list[BonePrimitive] = []
    soft: list[SoftPrimitive] = []
    hot: list[Hotspot] = []
    # forearm bones entering from the bottom
    bones.append(Tube((-12 * s, 80 * s + oy), (-15 * s, 160 * s + oy), 13 * s, 9 * s, 9 * s, 0.55, 0.88, 0.3))
    bones.append(Tube((15 * s, 83 * s + oy), (17 * s, 160 * s + oy), 7.5 * s, 6.5 * s, 6.5 * s, 0.55, 0.85, 0.2))
    # carpals: (x, y, a, b, angle)
    carpals = [
        (-19, 70, 9, 6, 35),
        (-5, 70, 7, 7, 0),
        (8, 68, 6.5, 6, -10),
        (14, 64, 4.5, 4.5, 0),
        (-24, 55, 7, 6.5, 20),
        (-13, 53, 5.5, 6, 0),
        (-2, 54, 6.5, 9, 0),
        (11, 54, 7, 8, -10),
    ]
    for x, y, a, b, ang in carpals:
        bones.append(Ellipsoid(((x + j(0.6)) * s, (y + j(0.6)) * s + oy), a * s, b * s, 7 * s, ang + j(4), 0.8, 2.4))
    soft.append(SoftTube((0, 75 * s + oy), (0, 170 * s + oy), 34 * s, 31 * s, 0.62))
    soft.append(Ellipsoid((-1 * s, 25 * s + oy), 43 * s, 40 * s, 14 * s, 0.0, 1.0, 2.8))
    soft.append(Ellipsoid((-28 * s, 42 * s + oy), 17 * s, 27 * s, 13 * s, -30.0, 1.0, 2.0))
    hot.append(Hotspot(0.0, 80 * s + oy, 15 * s, 0.3))
    # rays: (base x, base y, angle, metacarpal length, phalanx lengths, radius scale, soft half-width)
    rays = [
        (-24, 46, -33, 44, (31, 23), 1.08, 11.0),
        (-13, 42, -8, 66, (40, 23, 17), 1.0, 10.0),
        (-2, 40, -1, 63, (45, 27, 18), 1.0, 10.2),
        (9, 42, 6, 57, (42, 26, 18), 0.93, 9.6),
        (19, 46, 13, 52, (33, 18, 16), 0.86, 8.8),
    ]
    spread = rng.uniform(0.8, 1.4)
    for bx, by, ang, mc_len, phal, rs, w in rays:
        d = _dir(ang + j(1.5))
        p = np.array([bx * s, by * s + oy])
        q = p + mc_len * s * d
        bones.append(Tube(_pt(p), _pt(q), 5.0 * rs * s, 3.7 * rs * s, 5.1 * rs * s, 0.5, 0.85, 0.22))
        hot.append(Hotspot(float(q[0]), float(q[1]), 7 * s, 0.4))
        finger_start = p + 0.55 * mc_len * s * d
        p = q + 1.6 * s * d
        # phalanges diverge a little more than their metacarpal
        dp = _dir(ang * spread + j(2.0))
        radii = [(4.6, 3.5, 4.2, 0.5, 0.22), (3.9, 2.9, 3.5, 0.55, 0.22), (3.6, 2.2, 2.9, 0.6, 0.3)]
        if len(phal) == 2:
            radii = [radii[0], radii[2]]
        for k, (length, (r0, rm, r1, km, fl)) in enumerate(zip(phal, radii, strict=True)):
            q = p + length * s * dp
            bones.append(Tube(_pt(p), _pt(q), r0 * rs * s, rm * rs * s, r1 * rs * s, km, 0.85, fl))
            last = k == len(phal) - 1
            hot.append(
                Hotspot(
                    float(q[0] + 2 * s * dp[0]),
                    float(q[1] + 2 * s * dp[1]),
                    (4.0 if last else 5.0) * s,
                    3.0 if last else 1.0,
                )
            )
            p = q + 1.5 * s * dp
        tip = p - 4.5 * s * dp
        soft.append(SoftTube(_pt(finger_start), _pt(tip), (w + 1.5) * s, w * 0.8 * s, 0.85))
    return Scene("hand", tuple(soft), (), tuple(bones), tuple(hot), 0.1, 0.032, 0.16, 0.05)


def _forearm(rng: np.random.Generator) -> Scene:
    s = rng.uniform(0.9, 1.08)
    bones: list[BonePrimitive] = [
        Tube((-4 * s, -240 * s), (0, -34 * s), 12 * s, 11 * s, 16 * s, 0.6, 0.85, 0.15),
        Ellipsoid((0, -13 * s), 31 * s, 14 * s, 11 * s, rng.normal(0, 2), 0.82, 3.0),
        Ellipsoid((-31 * s, -18 * s), 8 * s, 8 * s, 8 * s, 0.0, 0.8),
        Ellipsoid((-9 * s, 3 * s), 12 * s, 9 * s, 14 * s, 0.0, 0.85),
        Ellipsoid((13 * s, 2 * s), 10 * s, 8 * s, 12 * s, 0.0, 0.85),
        Ellipsoid((-7 * s, -6 * s), 11 * s, 16 * s, 10 * s, 0.0, 0.8, 2.0, 0.8),
        Ellipsoid((15 * s, 16 * s), 11 * s, 5 * s, 11 * s, rng.normal(0, 3), 0.85, 3.0),
        Tube((16 * s, 22 * s), (25 * s, 240 * s), 8.5 * s, 7 * s, 10 * s, 0.55, 0.85, 0.12),
        Tube((-8 * s, 10 * s), (-18 * s, 240 * s), 11 * s, 7 * s, 7 * s, 0.55, 0.85, 0.15),
    ]
    soft: list[SoftPrimitive] = [
        SoftTube((0, -260 * s), (0, -20 * s), 46 * s, 44 * s, 0.9),
        SoftTube((0, -20 * s), (4 * s, 260 * s), 44 * s, 31 * s, 0.78),
        Ellipsoid((0, -5 * s), 50 * s, 36 * s, 38 * s, 0.0, 1.0),
    ]
    hot = [
        Hotspot(-36 * s, 0, 12 * s, 2.0),
        Hotspot(40 * s, -15 * s, 10 * s, 1.0),
        Hotspot(-42 * s, -15 * s, 10 * s, 1.0),
        Hotspot(-30 * s, 40 * s, 12 * s, 1.0),
        Hotspot(-30 * s, 85 * s, 12 * s, 1.0),
        Hotspot(-28 * s, 125 * s, 12 * s, 0.7),
    ]
    return Scene("forearm", tuple(soft), (), tuple(bones), tuple(hot), 0.2, 0.028, 0.13, 0.045)


def _knee(rng: np.random.Generator) -> Scene:
    s = rng.uniform(0.9, 1.08)
    bones: list[BonePrimitive] = [
        Tube((0, -280 * s), (0, -44 * s), 14 * s, 14 * s, 27 * s, 0.6, 0.92, 0.25, 1.0, 0.9),
        Ellipsoid((-21 * s, -18 * s), 21 * s, 19 * s, 26 * s, 0.0, 0.9),
        Ellipsoid((21 * s, -18 * s), 20 * s, 18 * s, 26 * s, 0.0, 0.9),
        Ellipsoid((2 * s, -36 * s), 21 * s, 25 * s, 10 * s, rng.normal(0, 4), 0.8, 2.0, 0.9),
        Ellipsoid((0, 17 * s), 40 * s, 11 * s, 26 * s, 0.0, 0.9, 3.0),
        Tube((0, 40 * s), (3 * s, 280 * s), 35 * s, 16 * s, 16 * s, 0.58, 0.9, 0.2, 1.0, 0.8),
        Tube((37 * s, 38 * s), (43 * s, 280 * s), 10 * s, 6 * s, 6 * s, 0.55, 0.85, 0.1),
    ]
    soft: list[SoftPrimitive] = [
        SoftTube((0, -280 * s), (0, -30 * s), 66 * s, 58 * s, 0.95),
        Ellipsoid((0, -5 * s), 60 * s, 55 * s, 52 * s, 0.0, 1.0),
        SoftTube((0, 10 * s), (0, 280 * s), 56 * s, 46 * s, 0.95),
    ]
    hot = [
        Hotspot(2 * s, -42 * s, 15 * s, 2.0),
        Hotspot(-52 * s, 0, 12 * s, 1.0),
        Hotspot(52 * s, 0, 12 * s, 1.0),
        Hotspot(0, 80 * s, 25 * s, 0.5),
    ]
    return Scene("knee", tuple(soft), (), tuple(bones), tuple(hot), 0.2, 0.024, 0.10, 0.035)


def _pelvis(rng: np.random.Generator) -> Scene:
    s = rng.uniform(0.92, 1.06)
    bones: list[BonePrimitive] = [
        Ellipsoid((0, -80 * s), 44 * s, 58 * s, 24 * s, 0.0, 0.94, 2.2, 0.75),
        Ellipsoid((0, -168 * s), 28 * s, 17 * s, 25 * s, 0.0, 0.88, 4.0),
        Ellipsoid((0, -210 * s), 28 * s, 17 * s, 25 * s, 0.0, 0.88, 4.0),
        Ring((0, -12 * s), 66 * s, 50 * s, 3.5 * s, 0.0, 0.5),
    ]
    soft: list[SoftPrimitive] = [Ellipsoid((0, -60 * s), 195 * s, 260 * s, 110 * s, 0.0, 1.0, 4.0)]
    hot: list[Hotspot] = []
    for side in (-1, 1):

        def sx(x: float, side: int = side) -> float:
            return side * x * s

        head = np.array([sx(108), -6 * s])
        neck_dir = np.array([sx(40), 42 * s]) / np.hypot(40 * s, 42 * s)
        bones += [
            Ellipsoid((sx(108), -105 * s), 82 * s, 52 * s, 7 * s, side * -12.0, 0.6),
            Ellipsoid((sx(100), -45 * s), 34 * s, 48 * s, 18 * s, side * 18.0, 0.9, 2.0, 0.8),
            Ring((sx(58), 45 * s), 28 * s, 20 * s, 6.5 * s, side * 15.0, 0.55),
            Ellipsoid(_pt(head), 24 * s, 24 * s, 24 * s, 0.0, 0.92),
            Tube(_pt(head + 16 * s * neck_dir), (sx(150), 34 * s), 15 * s, 13.5 * s, 18 * s, 0.7, 0.85, 0.25, 1.0, 0.5),
            Ellipsoid((sx(160), 26 * s), 19 * s, 25 * s, 20 * s, 0.0, 0.9),
            Ellipsoid((sx(134), 64 * s), 8 * s, 10 * s, 8 * s, 0.0, 0.85),
            Tube((sx(154), 8 * s), (sx(128), 300 * s), 21 * s, 15 * s, 15 * s, 0.58, 0.9, 0.15, 1.0, 1.0),
        ]
        soft.append(SoftTube((sx(95), 60 * s), (sx(110), 300 * s), 90 * s, 78 * s, 0.9))
        hot += [
            Hotspot(sx(190), 25 * s, 18 * s, 2.0),
            Hotspot(sx(170), -60 * s, 25 * s, 1.0),
            Hotspot(sx(75), 85 * s, 18 * s, 1.0),
            Hotspot(sx(185), 120 * s, 20 * s, 1.0),
        ]
    n_gas = int(rng.integers(3, 9))
    gas = tuple(
        Ellipsoid(
            (rng.uniform(-90, 90) * s, rng.uniform(-170, -30) * s),
            rng.uniform(8, 30),
            rng.uniform(8, 25),
            rng.uniform(5, 14),
            rng.uniform(0, 180),
            1.0,
            2.0,
        )
        for _ in range(n_gas)
    )
    return Scene("pelvis", tuple(soft), gas, tuple(bones), tuple(hot), 0.2, 0.020, 0.08, 0.03)


_BUILDERS = {"hand": _hand, "forearm": _forearm, "knee": _knee, "pelvis": _pelvis}


def build_scene(site: str, rng: np.random.Generator) -> Scene:
    """Build the anatomy of a canonical site.

    Parameters
    ----------
    site : str
        A canonical site name (see :data:`calcimg.phantom.config.SITES`).
    rng : numpy.random.Generator

    Returns
    -------
    Scene
    """
    return _BUILDERS[site](rng)
