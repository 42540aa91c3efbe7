"""Shared small phantom pairs (cached per session) for the phantom tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from calcimg.phantom import SITES, PhantomConfig, PhantomPair, make_pair

#: Small images keep every test fast; the spacing follows from the site's field of view (about 0.8-1.4 mm).
SMALL = PhantomConfig(shape=(320, 256))
SEEDS = range(6)

_cache: dict[tuple[int, str, str], PhantomPair] = {}


def cached_pair(seed: int, site: str, config: PhantomConfig = SMALL) -> PhantomPair:
    """make_pair, memoised for the session (pairs are treated as read-only by the tests)."""
    key = (seed, site, repr(config))
    if key not in _cache:
        _cache[key] = make_pair(seed, site, config)
    return _cache[key]


@pytest.fixture(scope="session")
def pair_of() -> Callable[..., PhantomPair]:
    """Factory fixture: ``pair_of(seed, site, config=SMALL)``."""
    return cached_pair


@pytest.fixture(scope="session")
def small_pairs() -> list[PhantomPair]:
    """Small pairs of every site over a few seeds."""
    return [cached_pair(seed, site) for site in SITES for seed in SEEDS]


@pytest.fixture(scope="session")
def small_config() -> PhantomConfig:
    """The small-image configuration of the cached pairs."""
    return SMALL


@pytest.fixture(scope="session")
def canonical() -> Callable[[np.ndarray], np.ndarray]:
    """Relabelling helper: labels numbered by first appearance in raster order."""
    return canonical_labels


def canonical_labels(labels: np.ndarray) -> np.ndarray:
    """Relabel so that labels are numbered by their first pixel in raster order (0 stays 0)."""
    flat = labels.ravel()
    values, first = np.unique(flat, return_index=True)
    order = values[np.argsort(first)]
    order = order[order != 0]
    lut = np.zeros(int(flat.max()) + 1, np.int64)
    lut[order] = np.arange(1, order.size + 1)
    return lut[labels]
