"""perface.face.pipeline: the overlapped runner's results do not depend on how many images are detected at once."""

from __future__ import annotations

import numpy as np
from PIL import Image

from perface.face.io import InputError
from perface.face.pipeline import analyze_file, analyze_files_overlapped


def test_overlapped_runner_same_results_for_any_worker_count(astronaut, group_image_path, tmp_path):
    Image.fromarray(astronaut).save(tmp_path / "a.png")
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    paths = [tmp_path / "a.png", group_image_path, tmp_path / "bad.jpg", tmp_path / "a.png"]
    runs = {w: list(analyze_files_overlapped(paths, detect_workers=w, batch_size=2)) for w in (1, 2)}
    assert [p for p, _ in runs[1]] == [p for p, _ in runs[2]] == paths  # input order kept
    assert isinstance(runs[2][2][1], InputError)
    one = analyze_file(group_image_path)
    assert len(one.faces) >= 3
    for (_, a), (_, b) in zip(runs[1], runs[2], strict=True):
        if isinstance(a, InputError):
            assert isinstance(b, InputError)
            continue
        assert [f.face.box for f in a.faces] == [f.face.box for f in b.faces]
        np.testing.assert_allclose(np.array([f.identity for f in a.faces]),
                                   np.array([f.identity for f in b.faces]), atol=1e-6)
    assert [f.face.box for f in runs[2][1][1].faces] == [f.face.box for f in one.faces]
