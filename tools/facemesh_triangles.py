"""Write src/perface/models/tfjs/facemesh/triangles.npy: the triangulation of FaceMesh's 468 points that the mesh
swap (:mod:`perface.anonymize.mesh_swap`) fills triangle by triangle.

Why a fixed one: a Delaunay triangulation per donor costs about 40 ms (cv2.Subdiv2D and matching its vertices back),
and one shared by every face makes a swap depend only on its two faces. It is the Delaunay triangulation of the mean
frontal layout of the bundled gallery's donors (each mesh's x, y aligned to the first by a 2-D similarity fit), with
its triangles counter-clockwise in image axes. Deterministic: running it again writes the same file.

    python tools/facemesh_triangles.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from perface.anonymize.anonymizer import default_gallery_path  # noqa: E402
from perface.anonymize.gallery import Gallery  # noqa: E402
from perface.anonymize.mesh_swap import donor_box_and_eyes, signed_areas  # noqa: E402
from perface.anonymize.swap import _delaunay  # noqa: E402
from perface.face.mesh import face_mesh  # noqa: E402

OUT = REPO / "src" / "perface" / "models" / "tfjs" / "facemesh" / "triangles.npy"


def main() -> None:
    gallery = Gallery.open(default_gallery_path(), readonly=True)
    layouts = []
    for donor_id in sorted(gallery.ids(), key=int):
        d = gallery.get(donor_id)
        mesh = face_mesh(d.crop_rgb(), *donor_box_and_eyes(d.landmarks))
        if mesh.score >= 0.9:
            layouts.append(mesh.points[:, :2])
    ref = layouts[0]
    aligned = []
    for pts in layouts:
        m, _ = cv2.estimateAffinePartial2D(pts.astype(np.float32), ref.astype(np.float32), method=cv2.LMEDS)
        aligned.append(pts @ m[:, :2].T + m[:, 2])
    mean = np.mean(aligned, axis=0)
    tri = _delaunay(mean)
    flip = signed_areas(mean, tri) < 0
    tri[flip] = tri[flip][:, [0, 2, 1]]
    np.save(OUT, tri.astype(np.int16))
    print(f"{len(layouts)} donor meshes, {len(tri)} triangles -> {OUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
