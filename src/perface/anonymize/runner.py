"""Anonymizing many files: output names, the output folder, worker processes and a report kept up to date.

Every input is processed on its own: a file that cannot be read or processed is listed in the report with
the reason and the run goes on; no output is written for it (fail closed). Outputs are published atomically
under names no other run holds; the report is rewritten as the run goes (``"status": "running"``), so a killed
run leaves complete outputs and a report of what was done up to about a second before. A full disk stops the
run with one error and the report of what was written. ``workers > 1`` anonymizes in that many processes,
each with one-thread runtimes; outputs do not depend on the worker count (each image is seeded alone). Where it
is safe (:func:`fork_workers_possible`) the workers are forked from this process once it has loaded the models,
and a child holding only the detector finds the faces of the first images meanwhile (:class:`_DetectAhead`).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from perface.anonymize.report import REPORT_NAME, ImageRecord, RunReport
from perface.face.io import (
    TEMP_PREFIX,
    InputError,
    OutputError,
    PerFaceError,
    ReadConfig,
    clean_stale_temps,
    read_image,
    real_key,
    write_bytes_atomic,
    write_image,
)

if TYPE_CHECKING:
    import numpy as np

    from perface.anonymize.anonymizer import AnonymizeConfig, Anonymizer
    from perface.face.detect import DetectConfig

OUTPUT_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
NAME_MAX_BYTES = 255  # longest file name on common file systems (ext4, XFS, APFS, NTFS in UTF-16 units)
THREAD_VARIABLES = ("PERFACE_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass(frozen=True)
class AnonymizerRecipe:
    """What an :class:`Anonymizer` is built from; picklable, so that every worker process builds its own."""

    config: AnonymizeConfig
    gallery: str | None = None
    model: str = "default"

    def build(self) -> Anonymizer:
        from perface.anonymize.anonymizer import Anonymizer

        return Anonymizer(self.config, gallery=self.gallery, model=self.model)

    def check(self) -> None:
        """Cheap checks the workers would otherwise fail on, made before any process starts."""
        if self.config.method == "swap" and self.gallery is not None and not Path(self.gallery).is_file():
            raise InputError(self.gallery, "donor gallery not found (build one with `perface gallery build`)")


def output_paths(inputs: Sequence[Path], outdir: Path, suffix: str = "") -> list[Path]:
    """One output path per input in ``outdir``: unique names, never an input, short enough for the file system."""
    taken: set[str] = set()
    out = []
    resolved_inputs = {real_key(p) for p in inputs}
    for p in inputs:
        ext = p.suffix.lower() if p.suffix.lower() in OUTPUT_SUFFIXES else ".png"
        stem = _fit_name(p.stem + suffix, NAME_MAX_BYTES - len(ext) - 12)  # room for "-<k>" or "-<pid>"
        name, k = f"{stem}{ext}", 1
        while name in taken or real_key(outdir / name) in resolved_inputs:
            k += 1
            name = f"{stem}-{k}{ext}"
        taken.add(name)
        out.append(outdir / name)
    return out


def _fit_name(stem: str, max_bytes: int) -> str:
    """Cut a file-name stem to ``max_bytes`` bytes (as the file system stores it), never mid-character."""
    raw = os.fsencode(stem)
    if len(raw) <= max_bytes:
        return stem
    return os.fsdecode(raw[:max_bytes].decode("utf-8", "ignore").encode("utf-8")) or "image"


def check_outdir(inputs: Sequence[Path], outdir: Path, *, create: bool = True) -> list[Path]:
    """Refuse an output folder that is an input, a file, below a file, or not writable; remove stale temp files.

    With ``create`` the folder is made and a probe file is written and removed, so that a read-only or
    non-writable folder fails now with one line, before any model loads. Returns the temp files removed
    (left by an earlier run that was killed)."""
    try:
        if outdir.exists() and not outdir.is_dir():
            raise InputError(outdir, "output path exists and is not a folder")
    except OSError as exc:
        raise InputError(outdir, f"cannot use the output folder ({exc.strerror})") from None
    if any(real_key(p) == real_key(outdir) for p in inputs):
        raise PerFaceError(f"{outdir}: output folder is one of the inputs")
    if not create:
        return []
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = "a part of the path is a file, not a folder" if isinstance(exc, (NotADirectoryError,
                                                                           FileExistsError)) else exc.strerror
        raise InputError(outdir, f"cannot create the output folder ({why})") from None
    try:
        fd = os.open(outdir / f"{TEMP_PREFIX}{os.getpid()}-probe", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
        os.unlink(outdir / f"{TEMP_PREFIX}{os.getpid()}-probe")
    except FileExistsError:
        pass
    except OSError as exc:
        raise InputError(outdir, f"output folder is not writable ({exc.strerror})") from None
    return clean_stale_temps(outdir)


def claim_report_path(outdir: Path, overwrite: bool) -> Path:
    """The report's name, claimed atomically: ``perface-report.json``, or ``perface-report-<k>.json`` when
    another run holds that name, so two runs into one folder each keep their own report."""
    if overwrite:
        return outdir / REPORT_NAME
    stem, ext = os.path.splitext(REPORT_NAME)
    for k in range(1, 10_000):
        p = outdir / (REPORT_NAME if k == 1 else f"{stem}-{k}{ext}")
        try:
            fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            continue
        except OSError as exc:
            raise OutputError(p, exc) from None
        os.close(fd)
        return p
    raise OutputError(outdir, "no free report name")


class _ReportWriter:
    """Rewrites the run report as images finish, at most about 5% of the run's time, and once at the end."""

    def __init__(self, path: Path | None, report: RunReport, total: int) -> None:
        self.path, self.report, self.total = path, report, total
        self.last, self.cost = 0.0, 0.0
        self.records: dict[int, ImageRecord] = {}

    def add(self, index: int, rec: ImageRecord) -> None:
        self.records[index] = rec
        if time.perf_counter() - self.last >= max(0.2, 20 * self.cost):
            self.write("running")

    def write(self, status: str) -> str | None:
        """Write the report now; returns why it could not be written (None: written or nothing to write)."""
        self.report.images = [self.records[i] for i in sorted(self.records)]
        self.report.status = status
        self.report.inputs = self.total
        if self.path is None:
            return None
        t = time.perf_counter()
        try:
            write_bytes_atomic(self.path, json.dumps(self.report.to_dict(), indent=2).encode(), overwrite=True,
                               what="report")
        except PerFaceError as exc:
            return str(exc)
        finally:
            self.last, self.cost = time.perf_counter(), time.perf_counter() - t
        return None


