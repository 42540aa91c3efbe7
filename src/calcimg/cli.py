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
    _add_backend(parser)
    parser.set_defaults(run=_run_segment)


def _add_backend(parser: argparse.ArgumentParser) -> None:
    """The ``--backend`` option of the commands that segment (segment, compare, batch)."""
    parser.add_argument(
        "--backend",
        choices=("cpu", "cupy"),
        default="cpu",
        help="where detection's full-size pixel steps run: cpu (OpenCV, default) or cupy (a CUDA GPU; needs CuPy)",
    )


def _read_mask(path: Path | None):
    from calcimg.io import load_mask

    return None if path is None else load_mask(path)


def _run_segment(args: argparse.Namespace) -> int:
    from calcimg.pipeline import backend_ops, read_params, segment_image
    from calcimg.report.files import write_segmentation

    backend_ops(args.backend)  # a missing GPU is said once, not once per image
    params = read_params(args.params) if args.params else None
    include, exclude = _read_mask(args.include), _read_mask(args.exclude)
    failures = 0
    for image in args.images:
        try:
            result = segment_image(
                image, params, spacing=args.spacing, include=include, exclude=exclude, backend=args.backend
            )
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
            print(
                f"{image}: {summary['count']} lesion(s), {area}, spacing from {summary['spacing_source']}; "
                f"{_rejected_text(summary['rejected'])}"
            )
    if not args.quiet and failures < len(args.images):  # nothing was written when every image failed
        print(f"results in {args.out}")
    return 1 if failures else 0


def _rejected_text(rejected: dict[str, int]) -> str:
    """How many candidates were rejected and why, most frequent reason first, at most three named: for example
    ``12 candidate(s) rejected (low_score 9, ridge 2, marker 1)`` (every candidate and its reason is in
    ``<stem>_candidates.csv``)."""
    reasons = sorted(rejected.items(), key=lambda item: (-item[1], item[0]))
    named = ", ".join(f"{reason} {count}" for reason, count in reasons[:3])
    more = ", ..." if len(reasons) > 3 else ""
    total = sum(rejected.values())
    return f"{total} candidate(s) rejected" + (f" ({named}{more})" if total else "")


def _add_compare(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "compare",
        parents=[common],
        help="compare a baseline and a follow-up film of the same site",
        description="Segment both films, align the follow-up to the baseline, match the lesions and write "
        "summary.json (counts, areas, change, category, response, registration, needs_review), lesions.csv (one "
        "row per lesion per visit with its match and change class), pair_overlay.png and each film's own "
        "segmentation files.",
    )
    parser.add_argument("pre", type=Path, help="baseline radiograph")
    parser.add_argument("post", type=Path, help="follow-up radiograph")
    parser.add_argument("--out", required=True, type=Path, help="output folder (created if needed)")
    parser.add_argument("--spacing", type=float, help="pixel spacing in mm for both films, overriding the files'")
    parser.add_argument("--params", type=Path, help="Params as JSON (see 'calcimg params')")
    _add_backend(parser)
    parser.set_defaults(run=_run_compare)


def _run_compare(args: argparse.Namespace) -> int:
    from calcimg.pipeline import compare_pair, read_params
    from calcimg.report.pair import write_comparison

    params = read_params(args.params) if args.params else None
    result = compare_pair(args.pre, args.post, params, spacing=args.spacing, backend=args.backend)
    write_comparison(result, args.out, args.pre.stem, args.post.stem)
    if not args.quiet:
        summary = result.summary
        units = summary["units"]
        pct = summary["area_change_pct"]
        matched = (
            f"{summary['new']} new, {summary['resolved']} resolved"
            if summary["new"] is not None
            else "lesions not matched (registration doubtful)"
        )
        print(
            f"baseline {summary['pre_count']} lesion(s), {summary[f'pre_area_{units}2']:.1f} {units}^2; "
            f"follow-up {summary['post_count']}, {summary[f'post_area_{units}2']:.1f} {units}^2; change "
            f"{'n/a' if pct is None else f'{pct:+.1f}%'} ({summary['category']}, "
            f"{summary['response'].replace('_', ' ')}); {matched}"
        )
        evidence = _other_film_evidence(summary)
        if evidence:
            print(evidence)
        unconfirmed = summary.get("unconfirmed", {})
        if any(unconfirmed.values()):
            print(
                f"unconfirmed by the other film (weak lesions that would be new or resolved, rejected): baseline "
                f"{unconfirmed.get('pre', 0)}, follow-up {unconfirmed.get('post', 0)} candidate(s)"
            )
        if summary["needs_review"]:
            print("needs review: " + "; ".join(summary["review_reasons"]))
        print(f"results in {args.out}")
    return 0


