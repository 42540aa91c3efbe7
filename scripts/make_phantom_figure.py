"""Render phantom pairs of every site, with their truth, next to real films: docs/img/phantom_pairs.png.

Usage::

    PYTHONPATH=src python scripts/make_phantom_figure.py [--seed 7] [--out docs/img/phantom_pairs.png]

Each row is one site: baseline and follow-up with the truth outlines (one colour per lesion identity, shared by
both visits), then a zoom on the largest lesion at both visits without outlines. When ``../shared/realdata`` is
present a last row shows real films (read with pydicom; they are displayed, never copied).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from scipy.ndimage import grey_dilation
from skimage.segmentation import find_boundaries

from calcimg.phantom import SITES, make_pair
from calcimg.phantom.geometry import apply
from calcimg.phantom.pair import PhantomPair, PhantomVisit

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "realdata"
REAL_FILES = ("wg04_RG2_CR_hip_UNC.dcm", "wg04_RG3_CR_lowerleg_J2KR.dcm", "deiddata_DX_cat_thorax_LAT.dcm")
ZOOM_MM = 30.0


def _grey(visit: PhantomVisit) -> np.ndarray:
    return visit.radiograph.pixels.astype(np.float32) / float(2**visit.bits_stored - 1)


def _overlay(visit: PhantomVisit, zoom: tuple[slice, slice] | None = None, outlines: bool = True) -> np.ndarray:
    """RGB image with each lesion's outline in a colour fixed by its identity."""
    grey = _grey(visit)
    labels = visit.identity_labels
    if zoom is not None:
        grey, labels = grey[zoom], labels[zoom]
    rgb = np.repeat(np.clip(grey, 0, 1)[..., None], 3, axis=-1)
    if outlines:
        edge = find_boundaries(labels, mode="outer")
        palette = plt.get_cmap("tab10")(np.arange(10))[:, :3]
        # outer boundary pixels carry label 0: colour them by the neighbouring lesion
        near = grey_dilation(labels, size=3)[edge]
        rgb[edge] = palette[(near - 1) % 10]
    return rgb


def _zoom(pair: PhantomPair, visit: PhantomVisit) -> tuple[slice, slice]:
    """A window of ZOOM_MM around the lesion with the largest area over both visits."""
    table = pair.lesions
    if len(table) == 0:
        r, c = visit.shape[0] // 2, visit.shape[1] // 2
    else:
        best = table.loc[(table["area_pre_anat_mm2"] + table["area_post_anat_mm2"]).idxmax()]
        key = "pre" if visit.name == "pre" and best["area_pre_px"] > 0 else "post"
        if best[f"area_{key}_px"] == 0:
            key = "pre"
        if visit.name == key:
            r, c = int(best[f"{key}_row"]), int(best[f"{key}_col"])
        else:
            # absent at this visit: map the lesion's anatomy centre through the visit transform
            les = pair.lesion_objects[int(best["lesion_id"]) - 1]
            c, r = (round(x) for x in apply(visit.view.anat_to_px, np.array(les.centre)))
    half = int(ZOOM_MM / 2 / visit.spacing_mm)
    r0 = int(np.clip(r - half, 0, max(visit.shape[0] - 2 * half, 0)))
    c0 = int(np.clip(c - half, 0, max(visit.shape[1] - 2 * half, 0)))
    return (slice(r0, r0 + 2 * half), slice(c0, c0 + 2 * half))


def _real_film(name: str) -> tuple[np.ndarray, float | None] | None:
    path = REAL / name
    if not path.exists():
        return None
    import pydicom

    ds = pydicom.dcmread(path)
    arr = ds.pixel_array.astype(np.float32)
    if ds.get("PhotometricInterpretation") == "MONOCHROME1":
        arr = arr.max() - arr
    lo, hi = np.percentile(arr, [0.5, 99.9])
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    s = float(spacing[0]) if spacing and float(spacing[0]) > 0 else None
    return np.clip((arr - lo) / max(hi - lo, 1.0), 0, 1), s


def make_figure(seed: int, out: Path) -> Path:
    """Render the figure and return its path."""
    reals = [(n, _real_film(n)) for n in REAL_FILES]
    reals = [(n, r) for n, r in reals if r is not None]
    n_rows = len(SITES) + (1 if reals else 0)
    fig, axes = plt.subplots(n_rows, 4, figsize=(16, 4.3 * n_rows), squeeze=False)
    for row, site in enumerate(SITES):
        pair = make_pair(seed + row, site)
        s = pair.summary
        pct = "n/a" if s["pct_change"] is None else f"{s['pct_change']:+.0f}%"
        for col, visit in enumerate(pair.visits):
            ax = axes[row, col]
            ax.imshow(_overlay(visit), interpolation="antialiased")
            acq = visit.acquisition
            ax.set_title(
                f"{site} {visit.name}: {visit.shape[1]}x{visit.shape[0]} @ {visit.spacing_mm:.3f} mm, "
                f"{visit.bits_stored} bit {visit.photometric[-1]}, USM {acq['display']['usm_amount']:.1f}",
                fontsize=8,
            )
        for col, visit in enumerate(pair.visits):
            ax = axes[row, 2 + col]
            win = _zoom(pair, visit)
            ax.imshow(_overlay(visit, win, outlines=False), interpolation="nearest")
            ax.set_title(
                f"{visit.name} zoom {ZOOM_MM:.0f} mm: {len(pair.lesions)} lesions, {s['category']} ({pct}), "
                f"{s['response']}",
                fontsize=8,
            )
    if reals:
        for col in range(4):
            axes[-1, col].set_axis_off()
        for col, (name, (img, _spacing)) in enumerate(reals[:3]):
            ax = axes[-1, col]
            ax.imshow(img, cmap="gray", interpolation="antialiased")
            ax.set_title(f"real: {name}", fontsize=8)
        name, (img, spacing) = reals[0]
        half = int(ZOOM_MM / 2 / (spacing or 0.2))
        r, c = int(img.shape[0] * 0.45), int(img.shape[1] * 0.55)
        axes[-1, 3].imshow(img[r - half : r + half, c - half : c + half], cmap="gray", interpolation="nearest")
        axes[-1, 3].set_title(f"real zoom {ZOOM_MM:.0f} mm: {name}", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "phantom_pairs.png")
    args = parser.parse_args(argv)
    print(make_figure(args.seed, args.out))


if __name__ == "__main__":
    main()