def anonymize_files(
    inputs: Sequence[Path],
    outdir: str | os.PathLike[str],
    anonymizer: Anonymizer | AnonymizerRecipe,
    dry_run: bool = False,
    on_progress: Callable[[ImageRecord], None] | None = None,
    read_config: ReadConfig | None = None,
    workers: int = 1,
) -> RunReport:
    """Anonymize files into ``outdir``, report included; unreadable or failing files are listed, not fatal.

    ``anonymizer``: a built :class:`Anonymizer` (runs here), or an :class:`AnonymizerRecipe` (built here, or in
    each of ``workers`` processes). Raises :class:`OutputError` when outputs cannot be written (full disk),
    after saving the report of what was done."""
    recipe = anonymizer if isinstance(anonymizer, AnonymizerRecipe) else None
    if workers < 1:
        raise PerFaceError(f"--workers must be at least 1, got {workers}")
    if recipe is None and workers > 1:
        raise ValueError("workers > 1 needs an AnonymizerRecipe: every worker builds its own anonymizer")
    config = anonymizer.config
    inputs = list(inputs)
    out_dir = Path(outdir)
    targets = output_paths(inputs, out_dir, config.suffix)
    removed = check_outdir(inputs, out_dir, create=not dry_run)
    if not dry_run:
        clashes = [t for t in targets if t.exists()]
        if clashes and not config.overwrite:
            raise InputError(clashes[0], f"output already exists ({len(clashes)} file(s) in {out_dir}); "
                                         "pass --overwrite or choose another -o folder")
    in_process = workers == 1 or len(inputs) <= 1
    exits = contextlib.ExitStack()
    warm = None  # with forked workers: built and warmed here, so that the workers share its loaded models
    detected: dict[int, tuple] = {}  # faces found ahead while the models loaded, by input index
    ahead_note = ""
    if in_process and recipe is not None:  # models load before anything is written: a bad setup leaves nothing
        anonymizer = recipe.build()
    elif recipe is not None and fork_workers_possible():
        exits.enter_context(one_thread_runtimes())  # OpenCV too: no native thread may exist at the fork
        ahead = None
        try:
            ahead = _DetectAhead(recipe.config.detect, inputs, read_config) if config.method == "swap" else None
            warm = recipe.build()
            warm.warm_up()  # the detect-ahead process uses the other core meanwhile
        except BaseException:
            if ahead is not None:  # stopped and reaped: the CLI ends with os._exit, which would leave it running
                ahead.collect()
            exits.close()
            raise
        if ahead is not None:
            detected = ahead.collect()
            ahead_note = f"; {len(detected)} image(s) detected on the other core while the models loaded"
    elif recipe is not None:
        recipe.check()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    t0 = time.perf_counter()
    report = RunReport([], asdict(config), None, None, started)
    if removed:
        report.notes.append(f"removed {len(removed)} temp file(s) left by an earlier run that was killed")
    if not in_process:
        how = "forked from this run's loaded models" if warm is not None else "spawned, each loading the models"
        report.notes.append(f"{min(workers, len(inputs))} worker processes, {how}{ahead_note}")
    writer = _ReportWriter(None if dry_run else claim_report_path(out_dir, config.overwrite), report, len(inputs))
    if writer.path is not None:
        report.path = str(writer.path)
        writer.write("running")
    jobs = [(i, src, dst) for i, (src, dst) in enumerate(zip(inputs, targets, strict=True))]
    halted: list[OutputError] = []  # the fatal write error, once one happened
    status = "finished"
    try:  # after a fatal write error no new image starts; those in flight are still recorded
        runs = _run_here(jobs, anonymizer, dry_run, read_config, lambda: halted) if in_process else _run_pool(
            jobs, recipe, min(workers, len(jobs)), dry_run, read_config, lambda: halted, warm, detected)
        for i, rec, fatal, meta in runs:
            if any(meta):
                report.gallery, report.model = meta
            if fatal is not None and not halted:
                halted.append(fatal)
            writer.add(i, rec)
            if on_progress:
                on_progress(rec)
    except BaseException as exc:
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"aborted: {type(exc).__name__}: {exc}"
        raise
    finally:
        exits.close()
        stop = halted[0] if halted else None
        if stop is not None:
            status = f"stopped: {stop}"
        report.seconds = time.perf_counter() - t0
        unsaved = writer.write(status)
    if stop is not None:
        written = sum(r.output is not None for r in report.images)
        where = f"listed in {writer.path}" if unsaved is None else f"the report could not be saved either ({unsaved})"
        raise OutputError(stop.path, f"{stop.reason}; stopped after {len(report.images)} of {len(inputs)} "
                                     f"image(s), {written} output(s) written, {where}")
    if unsaved is not None:
        raise OutputError(writer.path, unsaved)
    return report


