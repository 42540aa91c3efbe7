"""The ``calcimg`` command: argument parsing only; each subcommand is a thin call into the library.

Exit status: 0 on success, 1 when some input could not be used (the others are still processed),
2 for a usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from calcimg import __version__
from calcimg.errors import CalcimgError


def _add_phantom(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from calcimg.phantom import SITES

    parser = subparsers.add_parser(
        "phantom",
        parents=[common],
        help="write synthetic pre/post radiograph pairs with exact ground truth",
        description="Write synthetic pre/post pairs (images, truth label maps, lesion table, pair summary and a "
        "manifest). The same seed gives the same bytes.",
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder (created if needed)")
    parser.add_argument("--pairs", type=int, default=1, help="number of pairs (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--site",
        action="append",
        choices=SITES,
        help="anatomical site; repeat to cycle through several (default: cycle through all)",
    )
    parser.add_argument("--format", choices=("dcm", "png", "tif"), default="dcm", help="image format (default dcm)")
    parser.add_argument(
        "--compress", action="store_true", help="DICOM: JPEG 2000 lossless pixel data instead of uncompressed"
    )
    parser.set_defaults(run=_run_phantom)


def _run_phantom(args: argparse.Namespace) -> int:
    from calcimg.phantom import write_phantoms

    if args.pairs < 1:
        raise CalcimgError("--pairs must be at least 1")
    written = write_phantoms(
        args.out, pairs=args.pairs, seed=args.seed, sites=args.site, fmt=args.format, compress=args.compress
    )
    if not args.quiet:
        print(f"wrote {len(written)} phantom pair(s) to {args.out}")
    return 0


def _add_info(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "info",
        parents=[common],
        help="read radiographs and report what was read (size, bits, spacing and its source)",
        description="Read every radiograph given (files or folders, searched recursively) and print what was "
        "read. With --out, write inputs.csv, inputs.json and errors.csv there.",
    )
    parser.add_argument("inputs", nargs="+", type=Path, help="files or folders")
    parser.add_argument("--out", type=Path, help="folder for inputs.csv / inputs.json / errors.csv")
    parser.add_argument(
        "--keep-identifiers", action="store_true", help="include patient and study identifiers (off by default)"
    )
    parser.set_defaults(run=_run_info)


def _run_info(args: argparse.Namespace) -> int:
    from calcimg.batch import describe_inputs, discover_images, write_inventory

    paths: list[Path] = []
    for item in args.inputs:
        paths.extend(discover_images(item))
    inventory = describe_inputs(paths, keep_identifiers=args.keep_identifiers)
    if not args.quiet:
        _print_inventory(inventory)
    if args.out is not None:
        written = write_inventory(inventory, args.out)
        if not args.quiet:
            print(f"results: {', '.join(str(p) for p in written.values())}")
    return 1 if inventory.errors else 0


def _print_inventory(inventory) -> None:
    table = inventory.table
    if len(table):
        shown = table[["file", "format", "rows", "cols", "bits_stored", "photometric", "spacing_mm", "spacing_source"]]
        print(shown.to_string(index=False))
    print(f"{len(table)} image(s) read, {len(inventory.errors)} failed")
    for error in inventory.errors:
        print(f"  failed: {error['message']}")


def _add_segment(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "segment",
        parents=[common],
        help="find and measure calcinosis on one or more radiographs",
        description="Segment each image and write <stem>_labels.tif, <stem>_lesions.csv, <stem>_summary.json "
        "and <stem>_overlay.png to the output folder. An image that cannot be read is reported and the others go on.",
    )
    parser.add_argument("images", nargs="+", type=Path, help="radiograph files")
    parser.add_argument("--out", required=True, type=Path, help="output folder (created if needed)")
    parser.add_argument("--spacing", type=float, help="pixel spacing in mm, overriding the files' own")
    parser.add_argument("--params", type=Path, help="Params as JSON (see 'calcimg params')")
    parser.add_argument("--include", type=Path, help="mask image (TIFF/PNG, the image's shape): only lesions inside")
    parser.add_argument("--exclude", type=Path, help="mask or label image: lesions inside it are rejected")
    parser.set_defaults(run=_run_segment)


def _read_mask(path: Path | None):
    from calcimg.io import load_mask

    return None if path is None else load_mask(path)


def _run_segment(args: argparse.Namespace) -> int:
    from calcimg.pipeline import read_params, segment_image
    from calcimg.report.files import write_segmentation

    params = read_params(args.params) if args.params else None
    include, exclude = _read_mask(args.include), _read_mask(args.exclude)
    failures = 0
    for image in args.images:
        try:
            result = segment_image(image, params, spacing=args.spacing, include=include, exclude=exclude)
            write_segmentation(result, args.out, image.stem)
        except CalcimgError as exc:
            failures += 1
            print(f"calcimg: error: {exc}", file=sys.stderr)
            continue
        if not args.quiet:
            summary = result.summary
            area = (
                f"{summary['total_area_mm2']:.1f} mm^2"
                if summary["total_area_mm2"] is not None
                else f"{summary['total_area_px']} px (uncalibrated)"
            )
            print(f"{image}: {summary['count']} lesion(s), {area}, spacing from {summary['spacing_source']}")
    if not args.quiet:
        print(f"results in {args.out}")
    return 1 if failures else 0


def _add_params(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "params",
        parents=[common],
        help="print the default Params as JSON (edit and pass back with --params)",
    )
    parser.set_defaults(run=_run_params)


def _run_params(args: argparse.Namespace) -> int:
    import json

    from calcimg.model import Params

    print(json.dumps(Params().to_dict(), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of the ``calcimg`` command."""
    parser = argparse.ArgumentParser(
        prog="calcimg", description="Find, measure and compare calcinosis on plain radiographs."
    )
    parser.add_argument("--version", action="version", version=f"calcimg {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_segment(subparsers, common)
    _add_params(subparsers, common)
    _add_info(subparsers, common)
    _add_phantom(subparsers, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``calcimg`` command and return its exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except CalcimgError as exc:
        print(f"calcimg: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
