"""Work over folders of radiographs: discovery, the input inventory and the cohort run (``calcimg batch``).

A batch is planned (:func:`build_plan`: discovery, placement and pairing, see :mod:`calcimg.pairing`), then run
(:func:`run_batch`): every item (a pair to compare, or a single image to segment) is computed in a worker, local
processes or a Dask cluster, written into a temporary folder and renamed into place, with ``item.json`` last, so
that a run killed at any moment leaves only whole results and a re-run skips what is done. The cohort table, the
errors and the HTML report are written at the end from the items' records.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import multiprocessing
import os
import shutil
import stat
import sys
import tempfile
import time
import traceback
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from calcimg import __version__
from calcimg._allocator import keep_large_arrays_in_heap
from calcimg._files import atomic_write_bytes, atomic_write_json, atomic_write_text, json_safe
from calcimg.errors import CalcimgError, InputError
from calcimg.io import load_radiograph
from calcimg.model import Params, public_metadata
from calcimg.pairing import (
    ImageRecord,
    PairItem,
    Plan,
    Problem,
    SingleItem,
    place_image,
    plan_batch,
    probe_image,
    pseudonym,
    read_manifest,
    resolve_pseudonym_key,
    safe_name,
)

#: File name endings that are read as radiographs. Files without an extension are read when they carry the
#: DICOM magic bytes ("DICM" at offset 128).
IMAGE_SUFFIXES = frozenset({".dcm", ".dicom", ".png", ".tif", ".tiff", ".jpg", ".jpeg"})

#: Folders whose name ends with this hold ground truth or results beside the images and are never read as input.
TRUTH_FOLDER_SUFFIX = "_truth"


def _has_dicom_magic(path: Path) -> bool:
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # never open a FIFO or a device: it may block or never end
            return False
        with path.open("rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def discover_images(root: str | os.PathLike[str]) -> list[Path]:
    """List the radiographs under ``root`` in a stable order.

    Parameters
    ----------
    root : str or PathLike
        A file or a folder (searched recursively).

    Returns
    -------
    list of pathlib.Path
        Sorted paths. Hidden files and folders, and folders named ``*_truth``, are skipped; files are taken by
        extension (:data:`IMAGE_SUFFIXES`) or, without an extension, by the DICOM magic bytes.

    Raises
    ------
    InputError
        When ``root`` does not exist.
    """
    root = Path(root)
    if not root.exists():
        raise InputError(root, "no such file or folder")
    if root.is_file():
        return [root]
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and not d.endswith(TRUTH_FOLDER_SUFFIX))
        for name in filenames:
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            suffix = path.suffix.lower()
            if suffix in IMAGE_SUFFIXES or (suffix == "" and _has_dicom_magic(path)):
                found.append(path)
    return sorted(found)


@dataclass
class Inventory:
    """What was read from each input: one row per file, and the errors of those that could not be read."""

    table: pd.DataFrame
    errors: list[dict[str, str]] = field(default_factory=list)


def describe_inputs(paths: Iterable[Path], keep_identifiers: bool = False) -> Inventory:
    """Read every file and describe it (shape, bits, photometric, spacing and its source, header facts).

    Parameters
    ----------
    paths : iterable of pathlib.Path
        Files to read.
    keep_identifiers : bool, default False
        Include patient and study identifiers from the headers (off unless the user asks).

    Returns
    -------
    Inventory
        ``table`` has one row per readable file; ``errors`` has ``{"file", "message"}`` for the others.
    """
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    for path in paths:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the reader's warnings are kept on the Radiograph
                radiograph = load_radiograph(path)
        except CalcimgError as exc:
            errors.append({"file": str(path), "message": str(exc)})
            continue
        meta = public_metadata(radiograph.metadata, keep_identifiers=keep_identifiers)
        row: dict[str, Any] = {
            "file": str(path),
            "format": meta.get("format"),
            "rows": radiograph.shape[0],
            "cols": radiograph.shape[1],
            "dtype": str(radiograph.pixels.dtype),
            "bits_stored": radiograph.bits_stored,
            "photometric": meta.get("photometric"),
            "spacing_mm": None if radiograph.spacing_mm is None else round(float(radiograph.spacing_mm[0]), 6),
            "spacing_source": radiograph.spacing_source,
            "modality": meta.get("modality"),
            "body_part": meta.get("body_part"),
            "laterality": meta.get("laterality"),
            "study_date": meta.get("study_date"),
            "min": float(radiograph.pixels.min()),
            "max": float(radiograph.pixels.max()),
            "content_hash": radiograph.content_hash,
            "warnings": " | ".join(radiograph.warnings),
        }
        if keep_identifiers:
            row.update({key: meta.get(key) for key in ("patient_id", "patient_name", "study_uid")})
        rows.append(row)
    return Inventory(table=pd.DataFrame(rows), errors=errors)


def write_inventory(inventory: Inventory, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``inputs.csv``, ``inputs.json`` and, when any file failed, ``errors.csv`` atomically.

    Returns
    -------
    dict of str to pathlib.Path
        The files written, by kind.
    """
    out_dir = Path(out_dir)
    written = {"csv": atomic_write_text(out_dir / "inputs.csv", inventory.table.to_csv(index=False))}
    written["json"] = atomic_write_json(
        out_dir / "inputs.json",
        {
            "calcimg_version": __version__,
            "inputs": json_safe(inventory.table.to_dict(orient="records")),
            "errors": inventory.errors,
        },
    )
    if inventory.errors:
        buffer = io.StringIO()
        pd.DataFrame(inventory.errors, columns=["file", "message"]).to_csv(buffer, index=False)
        written["errors"] = atomic_write_text(out_dir / "errors.csv", buffer.getvalue())
    return written


