"""What the detector found, drawn on the image: faces and unsure regions with their scores (``--draw-scores``)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from perface.face.detect import Face

FACE_COLOUR = (40, 200, 40)
UNSURE_COLOUR = (255, 140, 0)


def draw_detections(image: np.ndarray, faces: Sequence[Face], unsure: Sequence[Face] = ()) -> np.ndarray:
    """A copy of an RGB image with each face boxed in green and each unsure region in orange, labelled with its
    score (and its rotation when turned), and the five landmarks of the faces as dots."""
    out = np.ascontiguousarray(image.copy())
    thick = max(1, round(max(image.shape[:2]) / 800))
    for f, colour in [(f, FACE_COLOUR) for f in faces] + [(u, UNSURE_COLOUR) for u in unsure]:
        x1, y1, x2, y2 = (int(round(v)) for v in f.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thick)
        label = f"{f.score:.2f}" + (f" r{f.rotation}" if f.rotation else "") + ("?" if colour == UNSURE_COLOUR else "")
        cv2.putText(out, label, (x1, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thick, colour, thick,
                    cv2.LINE_AA)
        if colour == FACE_COLOUR:
            for x, y in np.asarray(f.landmarks):
                cv2.circle(out, (int(round(x)), int(round(y))), thick + 1, colour, -1)
    return out
