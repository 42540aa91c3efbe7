"""Synthetic pre/post radiograph pairs with exact calcinosis ground truth.

>>> from calcimg.phantom import PhantomConfig, make_pair
>>> pair = make_pair(1, "hand", PhantomConfig(shape=(256, 256)))
>>> int(pair.pre.identity_labels.max()) == int(pair.lesions["lesion_id"][pair.lesions["area_pre_px"] > 0].max())
True

See ``docs/phantoms.md`` for the model, the parameters and the truth files.
"""

from calcimg.phantom.config import SITES, PhantomConfig
from calcimg.phantom.pair import PhantomPair, PhantomVisit, categorise, make_pair
from calcimg.phantom.writer import pair_seed, write_pair, write_phantoms

__all__ = [
    "SITES",
    "PhantomConfig",
    "PhantomPair",
    "PhantomVisit",
    "categorise",
    "make_pair",
    "pair_seed",
    "write_pair",
    "write_phantoms",
]