# --- the cohort run -------------------------------------------------------------------------------------------

#: Name of the record written last in every item folder: its presence says the folder is complete.
ITEM_RECORD = "item.json"

#: Folder (inside the output folder) where items are computed before being renamed into place.
PARTIAL_FOLDER = ".partial"

#: Columns of ``errors.csv``.
ERROR_COLUMNS = ("item", "file", "kind", "message")

log = logging.getLogger("calcimg.batch")


def build_plan(
    input_path: str | os.PathLike[str],
    manifest: str | os.PathLike[str] | None = None,
    *,
    also_previous: bool = False,
    keep_identifiers: bool = False,
    pseudonym_key: str | None = None,
    exclude: str | os.PathLike[str] | None = None,
) -> Plan:
    """Discover, place and pair the images of a study.

    Parameters
    ----------
    input_path : str or PathLike
        The study folder (the root no manifest path may leave), or a manifest CSV (its folder is the root).
    manifest : str or PathLike, optional
        Manifest CSV; without one, the images under ``input_path`` are placed from their DICOM headers or names.
    also_previous : bool
        Compare each follow-up with the previous timepoint as well as with the baseline.
    keep_identifiers : bool
        Name subjects by their ids (sanitised) instead of pseudonyms.
    pseudonym_key : str, optional
        Key of the pseudonyms (see :func:`calcimg.pairing.resolve_pseudonym_key`).
    exclude : str or PathLike, optional
        A folder whose files are never inputs (the output folder when it lies inside the study).

    Returns
    -------
    calcimg.pairing.Plan

    Raises
    ------
    InputError
        When the input does not exist or the manifest is invalid.
    """
    input_path = Path(input_path)
    if manifest is None and input_path.is_file() and input_path.suffix.lower() == ".csv":
        manifest = input_path
    if not input_path.exists():
        raise InputError(input_path, "no such file or folder")
    root = input_path if input_path.is_dir() else input_path.parent
    namer = subject_namer(keep_identifiers, pseudonym_key)
    problems: list[Problem] = []
    records: list[ImageRecord] = []
    if manifest is not None:
        candidates = read_manifest(manifest, root)
        for record in candidates:
            problem = _probe_problem(record.path)
            if problem is None:
                records.append(record)
            else:
                problems.append(Problem("unreadable", (record.relpath,), f"{record.relpath}: {problem}"))
    else:
        excluded = Path(os.path.realpath(exclude)) if exclude is not None else None
        # A single image file given as INPUT is the only input: its folder is the root, not a study to search.
        for path in discover_images(input_path if input_path.is_file() else root):
            # realpath, unlike Path.resolve, does not raise on a symbolic link loop (that file is then unreadable)
            if excluded is not None and Path(os.path.realpath(path)).is_relative_to(excluded):
                continue
            header, problem = probe_image(path)
            # discovery yields paths under ``root`` as given: the name relative to it is lexical, and a symbolic
            # link the user placed in the study (to a file elsewhere) keeps its own name
            relpath = path.relative_to(root).as_posix()
            if problem is not None:
                problems.append(Problem("unreadable", (relpath,), f"{relpath}: {problem}"))
                continue
            records.append(place_image(path, root, header))
    return plan_batch(records, namer, also_previous=also_previous, problems=problems)


