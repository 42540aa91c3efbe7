"""The seven flips and turns of a square other than the identity, shared by the equivariance tests.

``pythonpath = ["tests"]`` in pyproject.toml makes this importable from every test folder.
"""

from __future__ import annotations

import numpy as np

#: name -> function of a 2-D array giving the flipped, turned or transposed array.
DIHEDRAL = {
    "fliplr": np.fliplr,
    "flipud": np.flipud,
    "rot90": np.rot90,
    "rot180": lambda a: np.rot90(a, 2),
    "rot270": lambda a: np.rot90(a, 3),
    "transpose": np.transpose,
    "antitranspose": lambda a: np.rot90(a, 2).T,
}
