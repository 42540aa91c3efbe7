"""Screenshots of the napari Pair review of the sample pair S03 (knee) for the docs.

Run under a (virtual) screen: ``xvfb-run -a .venv/bin/python scripts/napari_screenshots.py``. Writes
``docs/img/napari_review_overlay.png`` (the window: overlay of baseline in magenta and registered follow-up in
green, the review widget with summary, legend and table), ``docs/img/napari_review_side_by_side.png`` (grid with
linked cameras) and ``docs/img/napari_review_lesion.png`` (a new lesion chosen in the table, centred and outlined).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--size", type=int, nargs=2, default=(1600, 1000), metavar=("WIDTH", "HEIGHT"))
    args = parser.parse_args()

    from napari.settings import get_settings
    from qtpy.QtWidgets import QApplication

    import napari
    from calcimg._napari._widgets import PairReviewWidget

    get_settings().application.gui_notification_level = "none"  # no toasts over the pictures
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(*args.size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (pre,) = viewer.open(str(ROOT / "sample_images" / "S03_knee_pre.tif"), plugin="calcimg")
        (post,) = viewer.open(str(ROOT / "sample_images" / "S03_knee_post.tif"), plugin="calcimg")
    widget = PairReviewWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Pair review (calcimg)", area="right")
    widget.baseline.value, widget.followup.value = pre, post
    session = widget.run()
    if session is None:
        raise SystemExit(widget.status.value)
    viewer.canvas.overlays.scale_bar.visible = True
    args.out.mkdir(parents=True, exist_ok=True)

    def shoot(name: str) -> None:
        QApplication.processEvents()
        picture = viewer.screenshot(canvas_only=False, flash=False)
        napari.utils.io.imsave(str(args.out / name), picture)
        print(f"wrote {args.out / name} {picture.shape[1]}x{picture.shape[0]}")

    widget.mode.value = "overlay"
    viewer.reset_view()
    shoot("napari_review_overlay.png")
    widget.mode.value = "side by side"
    viewer.reset_view()
    shoot("napari_review_side_by_side.png")
    widget.mode.value = "overlay"
    widget.flicker()  # the follow-up alone, with its lesions coloured by change
    matches = session.result.matches
    new = matches.loc[(matches["visit"] == "post") & (matches["change_class"] == "new"), "lesion_id"]
    lesion_id = int(new.iloc[0]) if len(new) else int(matches["lesion_id"].iloc[0])
    widget.table.select_key("post", lesion_id)
    shoot("napari_review_lesion.png")
    print(f"summary: {np.round(session.result.summary['area_change_pct'] or 0.0, 1)} % change")
    viewer.close()


if __name__ == "__main__":
    main()