def _other_film_evidence(summary: dict) -> str | None:
    """A line saying how many lesions each film took on the other film's evidence (faint candidates, pieces of
    rejected candidates, faint counterparts), or None when none did."""
    from calcimg.report.cohort import from_other_film

    counts = from_other_film(summary)
    if not any(counts.values()):
        return None
    return (
        f"taken on the other film's evidence: baseline {counts['pre']}, follow-up {counts['post']} "
        "(faint candidates, pieces of rejected candidates, faint counterparts; see summary.json)"
    )


def _add_batch(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "batch",
        parents=[common],
        help="compare every baseline/follow-up pair of a study and write a cohort table and report",
        description="Find the images of a study (or read a manifest), pair each follow-up with the baseline of "
        "the same subject and site, compare the pairs and segment the single images, in local processes or on a "
        "Dask cluster. Writes per item the files of 'calcimg compare' / 'calcimg segment', then cohort.csv, "
        "cohort.json, errors.csv, report.html and batch.log. A re-run skips the items whose inputs and Params "
        "are unchanged. Pairing rules: docs/batch.md.",
    )
    parser.add_argument("input", type=Path, help="study folder, or a manifest CSV")
    parser.add_argument("--out", required=True, type=Path, help="output folder (created if needed)")
    parser.add_argument("--manifest", type=Path, help="manifest CSV (subject, site, timepoint/date, path, spacing)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and write nothing")
    parser.add_argument("--jobs", type=int, help="local worker processes (default: the number of cores)")
    parser.add_argument("--scheduler", help="address of a Dask scheduler to run on instead of local processes")
    parser.add_argument("--params", type=Path, help="Params as JSON (see 'calcimg params')")
    parser.add_argument("--spacing", type=float, help="pixel spacing in mm for images the manifest gives none")
    parser.add_argument(
        "--also-previous", action="store_true", help="compare each follow-up with the previous timepoint too"
    )
    parser.add_argument(
        "--keep-identifiers", action="store_true", help="name subjects by their ids instead of pseudonyms"
    )
    parser.add_argument(
        "--pseudonym-key", help="key of the subject pseudonyms (default: $CALCIMG_PSEUDONYM_KEY, else a public key)"
    )
    parser.add_argument(
        "--dicom-seg",
        action="store_true",
        help="also write each DICOM input's lesions as a DICOM Segmentation referencing it (<visit>_seg.dcm); "
        "a SEG carries the source's identifiers, so this needs --keep-identifiers",
    )
    _add_backend(parser)
    parser.set_defaults(run=_run_batch)


def _run_batch(args: argparse.Namespace) -> int:
    from calcimg.batch import BatchOptions, build_plan, format_plan, run_batch
    from calcimg.errors import ParameterError
    from calcimg.io import validate_user_spacing
    from calcimg.pairing import resolve_pseudonym_key
    from calcimg.pipeline import backend_ops, read_params

    if args.jobs is not None and args.jobs < 1:
        raise ParameterError(f"--jobs must be at least 1, got {args.jobs}")
    if args.spacing is not None:
        validate_user_spacing(args.spacing)
    if args.dicom_seg and not args.keep_identifiers:
        raise ParameterError(
            "--dicom-seg needs --keep-identifiers: a DICOM Segmentation references its source study and repeats "
            "its patient module"
        )
    if args.scheduler is None and not args.dry_run:
        backend_ops(args.backend)  # local workers run on this machine: a missing GPU is said once, not per item
    params = read_params(args.params) if args.params else None
    key, default_key = resolve_pseudonym_key(args.pseudonym_key)
    plan = build_plan(
        args.input,
        args.manifest,
        also_previous=args.also_previous,
        keep_identifiers=args.keep_identifiers,
        pseudonym_key=key,
        exclude=args.out,
    )
    if args.dry_run:
        print(format_plan(plan))
        return 1 if plan.problems else 0
    options = BatchOptions(
        out_dir=args.out,
        spacing=args.spacing,
        jobs=args.jobs,
        scheduler=args.scheduler,
        quiet=args.quiet,
        keep_identifiers=args.keep_identifiers,
        default_key=default_key,
        dicom_seg=args.dicom_seg,
        backend=args.backend,
    )
    if params is not None:
        options.params = params
    result = run_batch(plan, options)
    if not args.quiet:
        print(f"report: {result.written['report']}")
    return 0 if result.ok else 1


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
    _add_compare(subparsers, common)
    _add_batch(subparsers, common)
    _add_params(subparsers, common)
    _add_info(subparsers, common)
    _add_phantom(subparsers, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``calcimg`` command and return its exit status."""
    args = build_parser().parse_args(argv)
    if args.run in (_run_segment, _run_compare, _run_batch):
        from calcimg._allocator import keep_large_arrays_in_heap

        keep_large_arrays_in_heap()  # this process is calcimg's own: freed film-sized arrays are reused
    try:
        return args.run(args)
    except CalcimgError as exc:
        print(f"calcimg: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