def _probe_problem(path: Path) -> str | None:
    if not path.is_file():
        return "no such file"
    return probe_image(path)[1]


def subject_namer(keep_identifiers: bool, pseudonym_key: str | None) -> Callable[[str], str]:
    """The function naming subjects in outputs: a keyed pseudonym, or the id sanitised with --keep-identifiers."""
    if keep_identifiers:
        return safe_name
    key, _ = resolve_pseudonym_key(pseudonym_key)
    return lambda subject: pseudonym(subject, key)


def format_plan(plan: Plan) -> str:
    """The plan in words (what ``--dry-run`` prints): pairs, singles, ambiguities and unreadable files."""
    lines = [f"{len(plan.pairs)} pair(s):"]
    for pair in plan.pairs:
        extra = " (with the previous timepoint)" if pair.reference == "previous" else ""
        lines.append(f"  {pair.item_id}: {pair.baseline.relpath} -> {pair.followup.relpath}{extra}")
    lines.append(f"{len(plan.singles)} single image(s), segmented only:")
    lines += [f"  {single.item_id}: {single.image.relpath} ({single.reason})" for single in plan.singles]
    lines.append(f"{len(plan.ambiguities)} ambiguit{'y' if len(plan.ambiguities) == 1 else 'ies'} (left out):")
    lines += [f"  {problem.message}" for problem in plan.ambiguities]
    lines.append(f"{len(plan.unreadable)} unreadable file(s):")
    lines += [f"  {problem.message}" for problem in plan.unreadable]
    return "\n".join(lines)


def file_hash(path: str | os.PathLike[str]) -> str:
    """``"sha256:<hex>"`` of a file's bytes (the same identity :class:`calcimg.model.Radiograph` records)."""
    with open(path, "rb") as handle:
        return "sha256:" + hashlib.file_digest(handle, "sha256").hexdigest()


@dataclass
class BatchOptions:
    """How to run a batch.

    Attributes
    ----------
    out_dir : pathlib.Path
        Output folder.
    params : Params
    spacing : float, optional
        Pixel spacing (mm) for images whose manifest row gives none, overriding the files'.
    jobs : int, optional
        Local worker processes (default: the number of cores); 1 runs in this process.
    scheduler : str or distributed.Client, optional
        A Dask scheduler address (or a Client): run there instead of in local processes. The workers must see
        the input and output folders at the same paths.
    quiet : bool
        No progress bar and no messages but errors.
    keep_identifiers : bool
        Subjects named by their ids instead of pseudonyms.
    default_key : bool
        The pseudonyms use the published default key (recorded and warned about).
    dicom_seg : bool
        Also write each DICOM input's lesions as a DICOM Segmentation (``<visit>_seg.dcm``) referencing it; it
        carries the source's identifiers, so the CLI allows it only with ``keep_identifiers``.
    backend : {"cpu", "cupy", "numpy"}
        Where detection's full-size pixel steps run in every worker (:func:`calcimg.segment_image`); ``"cupy"``
        needs CuPy and a CUDA GPU on every worker.
    """

    out_dir: Path
    params: Params = field(default_factory=Params)
    spacing: float | None = None
    jobs: int | None = None
    scheduler: Any = None
    quiet: bool = False
    keep_identifiers: bool = False
    default_key: bool = True
    dicom_seg: bool = False
    backend: str = "cpu"


@dataclass
class BatchResult:
    """What a batch did: the items' records, the problems and the files written."""

    records: list[dict[str, Any]]
    problems: list[dict[str, str]]
    computed: int
    skipped: int
    failed: int
    written: dict[str, Path]

    @property
    def ok(self) -> bool:
        """True when nothing failed (pairs to review do not count as failures)."""
        return not any(p["kind"] != "review" for p in self.problems)


