"""Tests of calcimg.core.anatomy.bone_mask on a synthetic background."""

from __future__ import annotations

import numpy as np

from calcimg.core.anatomy import bone_mask


def test_bone_mask_finds_a_bright_bar_on_soft_tissue():
    """A 10 mm wide bar 1500 levels above flat soft tissue (0.1 mm pixels) is bone; the tissue around it is not."""
    background = np.full((400, 400), 2000, np.uint16)
    background[:, 150:250] = 3500
    mask = bone_mask(background, np.ones(background.shape, bool), px_per_mm=10.0)
    assert mask.shape == background.shape and mask.dtype == bool
    assert mask[:, 160:240].all()
    assert not mask[:, :140].any() and not mask[:, 260:].any()


def test_bone_mask_respects_the_field_of_view():
    """Nothing outside the field of view is bone."""
    background = np.full((400, 400), 2000, np.uint16)
    background[:, 150:250] = 3500
    fov = np.ones(background.shape, bool)
    fov[:200] = False
    mask = bone_mask(background, fov, px_per_mm=10.0)
    assert not mask[:195].any()
    assert mask[210:, 160:240].all()


def test_bone_mask_flat_background_has_no_bone():
    """A flat background has no bone."""
    assert not bone_mask(np.full((200, 200), 3000, np.uint16), np.ones((200, 200), bool), px_per_mm=10.0).any()