def _run_here(jobs, an: Anonymizer, dry_run: bool, read_config, stopped: Callable[[], object]):
    """Yield ``(index, record, fatal error or None, (gallery, model id))`` for every job, in this process;
    no job starts once ``stopped()`` is true."""
    for i, src, dst in jobs:
        if stopped():
            return
        yield (i, *_process(an, src, dst, dry_run, read_config))


def _meta(an: Anonymizer) -> tuple[str | None, str | None]:
    return (str(an.gallery.path) if an.gallery is not None else None,
            an.model.model_id if an.model is not None else None)


def _process(an: Anonymizer, src: Path, dst: Path, dry_run: bool, read_config: ReadConfig | None,
             detected: tuple | None = None) -> tuple[ImageRecord, OutputError | None, tuple[str | None, str | None]]:
    """Read, anonymize and write one image; any failure becomes the record's error (no output: fail closed).

    ``detected``: the image's (faces, unsure regions) when they were found ahead (:class:`_DetectAhead`)."""
    t = time.perf_counter()
    fatal = None
    try:
        image = read_image(src, read_config)
        result, faces = an.anonymize_array(image, detected=detected)
        out = None if dry_run else save_output(dst, result, overwrite=an.config.overwrite)
        rec = ImageRecord(str(src), None if out is None else str(out), faces)
    except InputError as exc:
        rec = ImageRecord(str(src), None, [], error=exc.reason)
    except OutputError as exc:
        rec = ImageRecord(str(src), None, [], error=f"output not written: {exc.reason}")
        fatal = exc if exc.fatal else None
    except Exception as exc:  # noqa: BLE001 - one file's failure must not end the run; it is listed instead
        rec = ImageRecord(str(src), None, [], error=f"could not be processed ({type(exc).__name__}: "
                                                    f"{' '.join(str(exc).split())})")
    rec.seconds = round(time.perf_counter() - t, 3)
    return rec, fatal, _meta(an)


def save_output(dst: Path, image: np.ndarray, overwrite: bool) -> Path:
    """Publish an output; if another run took the name meanwhile, use ``<stem>-<pid><ext>`` beside it."""
    try:
        return write_image(dst, image, overwrite=overwrite)
    except InputError as exc:
        if overwrite or "already exists" not in exc.reason:
            raise
    return write_image(dst.with_name(f"{dst.stem}-{os.getpid()}{dst.suffix}"), image, overwrite=False)