def make_task(item: PairItem | SingleItem, options: BatchOptions) -> dict[str, Any]:
    """The picklable description of one item that a worker runs (see :func:`run_item`)."""
    roles = ("baseline", "followup") if isinstance(item, PairItem) else ("image",)
    images = []
    for role, record in zip(roles, item.images, strict=True):
        images.append(
            {
                "role": role,
                "path": str(record.path),
                "relpath": record.relpath,
                "content_hash": file_hash(record.path),
                "timepoint": record.timepoint.label if record.timepoint else None,
                "date": record.timepoint.date if record.timepoint else None,
                "spacing_mm": record.spacing_mm if record.spacing_mm is not None else options.spacing,
            }
        )
    namer = subject_namer(options.keep_identifiers, None) if options.keep_identifiers else None
    subject = item.item_id.split("/")[0] if item.subject is not None else None
    if namer is not None and item.subject is not None:
        subject = namer(item.subject)
    return {
        "item": item.item_id,
        "kind": "pair" if isinstance(item, PairItem) else "single",
        "subject": subject,
        "site": item.site,
        "reference": getattr(item, "reference", None),
        "images": images,
        "params": options.params.to_dict(),
        "out_dir": str(options.out_dir),
        "dicom_seg": options.dicom_seg,
        "backend": options.backend,
    }


def resume_key(task_or_record: dict[str, Any]) -> dict[str, Any]:
    """What must be equal for a finished item to be reused: version, Params, the backend, each input's content hash
    and the spacing asked for (a record from before backends were recorded was made on the CPU)."""
    return json_safe(
        {
            "calcimg_version": task_or_record.get("calcimg_version", __version__),
            "params": task_or_record["params"],
            "dicom_seg": bool(task_or_record.get("dicom_seg", False)),
            "backend": task_or_record.get("backend", "cpu"),
            "inputs": [
                {k: image.get(k) for k in ("role", "content_hash", "spacing_mm")}
                for image in (task_or_record.get("images") or task_or_record["inputs"])
            ],
        }
    )


def load_record(out_dir: Path, item_id: str) -> dict[str, Any] | None:
    """The ``item.json`` of a finished item, or None when missing or unreadable."""
    try:
        with (out_dir / item_id / ITEM_RECORD).open(encoding="utf-8") as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def run_item(task: dict[str, Any]) -> dict[str, Any]:
    """Compute one item and write its results; never raises.

    The results are written into a fresh folder under ``<out>/.partial/``, ``item.json`` last, and the folder
    is renamed to ``<out>/<item id>`` (a previous result there is moved away first), so the item's folder is
    either complete or absent.

    Returns
    -------
    dict
        ``{"item", "status": "done", "record"}`` or ``{"item", "status": "failed", "file", "message"}``.
    """
    started = time.perf_counter()
    try:
        record = _compute_item(task)
    except CalcimgError as exc:
        return _failure(task, exc, str(exc))
    except OSError as exc:  # the output folder: disk full, permissions (inputs are read as InputError)
        where = exc.filename or task["out_dir"]
        return _failure(task, exc, f"{where}: cannot write the results ({exc.strerror or exc})")
    except Exception as exc:  # one item's bug must not stop the cohort; it is reported with its type
        return _failure(task, exc, f"unexpected error {type(exc).__name__}: {exc}")
    return {"item": task["item"], "status": "done", "record": record, "seconds": time.perf_counter() - started}


def _failure(task: dict[str, Any], exc: BaseException, message: str) -> dict[str, Any]:
    file = getattr(exc, "path", None)
    for image in task["images"]:  # outputs name inputs by their path relative to the study root
        message = message.replace(image["path"], image["relpath"])
        if file == image["path"]:
            file = image["relpath"]
    if file is None:
        file = " ".join(image["relpath"] for image in task["images"])
    return {
        "item": task["item"],
        "status": "failed",
        "file": file,
        "message": message,
        "traceback": traceback.format_exc(),
    }


