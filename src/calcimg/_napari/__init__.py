"""calcimg's napari plugin: readers, a writer, sample data and the Segment and Pair review widgets.

The npe2 manifest is ``calcimg/napari.yaml``. Importing this package does not import napari or Qt: the pure parts
(:mod:`calcimg._napari._measure`, :mod:`calcimg._napari._edits`, :mod:`calcimg._napari._review`,
:mod:`calcimg._napari._reader`, :mod:`calcimg._napari._preview`) are usable and testable without a viewer, and
the widgets (:mod:`calcimg._napari._widgets`) import Qt only when napari asks for them.
"""
