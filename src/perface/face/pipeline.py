"""The face pipeline end to end: decode, detect, align, embed (identity and, when loaded, perceptual)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from perface.face.align import dlib_chip
from perface.face.detect import DetectConfig, Face, detect
from perface.face.identity import IdentityEmbedder, cosine_similarity, get_embedder
from perface.face.io import InputError, ReadConfig, read_image


@dataclass
class AnalyzedFace:
    """A detected face with its dlib chip and identity embedding."""

    face: Face
    chip: np.ndarray = field(repr=False)
    identity: np.ndarray = field(repr=False)


@dataclass
class AnalyzedImage:
    """All faces found in one image file."""

    path: str
    width: int
    height: int
    faces: list[AnalyzedFace]

    @property
    def largest(self) -> AnalyzedFace | None:
        """The biggest face: the subject when a photo is compared as a whole."""
        return max(self.faces, key=lambda f: f.face.width * f.face.height, default=None)


def analyze_array(
    image: np.ndarray,
    detect_config: DetectConfig | None = None,
    embedder: IdentityEmbedder | None = None,
    path: str = "<array>",
) -> AnalyzedImage:
    """Detect, align and embed every face of an RGB image."""
    faces = detect(image, detect_config)
    emb = embedder or get_embedder()
    chips = [dlib_chip(image, f).crop for f in faces]
    vecs = emb.embed_chips(chips)
    return AnalyzedImage(
        path=path, width=image.shape[1], height=image.shape[0],
        faces=[AnalyzedFace(f, c, v) for f, c, v in zip(faces, chips, vecs, strict=True)],
    )


def analyze_file(
    path: str | os.PathLike[str],
    detect_config: DetectConfig | None = None,
    embedder: IdentityEmbedder | None = None,
    read_config: ReadConfig | None = None,
) -> AnalyzedImage:
    """:func:`analyze_array` on an image file (raises :class:`InputError` for unusable files)."""
    image = read_image(path, read_config)
    return analyze_array(image, detect_config, embedder, path=str(path))


@dataclass(frozen=True)
class Comparison:
    """Similarity of the main faces of two images."""

    path_a: str
    path_b: str
    identity_similarity: float
    same_person: bool
    perceptual_similarity: float | None = None
    #: every recognizer's verdict: name -> {"score", "threshold" (FAR 0.1%), "same_person"}
    recognizers: dict[str, dict] = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}
        out["recognizers"] = {n: {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}
                              for n, r in self.recognizers.items()}
        return out


def compare_files(
    path_a: str | os.PathLike[str],
    path_b: str | os.PathLike[str],
    detect_config: DetectConfig | None = None,
    perceptual=None,
    recognizers: Sequence[str] = (),
) -> Comparison:
    """Compare the largest face of each image; raises :class:`InputError` when one has no face.

    ``recognizers`` (names from :data:`perface.face.recognizers.RECOGNIZERS`) adds each one's score and its
    same-person verdict at its calibrated FAR 0.1% threshold."""
    from perface.face.identity import SAME_PERSON_COSINE

    a, b = analyze_file(path_a, detect_config), analyze_file(path_b, detect_config)
    fa, fb = a.largest, b.largest
    for img, f in ((a, fa), (b, fb)):
        if f is None:
            raise InputError(img.path, "no face found")
    sim = float(cosine_similarity(fa.identity, fb.identity))
    psim = None
    if perceptual is not None:  # a PerFaceModel: it aligns its own views from the image and the face
        from perface.face.io import read_image as _read

        e = perceptual.embed([(_read(path_a), fa.face), (_read(path_b), fb.face)])
        psim = float(e[0] @ e[1])
    verdicts: dict[str, dict] = {}
    if recognizers:
        from perface.face.recognizers import get_recognizer

        images = (read_image(path_a), read_image(path_b))
        for name in recognizers:
            rec = get_recognizer(name)
            ea, eb = rec.embed(images[0], [fa.face]), rec.embed(images[1], [fb.face])
            score, th = float(rec.score(ea, eb)[0]), rec.threshold("far_1e-3")
            verdicts[name] = {"score": score, "threshold": th, "same_person": score >= th}
    return Comparison(str(path_a), str(path_b), sim, sim >= SAME_PERSON_COSINE, psim, verdicts)


@dataclass
class EmbedResult:
    """Embeddings of many files: one row per face, with the file each came from."""

    paths: list[str]
    face_index: list[int]
    boxes: np.ndarray
    embeddings: np.ndarray
    failed: list[tuple[str, str]]

    def save(self, out: str | os.PathLike[str], overwrite: bool = False) -> Path:
        """Write an .npz (paths, face_index, boxes, embeddings); never replaces a file unless asked."""
        from perface.face.io import atomic_write

        p = Path(out)
        if p.suffix != ".npz":
            raise InputError(p, "output must end in .npz")
        with atomic_write(p, overwrite=overwrite, suffix=".npz") as tmp:
            np.savez(tmp, paths=np.array(self.paths), face_index=np.array(self.face_index, dtype=np.int32),
                     boxes=self.boxes.astype(np.float32), embeddings=self.embeddings.astype(np.float32))
        return p


def embed_paths(
    paths: Iterable[Path],
    detect_config: DetectConfig | None = None,
    on_progress: Callable[[str, str | None], None] | None = None,
) -> EmbedResult:
    """Embed every face of every file; unreadable files are skipped and listed in ``failed``."""
    rows_p, rows_i, boxes, vecs, failed = [], [], [], [], []
    for p, res in analyze_files_overlapped(paths, detect_config):
        if isinstance(res, InputError):
            failed.append((str(p), res.reason))
            if on_progress:
                on_progress(str(p), res.reason)
            continue
        for i, f in enumerate(res.faces):
            rows_p.append(str(p))
            rows_i.append(i)
            boxes.append(f.face.box)
            vecs.append(f.identity)
        if on_progress:
            on_progress(str(p), None)
    return EmbedResult(
        rows_p, rows_i, np.array(boxes, dtype=np.float32).reshape(-1, 4),
        np.array(vecs, dtype=np.float32).reshape(-1, 128), failed,
    )


def analyze_files_overlapped(
    paths: Iterable[Path],
    detect_config: DetectConfig | None = None,
    embedder: IdentityEmbedder | None = None,
    batch_size: int = 16,
    read_config: ReadConfig | None = None,
    detect_workers: int | None = None,
) -> Iterator[tuple[Path, AnalyzedImage | InputError]]:
    """Like :func:`analyze_file` over many files, with decoding+detection and embedding overlapped.

    ``detect_workers`` threads (default: one per core, at most 2) decode, detect and align images at once
    while the caller's thread embeds batches of chips; onnxruntime and torch release the GIL, so the stages
    use every core (the detector's session has one thread, so two images in flight fill two cores). Results
    keep input order and do not depend on the worker count; an unreadable file yields its
    :class:`InputError` instead of raising.
    """
    import queue
    import threading
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    emb = embedder or get_embedder()
    workers = max(1, detect_workers or min(2, os.cpu_count() or 1))
    q: queue.Queue = queue.Queue(maxsize=2 * batch_size)
    done = object()
    align_lock = threading.Lock()  # dlib's shape predictor is shared; aligning is cheap, so serialise it

    def prepare(p: Path) -> tuple:
        try:
            image = read_image(p, read_config)
            faces = detect(image, detect_config)
            with align_lock:
                chips = [dlib_chip(image, f).crop for f in faces]
            return p, image.shape, faces, chips
        except InputError as exc:
            return p, None, exc, None
        except Exception as exc:  # noqa: BLE001 - one file's failure is listed; the run goes on
            return p, None, InputError(p, f"could not be processed ({type(exc).__name__}: "
                                          f"{' '.join(str(exc).split())})"), None

    def produce() -> None:
        with ThreadPoolExecutor(workers, thread_name_prefix="perface-detect") as pool:
            window: deque = deque()  # at most 2 images per worker in flight: bounded memory, input order
            for p in paths:
                window.append(pool.submit(prepare, p))
                if len(window) >= 2 * workers:
                    q.put(window.popleft().result())
            while window:
                q.put(window.popleft().result())
        q.put(done)

    threading.Thread(target=produce, daemon=True, name="perface-detect").start()
    pending: list[tuple] = []
    finished = False
    while not finished or pending:
        if not finished:
            item = q.get()
            if item is done:
                finished = True
            else:
                pending.append(item)
            n_chips = sum(len(cs or []) for *_, cs in pending)
            # Flush a full batch, or whatever is waiting once the producer has nothing ready.
            if not finished and n_chips < batch_size and not q.empty():
                continue
        chips = [c for *_, cs in pending for c in (cs or [])]
        vecs = emb.embed_chips(chips)
        k = 0
        for p, shape, faces, cs in pending:
            if cs is None:
                if isinstance(faces, InputError):
                    yield p, faces
                    continue
                raise faces
            n = len(cs)
            yield p, AnalyzedImage(
                path=str(p), width=shape[1], height=shape[0],
                faces=[AnalyzedFace(f, c, v) for f, c, v in zip(faces, cs, vecs[k : k + n], strict=True)],
            )
            k += n
        pending = []
