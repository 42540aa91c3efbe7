"""napari sample data: a synthetic baseline/follow-up pair with its exact ground truth."""

from __future__ import annotations

import numpy as np

from ._layers import CHANGE_COLOURS, TRANSPARENT, LayerData, radiograph_kwargs

#: The phantom drawn as sample: a hand at 0.3 mm (833 x 667 pixels), which renders in about half a second.
SAMPLE_SEED = 2
SAMPLE_SITE = "hand"
SAMPLE_SPACING_MM = 0.3


def phantom_pair(
    seed: int = SAMPLE_SEED, site: str = SAMPLE_SITE, spacing_mm: float = SAMPLE_SPACING_MM
) -> list[LayerData]:
    """A phantom pair as layers: baseline and follow-up images and, hidden, each visit's truth lesion labels.

    Parameters
    ----------
    seed : int
        Phantom seed (the same seed gives the same pair).
    site : str
        One of :data:`calcimg.phantom.SITES`.
    spacing_mm : float
        Detector pixel spacing.

    Returns
    -------
    list of (data, kwargs, layer_type)
        ``phantom baseline``, ``phantom follow-up`` (images, scale in mm) and ``truth baseline`` /
        ``truth follow-up`` (Labels, one id per lesion shared by both visits, coloured by the true change;
        features from the truth table; hidden).
    """
    from calcimg.phantom import PhantomConfig, make_pair

    pair = make_pair(seed, site, PhantomConfig(spacing_mm=(spacing_mm, spacing_mm)))
    layers: list[LayerData] = []
    truth = pair.lesions
    colours: dict[int | None, tuple[float, ...]] = {None: CHANGE_COLOURS["unmeasured"], 0: TRANSPARENT}
    for lesion_id, change in zip(truth["lesion_id"], truth["change"], strict=True):
        colours[int(lesion_id)] = CHANGE_COLOURS.get(str(change), CHANGE_COLOURS["unmeasured"])
    for visit, label in ((pair.pre, "baseline"), (pair.post, "follow-up")):
        radiograph = visit.radiograph
        kwargs = radiograph_kwargs(radiograph, f"phantom {label}")
        kwargs["metadata"]["calcimg"]["truth"] = {
            key: pair.summary[key]
            for key in ("n_lesions_pre", "n_lesions_post", "total_area_pre_mm2", "total_area_post_mm2", "pct_change")
        } | {"category": pair.summary["category"], "response": pair.summary["response"]}
        layers.append((radiograph.pixels, kwargs, "image"))
    for visit, label in ((pair.pre, "baseline"), (pair.post, "follow-up")):
        present = truth.loc[truth[f"area_{visit.name}_px"] > 0].copy()
        present.insert(0, "index", present["lesion_id"].astype(np.int64))
        kwargs = {
            "name": f"truth {label}",
            "scale": (visit.spacing_mm, visit.spacing_mm),
            "colormap": colours,
            "opacity": 0.5,
            "visible": False,
            "features": present.reset_index(drop=True),
            "metadata": {"calcimg": {"kind": "truth", "visit": visit.name}},
        }
        layers.append((visit.identity_labels.astype(np.int32), kwargs, "labels"))
    return layers