# ----------------------------------------------------------------------------------------------- worker processes
_WORKER: dict = {}


def _init_worker(recipe: AnonymizerRecipe) -> None:
    """Runs first in each worker process: one-thread runtimes, then the models (errors kept for the tasks)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it stops, records and reports
    _exit_with_parent(os.getppid())
    try:
        use_one_thread_runtimes(force=True)
        _WORKER["anonymizer"] = recipe.build()
        use_one_thread_runtimes(force=True)
    except BaseException as exc:  # noqa: BLE001 - reported by every task, then by the parent as one error
        _WORKER["error"] = exc if isinstance(exc, PerFaceError) else PerFaceError(
            f"worker could not start: {type(exc).__name__}: {exc}")


def use_one_thread_runtimes(force: bool = False) -> None:
    """One intra-op thread for ONNX Runtime (``PERFACE_THREADS``), OpenMP/PyTorch and OpenCV, set before models
    load. Why: at batch 1 a second thread gains nothing on a quiet machine and, with other jobs on the cores,
    made a run 6x slower (docs/benchmarks/folder_memory.md); workers use the cores instead. ``force=False``
    keeps values the user set in the environment."""
    for name in THREAD_VARIABLES:
        if force or not os.environ.get(name):
            os.environ[name] = "1"
    n = int(os.environ.get("OMP_NUM_THREADS", "1") or 1) if not force else 1
    if "cv2" in sys.modules or force:
        import cv2

        cv2.setNumThreads(n)
    if "torch" in sys.modules:  # set at import by OMP_NUM_THREADS otherwise; never imported just for this
        sys.modules["torch"].set_num_threads(n)


@contextlib.contextmanager
def one_thread_runtimes():
    """:func:`use_one_thread_runtimes` for a block; the environment and thread counts are restored after it
    (a CLI run inside a longer-lived process, such as a test, leaves nothing changed)."""
    saved_env = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    torch = sys.modules.get("torch")
    saved_torch = torch.get_num_threads() if torch is not None else None
    import cv2

    saved_cv2 = cv2.getNumThreads()
    use_one_thread_runtimes()
    try:
        yield
    finally:
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        cv2.setNumThreads(saved_cv2)
        if saved_torch is not None:
            torch.set_num_threads(saved_torch)


def _exit_with_parent(parent: int, every: float = 1.0) -> None:
    """End this worker when its parent is gone (``kill -9`` of the run): it would otherwise wait forever."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="perface-parent-watch").start()


def fork_workers_possible() -> bool:
    """Whether worker processes may be forked from this one once its models are loaded (Linux, fork available,
    this process runs one Python thread, one-thread runtimes, PyTorch not loaded); otherwise they are spawned
    and each loads the models itself.

    Why: a spawned worker imports PerFace and loads its models again, about 2 s of CPU each, which on 2 cores
    was a quarter of a 30-photo run; forked ones share the parent's loaded models (copy-on-write). Forking is
    only safe without other threads: ONNX Runtime sessions with one intra-op thread have none, a PyTorch or
    multi-thread runtime would. ``PERFACE_WORKER_START=spawn`` turns it off."""
    import multiprocessing
    import threading

    from perface.backbones.runtime import threads

    if os.environ.get("PERFACE_WORKER_START", "").strip().lower() == "spawn":
        return False
    try:
        one_thread = threads() == 1 and os.environ.get("OMP_NUM_THREADS", "1").strip() in ("", "1")
    except ValueError:
        return False
    return (sys.platform == "linux" and "fork" in multiprocessing.get_all_start_methods() and one_thread
            and "torch" not in sys.modules and threading.active_count() == 1)