def _write_dicom_segs(task: dict[str, Any], visits: list[tuple[str, Any]], work: Path) -> None:
    """``<stem>_seg.dcm`` for each visit read from a DICOM file (other formats have nothing to reference)."""
    from calcimg.io import read_file_bytes, sniff_format
    from calcimg.report.dicom_seg import segmentation_bytes

    for image, (stem, segmented) in zip(task["images"], visits, strict=True):
        if sniff_format(read_file_bytes(image["path"])[:132]) not in ("dicom", "dicom_bare"):
            continue
        atomic_write_bytes(work / f"{stem}_seg.dcm", segmentation_bytes(segmented.labels, image["path"]))


def _compute_item(task: dict[str, Any]) -> dict[str, Any]:
    from calcimg.pipeline import compare_pair, segment_image
    from calcimg.report.files import write_segmentation
    from calcimg.report.pair import write_comparison

    params = Params.from_dict(task["params"])
    backend = task.get("backend", "cpu")
    radiographs = []
    for image in task["images"]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the reader's warnings are kept on the Radiograph
            radiograph = load_radiograph(image["path"], spacing=image["spacing_mm"])
        radiographs.append(replace(radiograph, path=image["relpath"]))
    out = Path(task["out_dir"])
    partial = out / PARTIAL_FOLDER
    partial.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=safe_name(task["item"].replace("/", "__"), 80) + ".", dir=partial))
    try:
        if task["kind"] == "pair":
            result = compare_pair(radiographs[0], radiographs[1], params, backend=backend)
            write_comparison(result, work, "pre", "post")
            visits = [("pre", result.pre), ("post", result.post)]
        else:
            result = segment_image(radiographs[0], params, backend=backend)
            stem = safe_name(task["images"][0]["timepoint"] or "image")
            write_segmentation(result, work, stem)
            visits = [(stem, result)]
        if task.get("dicom_seg"):
            _write_dicom_segs(task, visits, work)
        summary = result.summary
        inputs = []
        for image, radiograph in zip(task["images"], radiographs, strict=True):
            inputs.append(
                {
                    **{k: image[k] for k in ("role", "timepoint", "date", "spacing_mm")},
                    "path": image["relpath"],
                    "content_hash": radiograph.content_hash,
                    "spacing_used_mm": None if radiograph.spacing_mm is None else list(radiograph.spacing_mm),
                    "spacing_source": radiograph.spacing_source,
                }
            )
        record = json_safe(
            {
                "calcimg_version": __version__,
                "item": task["item"],
                "kind": task["kind"],
                "subject": task["subject"],
                "site": task["site"],
                "reference": task["reference"],
                "params": task["params"],
                "dicom_seg": bool(task.get("dicom_seg", False)),
                "backend": backend,
                "inputs": inputs,
                "files": sorted(p.name for p in work.iterdir() if not p.name.startswith(".")),
                "summary": summary,
            }
        )
        atomic_write_json(work / ITEM_RECORD, record)
        _move_into_place(work, out / task["item"], partial)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return record


def _move_into_place(work: Path, destination: Path, partial: Path) -> None:
    """Rename a finished folder to its destination, moving an older result out of the way first."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    if destination.exists():
        old = Path(tempfile.mkdtemp(prefix="replaced.", dir=partial))
        os.replace(destination, old / "item")
        shutil.rmtree(old, ignore_errors=True)
    os.replace(work, destination)


def _init_worker() -> None:
    """Prepare a worker process: one item per worker thread, so OpenCV's own threads (and compare_pair's second
    thread, which follows OpenCV's setting) would only oversubscribe the cores; the allocator set to reuse large
    arrays (:func:`keep_large_arrays_in_heap`); and the pipeline imported once here rather than inside the first
    item's time."""
    import cv2

    import calcimg.pipeline  # noqa: F401

    cv2.setNumThreads(1)
    keep_large_arrays_in_heap()


def _local_outcomes(tasks: list[dict[str, Any]], jobs: int) -> Iterator[dict[str, Any]]:
    if jobs <= 1:
        for task in tasks:
            yield run_item(task)
        return
    context = multiprocessing.get_context(
        "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    )
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_init_worker) as pool:
        futures = {pool.submit(run_item, task): task for task in tasks}
        for future in as_completed(futures):
            try:
                yield future.result()
            except BrokenProcessPool as exc:
                task = futures[future]
                yield _failure(task, exc, f"the worker process died ({exc})")


