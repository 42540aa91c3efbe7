"""calcimg: find, measure and compare calcinosis on plain radiographs.

The public API:

- :func:`load_radiograph` reads a DICOM, PNG, TIFF or JPEG radiograph into a :class:`Radiograph`
  (bright means dense; spacing in mm with its source).
- :mod:`calcimg.phantom` makes synthetic pre/post pairs with exact ground truth.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("calcimg")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

from calcimg.errors import CalcimgError, InputError, ParameterError
from calcimg.io import load_radiograph
from calcimg.model import Radiograph

__all__ = [
    "CalcimgError",
    "InputError",
    "ParameterError",
    "Radiograph",
    "__version__",
    "load_radiograph",
]
