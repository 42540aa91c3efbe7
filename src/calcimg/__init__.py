"""calcimg: find, measure and compare calcinosis on plain radiographs.

The public API:

- :func:`load_radiograph` reads a DICOM, PNG, TIFF or JPEG radiograph into a :class:`Radiograph`
  (bright means dense; spacing in mm with its source).
- :func:`segment_image` finds and measures calcinosis on one radiograph (with :class:`Params`), returning a
  :class:`SegmentResult`.
- :func:`compare_pair` compares a baseline and a follow-up film of the same site (registration, lesion matching,
  change, category and response), returning a :class:`PairResult`.
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
from calcimg.model import Params, Radiograph
from calcimg.pipeline import PairResult, SegmentResult, compare_pair, segment_image

__all__ = [
    "CalcimgError",
    "InputError",
    "PairResult",
    "ParameterError",
    "Params",
    "Radiograph",
    "SegmentResult",
    "__version__",
    "compare_pair",
    "load_radiograph",
    "segment_image",
]