def _dask_outcomes(tasks: list[dict[str, Any]], scheduler: Any) -> Iterator[dict[str, Any]]:
    try:
        from dask.distributed import Client
        from dask.distributed import as_completed as dask_as_completed
    except ImportError as exc:
        raise CalcimgError("--scheduler needs dask.distributed: pip install 'calcimg[distributed]'") from exc
    own = not isinstance(scheduler, Client)
    try:
        client = Client(scheduler) if own else scheduler
    except (OSError, TimeoutError, ValueError) as exc:
        raise CalcimgError(f"cannot connect to the Dask scheduler {scheduler!r} ({exc})") from exc
    try:
        client.run(_init_worker)
        futures = {
            client.submit(run_item, task, key=f"calcimg-item-{uuid.uuid4().hex}", pure=False): task for task in tasks
        }
        for future in dask_as_completed(futures):
            try:
                yield future.result()
            except Exception as exc:  # a lost worker fails this item, not the batch
                yield _failure(futures[future], exc, f"the Dask task failed ({type(exc).__name__}: {exc})")
    finally:
        if own:
            client.close()


def run_batch(plan: Plan, options: BatchOptions) -> BatchResult:
    """Run a planned batch: compute what is not already done, then write the cohort, errors and report.

    Parameters
    ----------
    plan : calcimg.pairing.Plan
        From :func:`build_plan`.
    options : BatchOptions

    Returns
    -------
    BatchResult

    Raises
    ------
    CalcimgError
        When the output folder cannot be written or the Dask scheduler cannot be reached.
    """
    out = Path(options.out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(out / PARTIAL_FOLDER, ignore_errors=True)  # leftovers of a killed run: never whole results
        handler = logging.FileHandler(out / "batch.log", encoding="utf-8")
    except OSError as exc:
        raise CalcimgError(f"{out}: cannot write the output folder ({exc.strerror or exc})") from exc
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        return _run(plan, options, out)
    finally:
        log.removeHandler(handler)
        handler.close()
        with contextlib.suppress(OSError):  # left only when something is still in it
            (out / PARTIAL_FOLDER).rmdir()


def _say(options: BatchOptions, message: str, error: bool = False) -> None:
    if error or not options.quiet:
        _progress_write(message, sys.stderr if error else sys.stdout)


def _progress_write(message: str, stream: Any) -> None:
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is installed with calcimg
        print(message, file=stream)
        return
    tqdm.write(message, file=stream)


def _run(plan: Plan, options: BatchOptions, out: Path) -> BatchResult:
    params = options.params
    log.info(
        "calcimg %s batch: %d pair(s), %d single(s), %d problem(s) in the plan",
        __version__,
        len(plan.pairs),
        len(plan.singles),
        len(plan.problems),
    )
    log.info("params %s", json.dumps(params.to_dict(), sort_keys=True))
    log.info("backend %s", options.backend)
    if not options.keep_identifiers and options.default_key:
        message = (
            "subjects are pseudonymised with the published default key, so the pseudonyms are not secret; "
            "set --pseudonym-key or CALCIMG_PSEUDONYM_KEY"
        )
        log.warning(message)
        _say(options, f"calcimg: warning: {message}", error=True)
    problems: list[dict[str, str]] = [
        {"item": "plan", "file": " ".join(p.files), "kind": p.kind, "message": p.message} for p in plan.problems
    ]
    for problem in problems:
        log.warning("%s: %s", problem["kind"], problem["message"])
    records: dict[str, dict[str, Any]] = {}
    pending: list[dict[str, Any]] = []
    for item in plan.items:
        try:
            task = make_task(item, options)
        except OSError as exc:
            relpaths = " ".join(r.relpath for r in item.images)
            problems.append(
                {
                    "item": item.item_id,
                    "file": relpaths,
                    "kind": "error",
                    "message": f"{relpaths}: cannot be read ({exc.strerror or exc})",
                }
            )
            continue
        previous = load_record(out, item.item_id)
        if previous is not None and resume_key(previous) == resume_key(task):
            records[item.item_id] = previous
            log.info("%s: unchanged, skipped", item.item_id)
        else:
            pending.append(task)
    skipped = len(records)
    jobs = options.jobs or os.cpu_count() or 1
    where = (
        f"Dask scheduler {options.scheduler}"
        if options.scheduler is not None
        else f"{min(jobs, max(1, len(pending)))} local process(es)"
    )
    log.info("%d item(s) to compute, %d already done, on %s", len(pending), skipped, where)
    _say(options, f"{len(pending)} item(s) to compute, {skipped} already done, on {where}")
    outcomes = (
        _dask_outcomes(pending, options.scheduler)
        if options.scheduler is not None
        else _local_outcomes(pending, min(jobs, max(1, len(pending))))
    )
    failed = 0
    bar = _progress_bar(len(plan.items), skipped, options.quiet)
    try:
        for outcome in outcomes:
            item_id = outcome["item"]
            if outcome["status"] == "done":
                records[item_id] = outcome["record"]
                log.info("%s: done in %.1f s", item_id, outcome.get("seconds", 0.0))
            else:
                failed += 1
                problems.append(
                    {"item": item_id, "file": outcome["file"], "kind": "error", "message": outcome["message"]}
                )
                log.error("%s: %s", item_id, outcome["message"])
                log.info("%s traceback:\n%s", item_id, outcome.get("traceback", ""))
                _say(options, f"calcimg: error: {item_id}: {outcome['message']}", error=True)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(failed=failed, refresh=False)
    finally:
        if bar is not None:
            bar.close()
    ordered = [records[item.item_id] for item in plan.items if item.item_id in records]
    for record in ordered:
        summary = record["summary"]
        if record["kind"] == "pair" and summary.get("needs_review"):
            problems.append(
                {
                    "item": record["item"],
                    "file": " ".join(i["path"] for i in record["inputs"]),
                    "kind": "review",
                    "message": "needs review: " + "; ".join(summary["review_reasons"]),
                }
            )
    problems.sort(key=lambda p: (p["item"] == "plan", p["item"], p["kind"], p["file"], p["message"]))
    written = _write_run_outputs(ordered, problems, options, out)
    for kind in ("error", "unreadable", "ambiguity", "review"):
        count = sum(p["kind"] == kind for p in problems)
        if count:
            log.info("%d %s item(s)", count, kind)
    log.info("finished: %d computed, %d skipped, %d failed", len(pending) - failed, skipped, failed)
    _say(
        options,
        f"{len(pending) - failed} computed, {skipped} skipped, {failed} failed; "
        f"{sum(p['kind'] != 'review' for p in problems)} problem(s) in {out / 'errors.csv'}",
    )
    return BatchResult(ordered, problems, len(pending) - failed, skipped, failed, written)


def _progress_bar(total: int, done: int, quiet: bool) -> Any:
    if quiet:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is installed with calcimg
        return None
    return tqdm(total=total, initial=done, unit="item", desc="calcimg batch", file=sys.stderr, dynamic_ncols=True)


def _write_run_outputs(
    records: list[dict[str, Any]], problems: list[dict[str, str]], options: BatchOptions, out: Path
) -> dict[str, Path]:
    from calcimg.report.cohort import cohort_table, write_cohort
    from calcimg.report.html import write_report

    table = cohort_table(records)
    singles = [_single_row(r) for r in records if r["kind"] == "single"]
    run = {
        "calcimg_version": __version__,
        "params": options.params.to_dict(),
        "backend": options.backend,
        "pseudonymised": not options.keep_identifiers,
        "default_key": bool(options.default_key and not options.keep_identifiers),
        "spacing_mm": options.spacing,
        "singles": singles,
        "problems": problems,
    }
    buffer = io.StringIO()
    pd.DataFrame(problems, columns=list(ERROR_COLUMNS)).to_csv(buffer, index=False, lineterminator="\n")
    written = write_cohort(table, out, run)
    written["errors"] = atomic_write_text(out / "errors.csv", buffer.getvalue())
    written["report"] = write_report(table, singles, problems, out, run)
    return written


def _single_row(record: dict[str, Any]) -> dict[str, Any]:
    summary = record["summary"]
    units = summary.get("units", "mm")
    image = record["inputs"][0]
    return {
        "item": record["item"],
        "subject": record["subject"],
        "site": record["site"],
        "timepoint": image["timepoint"],
        "date": image["date"],
        "count": summary.get("count"),
        "area_units": f"{units}2",
        "area": summary.get("total_area_mm2") if units == "mm" else summary.get("total_area_px"),
        "file": image["path"],
        "content_hash": image["content_hash"],
    }
