"""The one exception family of calcimg.

Every error a user can cause derives from :class:`CalcimgError`; its message names the file (when there is
one) and says what is wrong in words a user understands.
"""

from __future__ import annotations

from os import PathLike


class CalcimgError(Exception):
    """Base class of every error calcimg raises on purpose."""


class InputError(CalcimgError):
    """An input file cannot be used: missing, not an image, truncated, undecodable, too large, ...

    Parameters
    ----------
    path : str or PathLike or None
        The file at fault, named first in the message.
    problem : str
        What is wrong, in plain words.

    Examples
    --------
    >>> str(InputError("scan.dcm", "not a DICOM or image file"))
    'scan.dcm: not a DICOM or image file'
    """

    def __init__(self, path: str | PathLike[str] | None, problem: str) -> None:
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(problem if self.path is None else f"{self.path}: {problem}")


class ParameterError(CalcimgError):
    """A parameter or option given by the user is invalid."""
