"""The privacy report of an anonymization run: what happened to every face of every image, and totals."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from perface.face.io import atomic_write

REPORT_NAME = "perface-report.json"


@dataclass
class FaceRecord:
    """What happened to one face (the per-face part of the privacy report)."""

    box: list[float]
    score: float
    method: str
    reason: str | None = None
    group: str | None = None
    donor_id: str | None = None
    tries: int = 0
    perceptual_similarity_donor: float | None = None  # original face vs chosen donor (before)
    perceptual_similarity_after: float | None = None  # original face vs output face
    identity_similarity_donor: float | None = None
    identity_similarity_after: float | None = None
    recognizers_donor: dict[str, float | None] | None = None  # each consulted recognizer: face vs chosen donor
    recognizers_after: dict[str, float | None] | None = None  # each consulted recognizer: face vs output
    gender_kept: bool | None = None  # predicted gender of the output equals the original's (None: not checked)
    age_group_kept: bool | None = None  # likewise for the predicted age group
    skin_lightness_gap: float | None = None  # donor's skin lightness minus the face's (LAB L, 0-255)
    softened: float | None = None  # a swap blurred inside the face to pass the identity checks: its sigma / size
    blurred_around: bool = False  # a swap laid over the blurred face region to pass them (``blur_around``)
    rotation: int = 0  # the face's orientation as detected (0, 90, 180, 270; swapped upright when turned)
    kind: str = "face"  # "face", or "unsure": a region scored just below the detection threshold, hidden anyway
    left_unanonymized: bool = False  # its box came out of the anonymizer with unchanged pixels


@dataclass
class ImageRecord:
    """The report entry for one input file."""

    input: str
    output: str | None
    faces: list[FaceRecord]
    error: str | None = None
    seconds: float = 0.0


def rounded(v: float | None) -> float | None:
    """A report figure: 4 decimals, None stays None."""
    return None if v is None else round(float(v), 4)



@dataclass
class RunReport:
    """The privacy report of one ``perface anonymize`` run."""

    images: list[ImageRecord]
    config: dict
    gallery: str | None
    model: str | None
    started: str
    seconds: float = 0.0
    # "running" while the run goes (the report is rewritten as images finish), then "finished", "interrupted",
    # "stopped: <why>" (e.g. a full disk) or "aborted: <error>"; a report left "running" means the run was killed.
    status: str = "finished"
    inputs: int | None = None  # files the run was given (images lists those done so far)
    notes: list[str] = field(default_factory=list)
    path: str | None = None  # where this report is written (perface-report-<k>.json when the name was taken)

    def totals(self) -> dict[str, int]:
        records = [f for im in self.images for f in im.faces]
        faces = [f for f in records if f.kind == "face"]
        return {
            "images": len(self.images),
            "images_failed": sum(im.error is not None for im in self.images),
            "images_written": sum(im.output is not None for im in self.images),
            "faces_found": len(faces),
            "faces_swapped": sum(f.method == "swap" for f in faces),
            "faces_swapped_softened": sum(f.method == "swap" and f.softened is not None for f in faces),
            "faces_swapped_blurred_around": sum(f.method == "swap" and f.blurred_around for f in faces),
            "faces_fallen_back": sum(f.method != "swap" and f.reason != "requested" for f in faces),
            "faces_obscured_on_request": sum(f.reason == "requested" for f in faces),
            "unsure_regions_hidden": sum(f.kind == "unsure" and not f.left_unanonymized for f in records),
            "faces_left_unanonymized": sum(f.left_unanonymized for f in faces),
        }

    def to_dict(self) -> dict:
        return {"perface_report": 1, "started": self.started, "seconds": round(self.seconds, 2),
                "status": self.status, "pid": os.getpid(), "inputs": self.inputs, "notes": self.notes,
                "model": self.model, "gallery": self.gallery, "config": self.config, "totals": self.totals(),
                "failed": [{"input": im.input, "error": im.error} for im in self.images if im.error is not None],
                "images": [asdict(im) for im in self.images]}

    def save(self, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
        p = Path(path)
        with atomic_write(p, overwrite=overwrite, what="report") as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2))
        return p
