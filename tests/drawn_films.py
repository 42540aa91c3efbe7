"""Params for the drawn test films (disks on flat or ramped fields, smooth "bones"), shared by the test modules.

The learned score's verdict on clean drawn disks, far outside its training phantoms, moves with every refit (0.75
to 0.99 for the same disk), while the tests on drawn films are about detection, outlines, masks, registration,
matching and the tables. They use the engine's rules alone. Without the score, noise must be kept out by the seed
itself: the default ``seed_k`` (3 noise scales) leaves the noise blobs it lets through to the score, so the rules
alone seed at 6 scales and grow at 2. Paired support is off with the score (it needs one). The mass channel is
off too: on the drawn films' smooth "anatomy" (bumps and waves 10 to 30 mm across) it finds what only the score
tells from a mass; the test of the mass channel turns it back on. Tests on phantoms use the default Params.
"""

from __future__ import annotations

from calcimg.model import Params

RULES_ONLY = Params(min_score=0.0, seed_k=6.0, grow_k=2.0, mass_line_mm=0.0)