def _init_forked() -> None:
    """Runs first in each forked worker: the parent's loaded anonymizer is inherited; only what must not be
    shared across a fork is made afresh (the gallery's database connection)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_with_parent(os.getppid())
    try:
        use_one_thread_runtimes(force=True)
        _WORKER["anonymizer"].reconnect()
    except BaseException as exc:  # noqa: BLE001 - reported by every task, then by the parent as one error
        _WORKER["error"] = exc if isinstance(exc, PerFaceError) else PerFaceError(
            f"worker could not start: {type(exc).__name__}: {exc}")


def _work(i: int, src: Path, dst: Path, dry_run: bool, read_config: ReadConfig | None, detected: tuple | None = None):
    if "error" in _WORKER:
        raise _WORKER["error"]
    return (i, *_process(_WORKER["anonymizer"], src, dst, dry_run, read_config, detected))


class _DetectAhead:
    """While this process loads the models for the workers it will fork (about 1.5 s on one core), a forked
    child detects the first images on the other core, which would otherwise wait; the workers then skip detection
    for them. Why: on 2 cores that loading was the one stretch of a folder run with a core idle. The child holds
    only the detector (loaded before it forks); its results are those the workers would compute, on the same
    decoded pixels."""

    def __init__(self, config: DetectConfig, inputs: Sequence[Path], read_config: ReadConfig | None) -> None:
        import multiprocessing

        from perface.face.detect import get_detector

        get_detector(config.backend, config.precision)  # in the child already
        ctx = multiprocessing.get_context("fork")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_detect_ahead_child, args=(config, list(inputs), read_config, child),
                                 daemon=True, name="perface-detect-ahead")
        self._proc.start()
        child.close()

    def collect(self) -> dict[int, tuple]:
        """Stop the child after the image it is on; the detections it sent, by input index (empty on failure)."""
        out: dict[int, tuple] = {}
        with contextlib.suppress(OSError, ValueError):  # the child may have finished every input already
            self._conn.send("stop")
        with contextlib.suppress(OSError, EOFError, ValueError):
            while True:
                i, found = self._conn.recv()
                out[i] = found
        self._conn.close()
        self._proc.join(timeout=30)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join()
        return out


def _detect_ahead_child(config, inputs: list[Path], read_config: ReadConfig | None, conn) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's
    _detect_ahead(config, inputs, read_config, conn)


def _detect_ahead(config, inputs: list[Path], read_config: ReadConfig | None, conn) -> None:
    """What the detect-ahead child does: detect the inputs in order, sending ``(index, (faces, unsure))``, until
    told to stop (an unreadable input is left to its worker, which reports it)."""
    from perface.face.detect import detect_with_unsure

    try:
        for i, src in enumerate(inputs):
            if conn.poll():  # the stop message, read so that closing leaves nothing unread (a reset, not an EOF);
                with contextlib.suppress(EOFError, OSError):  # or the parent is gone
                    conn.recv()
                break
            try:
                found = detect_with_unsure(read_image(src, read_config), config)
            except Exception:  # noqa: BLE001, S112 - the worker reads it again and reports what is wrong
                continue
            conn.send((i, found))
    finally:
        conn.close()


def _run_pool(jobs, recipe: AnonymizerRecipe, workers: int, dry_run: bool, read_config, stopped,
              warm: Anonymizer | None = None, detected: dict[int, tuple] | None = None):
    """Jobs through a process pool, at most two per worker in flight (memory stays flat however many files).

    ``warm``: an anonymizer with its models loaded, which forked workers inherit (:func:`fork_workers_possible`
    is checked again for every pool); without it workers are spawned and build their own from ``recipe``.
    A worker that dies (killed, out of memory) fails only the images it had in flight; a fresh pool goes on."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    todo = list(reversed(jobs))
    restarts = 0
    while todo and not stopped():
        if warm is not None and fork_workers_possible():
            _WORKER.clear()
            _WORKER["anonymizer"] = warm  # inherited by the forked workers
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"),
                                       initializer=_init_forked)
        else:
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=_init_worker, initargs=(recipe,))
        pending: dict = {}
        broken = False
        try:
            while todo or pending:
                while todo and len(pending) < 2 * workers and not broken and not stopped():
                    i, src, dst = todo.pop()
                    found = (detected or {}).pop(i, None)
                    pending[pool.submit(_work, i, src, dst, dry_run, read_config, found)] = (i, src)
                if not pending:
                    break
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    i, src = pending.pop(fut)
                    try:
                        yield fut.result()
                    except BrokenProcessPool:
                        broken = True
                        yield i, ImageRecord(str(src), None, [], error="could not be processed (its worker "
                                             "process died)"), None, (None, None)
                    except PerFaceError:
                        raise
                    except Exception as exc:  # noqa: BLE001
                        yield i, ImageRecord(str(src), None, [], error=f"could not be processed "
                                             f"({type(exc).__name__}: {exc})"), None, (None, None)
                if broken and not pending:
                    break
        finally:
            for fut in pending:
                fut.cancel()
            with contextlib.suppress(Exception):
                pool.shutdown(wait=True, cancel_futures=True)
            _WORKER.clear()
        if broken:
            restarts += 1
            if restarts > 3 and not stopped():
                for i, src, _ in reversed(todo):
                    yield i, ImageRecord(str(src), None, [], error="not processed (worker processes kept dying)"
                                         ), None, (None, None)
                return
