"""perface.face.detect on a real face, on no face, many faces, tiny faces and faces cut by the border."""

from __future__ import annotations

import numpy as np
import pytest

from perface.face.detect import detect, five_from_68

ASTRONAUT_BOX = (177, 76, 270, 170)


def _iou(a, b) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.parametrize("backend", ["centerface", "hog"])
def test_astronaut_one_face(astronaut, backend):
    faces = detect(astronaut, backend=backend)
    assert len(faces) == 1
    f = faces[0]
    assert _iou(f.box, ASTRONAUT_BOX) > 0.5
    left_eye, right_eye, nose, ml, mr = f.landmarks
    assert left_eye[0] < right_eye[0] and ml[0] < mr[0]
    assert left_eye[1] < nose[1] < ml[1]


@pytest.mark.parametrize("backend", ["centerface", "hog"])
def test_no_face(backend):
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    assert detect(np.full((240, 320, 3), 128, np.uint8), backend=backend) == []
    assert len(detect(noise, backend=backend)) == 0


def test_many_faces(group_image_path):
    from perface.face.io import read_image

    img = read_image(group_image_path)
    faces = detect(img)
    assert len(faces) == 3
    assert faces[0].score >= faces[-1].score


def test_tiny_face_and_min_size(astronaut):
    import cv2

    small = cv2.resize(astronaut, (128, 128), interpolation=cv2.INTER_AREA)  # face about 24 px
    faces = detect(small)
    assert len(faces) == 1 and 15 < faces[0].size < 40
    assert detect(small, min_size=50) == []


def test_face_cut_by_border(astronaut):
    cut = astronaut[110:400, 215:500]  # left half of the face and the forehead cut away
    faces = detect(cut)
    assert len(faces) >= 1
    b = faces[0].box
    assert b[0] >= 0 and b[1] >= 0 and b[2] <= cut.shape[1] and b[3] <= cut.shape[0]


def test_dense_landmarks(astronaut):
    f = detect(astronaut, dense_landmarks=True)[0]
    assert f.landmarks68.shape == (68, 2)
    assert np.abs(five_from_68(f.landmarks68)[:2] - f.landmarks[:2]).max() < 8


def test_rejects_bad_array():
    with pytest.raises(ValueError):
        detect(np.zeros((10, 10), np.uint8))


@pytest.mark.parametrize(("option", "value"), [
    ("threshold", 0.0), ("threshold", 1.0), ("threshold", -0.2), ("threshold", 1.5), ("threshold", float("nan")),
    ("threshold", "0.5"), ("unsure_threshold", float("nan")), ("unsure_threshold", 1.2),
    ("recheck_threshold", 0.0), ("max_side", 16), ("max_side", 100.5), ("min_size", -1.0),
    ("min_size", float("inf")), ("nms_iou", 0.0), ("nms_iou", 1.01), ("tile_side", 32), ("tile_overlap", -1),
    ("tile_overlap", 2000), ("upsample", 0.5), ("rotations", (45,)), ("rotations", ()), ("rotations", "all"),
    ("rotation_scale", 0.0), ("recheck_max", -1), ("backend", "yolo"), ("small_face_px", -1.0),
    ("small_face_px", float("nan")), ("small_rotation_scale", 0.0), ("small_rotation_scale", 1.5),
    ("cross_rotation_overlap", 0.0), ("cross_rotation_overlap", 1.5), ("cross_rotation_overlap", float("nan")),
])
def test_config_refuses_nonsense(option, value):
    from perface.face.detect import DetectConfig

    with pytest.raises(ValueError, match=option):
        DetectConfig(**{option: value})


def test_bad_threshold_through_detect(astronaut):
    with pytest.raises(ValueError, match="threshold"):
        detect(astronaut, threshold=float("nan"))


def test_config_accepts_edges():
    from perface.face.detect import DetectConfig

    DetectConfig(threshold=0.01, nms_iou=1.0, min_size=0, max_side=32, unsure_threshold=None,
                 recheck_threshold=None, rotations=[0, 180])
    assert DetectConfig(rotations=[0, 90]).rotations == (0, 90)


def test_face_records_rotation(astronaut):
    f = detect(astronaut)[0]
    assert f.rotation == 0 and f.to_dict()["rotation"] == 0


def test_hog_unsure(astronaut):
    from perface.face.detect import detect_with_unsure

    faces, unsure = detect_with_unsure(astronaut, backend="hog", unsure_threshold=0.3)
    assert len(faces) == 1 and [f.box for f in faces] == [f.box for f in detect(astronaut, backend="hog")]
    assert all(0.3 <= u.score < faces[0].score for u in unsure)
    assert all(_iou(u.box, faces[0].box) < 0.3 for u in unsure)
    assert detect_with_unsure(astronaut, backend="hog", unsure_threshold=None)[1] == []


def test_folded_model_matches_the_file():
    """The ONNX edit (weights no longer listed as graph inputs) keeps the network's outputs."""
    import onnxruntime as ort

    from perface.face.detect import _model_path, strip_initializer_inputs

    raw = open(_model_path("centerface.onnx"), "rb").read()  # noqa: SIM115
    fixed = strip_initializer_inputs(raw)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    a = ort.InferenceSession(raw, sess_options=opts, providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(fixed, sess_options=opts, providers=["CPUExecutionProvider"])
    assert _graph_inputs(raw) > 100 and _graph_inputs(fixed) == 1  # input.1 and the weights, then input.1
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, 96, 128)).astype(np.float32)
    for u, v in zip(a.run(None, {"input.1": x}), b.run(None, {"input.1": x}), strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-3, atol=1e-4)
    pytest.importorskip("onnx")
    import onnx

    model = onnx.load_from_string(fixed)
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == ["input.1"]
    assert len(model.graph.initializer) == len(onnx.load_from_string(raw).graph.initializer)


def _graph_inputs(model: bytes) -> int:
    from perface.face.detect import _fields

    graph = next(model[a:b] for n, w, _, _, a, b in _fields(model) if n == 7)
    return sum(1 for n, w, *_ in _fields(graph) if n == 11)


def _ordinary_photos(astronaut, group_image_path):
    from pathlib import Path

    from perface.face.io import read_image

    chips = sorted((Path(__file__).resolve().parents[1] / "data" / "chips").glob("*.jpg"))
    return [astronaut, read_image(group_image_path)] + [read_image(p) for p in chips]


@pytest.mark.parametrize("threshold", [0.5, 0.4])
def test_ordinary_photos_keep_the_whole_image_pass(astronaut, group_image_path, threshold):
    """Tiles, turned copies and the re-check only add faces: on ordinary photos every face is the plain
    whole-image pass's, with exactly its box, landmarks and score (what alignment was measured with)."""
    from perface.face.detect import DetectConfig, get_detector

    det = get_detector("centerface")
    cfg = DetectConfig(threshold=threshold)
    photos = _ordinary_photos(astronaut, group_image_path)
    assert len(photos) >= 10
    for img in photos:
        whole = det.whole_pass(img, cfg, threshold)
        faces = detect(img, cfg)
        assert len(faces) == len(whole.scores)
        for f in faces:
            j = int(np.argmin(np.abs(whole.boxes[:, 0] - f.box[0]) + np.abs(whole.boxes[:, 1] - f.box[1])))
            h, w = img.shape[:2]
            clipped = np.clip(whole.boxes[j], 0, [w, h, w, h])
            assert np.array_equal(np.float32(f.box), clipped) and np.array_equal(f.landmarks, whole.lms[j])
            assert f.score == pytest.approx(float(whole.scores[j])) and f.rotation == 0
        # the same as with every extra view turned off
        plain = detect(img, cfg, tiles=False, rotations=(0,), recheck_threshold=None)
        assert [f.box for f in plain] == [f.box for f in faces]


def test_upright_layout_and_yaw():
    from perface.face.detect import five_point_yaw, upright_layout

    box = (0, 0, 100, 120)
    frontal = np.array([[30, 45], [70, 45], [50, 70], [35, 92], [65, 92]], np.float32)
    assert upright_layout(frontal, box) and abs(five_point_yaw(frontal)) < 1
    assert not upright_layout(frontal[[3, 4, 2, 0, 1]], box)  # mouth above the eyes: a face upside down
    profile = frontal.copy()
    profile[2, 0] = 72  # the nose tip beyond the right eye
    mirrored = (profile * [-1, 1] + [100, 0])[[1, 0, 2, 4, 3]]  # the same face seen in a mirror
    assert five_point_yaw(profile) > 80 and five_point_yaw(mirrored) < -80
    half = frontal.copy()
    half[2, 0] = 60  # halfway to the eye: 30 degrees
    assert 25 < five_point_yaw(half) < 35


@pytest.mark.parametrize("k", [1, 2, 3])
def test_turn_face_moves_box_and_landmarks(astronaut, k):
    from perface.face.detect import turn_face

    f = detect(astronaut)[0]
    turned = np.ascontiguousarray(np.rot90(astronaut, k))
    g = turn_face(f, k, astronaut.shape)
    x, y = (int(v) for v in g.landmarks[2])  # the nose tip is the same pixel
    assert np.array_equal(turned[y, x], astronaut[int(f.landmarks[2][1]), int(f.landmarks[2][0])]) or k
    assert g.rotation == (-90 * k) % 360 and abs(g.width * g.height - f.width * f.height) < 1
    back = turn_face(g, -k, turned.shape)
    np.testing.assert_allclose(back.box, f.box, atol=1e-3)
    np.testing.assert_allclose(back.landmarks, f.landmarks, atol=1e-3)


@pytest.mark.parametrize("shape", [(1, 10000), (5, 10000), (10000, 1), (10000, 5), (1, 1), (2, 3), (31, 17),
                                   (33, 4000), (4000, 33)])
def test_extreme_shapes_never_crash(shape):
    from perface.face.detect import detect_with_unsure

    img = np.random.default_rng(sum(shape)).integers(0, 255, (*shape, 3), dtype=np.uint8)
    faces, unsure = detect_with_unsure(img)
    assert faces == [] and all(u.size >= 8 for u in unsure)
    assert detect(img, backend="hog") == []


def test_rotations_must_hold_upright():
    from perface.face.detect import DetectConfig

    with pytest.raises(ValueError, match="rotations"):
        DetectConfig(rotations=(90, 180))


def test_detector_session_one_thread_no_spinning():
    """The CenterFace session: $PERFACE_THREADS or one thread, and no spin-waiting (on shared cores a
    spinning pool burnt about twice the CPU time for the same detections)."""
    from perface.backbones.runtime import threads
    from perface.face.detect import CenterFaceDetector

    opts = CenterFaceDetector().session.get_session_options()
    assert opts.intra_op_num_threads == threads()  # 1 unless $PERFACE_THREADS says otherwise
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert CenterFaceDetector(threads=2).session.get_session_options().intra_op_num_threads == 2


@pytest.mark.parametrize("k", [0, 1, 2])
def test_turn_shortcut_gives_the_full_looks_result(astronaut, group_image_path, k):
    """turn() skips the turned looks when the upright one scores above 1 - turn_margin: the faces come out as
    when all four orientations are looked at and the documented rule applied."""
    from perface.face.detect import DetectConfig, get_detector, upright_layout
    from perface.face.io import read_image

    det = get_detector("centerface")
    cfg = DetectConfig()
    for img in (np.ascontiguousarray(np.rot90(astronaut, k)), read_image(group_image_path)):
        whole = det.whole_pass(img, cfg, cfg.threshold)
        sure = whole.scores >= cfg.threshold
        faces = type(whole)(whole.boxes[sure], whole.scores[sure], whole.lms[sure], whole.rot[sure])
        got, n = det.turn(img, faces, cfg)
        assert n == len(faces.scores) > 0
        for i, b in enumerate(faces.boxes):  # the rule with every look run
            c = max(float(max(b[2] - b[0], b[3] - b[1])) * det.recheck_context, 24.0)
            each: dict[int, float] = {}
            best = det._look(img, b, c, det.recheck_side, [0, 1, 2, 3], cfg, each)
            stays = best is None or best[3] == 0 or (
                upright_layout(faces.lms[i], b) and best[0] - each.get(0, 0.0) < det.turn_margin)
            if stays:
                assert np.array_equal(got.boxes[i], b) and got.rot[i] == 0
            else:
                assert got.rot[i] == best[3] and got.scores[i] == max(float(faces.scores[i]), best[0])


def test_small_scene_trigger():
    """Turned copies at full resolution only when the upright passes found a face narrower than small_face_px."""
    from perface.face.detect import CenterFaceDetector, DetectConfig, _Cands

    def found(side: float, score: float) -> _Cands:
        return _Cands(np.array([[10, 10, 10 + side, 10 + side * 1.2]], np.float32), np.array([score], np.float32),
                      np.zeros((1, 5, 2), np.float32), np.zeros(1, np.int64))

    cfg = DetectConfig(threshold=0.4)
    views = CenterFaceDetector.small_scene_views(480, 640, cfg, found(30, 0.9))
    assert sorted(v.rotation for v in views) == [90, 180, 270] and all(v.scale == 1.0 for v in views)
    assert CenterFaceDetector.small_scene_views(480, 640, cfg, found(60, 0.9)) == []  # no small face
    assert CenterFaceDetector.small_scene_views(480, 640, cfg, found(30, 0.3)) == []  # not a face
    assert CenterFaceDetector.small_scene_views(480, 640, cfg, _Cands.empty()) == []
    off = DetectConfig(threshold=0.4, small_rotation_scale=None)
    assert CenterFaceDetector.small_scene_views(480, 640, off, found(30, 0.9)) == []
    assert CenterFaceDetector.small_scene_views(480, 640, DetectConfig(rotations=(0,)), found(30, 0.9)) == []


def test_small_scene_runs_finer_turned_copies_portraits_unchanged(astronaut):
    """A scene holding a small face pays for full-resolution turned copies; a portrait keeps the old cost and
    exactly the old detections."""
    import cv2

    from perface.face.detect import detect_with_unsure

    def run(img, **kw):
        stats: dict = {}
        return detect_with_unsure(img, threshold=0.4, stats=stats, **kw), stats["work_640"]

    (faces, unsure), work = run(astronaut)
    (faces0, unsure0), work0 = run(astronaut, small_rotation_scale=None)
    assert work == work0 and [f.to_dict() for f in faces + unsure] == [f.to_dict() for f in faces0 + unsure0]
    scene = np.full((480, 640, 3), 110, np.uint8)
    small = cv2.resize(astronaut[40:200, 150:300], (54, 58), interpolation=cv2.INTER_AREA)  # a face ~32 px wide
    scene[60:118, 60:114] = small
    scene[300:354, 400:454] = np.rot90(small[:54, :54], 1)
    (faces, _), work = run(scene)
    (faces0, _), work0 = run(scene, small_rotation_scale=None)
    assert min(f.width for f in faces) < 48 and work > 1.5 * work0
    assert sorted(f.rotation for f in faces) == [0, 270]  # the turned copy is found, turned back upright


def test_precision_is_checked():
    from perface.face.detect import CenterFaceDetector, DetectConfig

    with pytest.raises(ValueError, match="precision"):
        DetectConfig(precision="fp16")
    with pytest.raises(ValueError, match="precision"):
        CenterFaceDetector(precision="int4")
    mixed, fp32 = CenterFaceDetector(precision="mixed"), CenterFaceDetector(precision="fp32")
    assert mixed.session is not mixed.fine and fp32.session is fp32.fine
    x = np.zeros((1, 64, 64, 3), np.float32)
    np.testing.assert_array_equal(mixed._run(x, fine=True)[0], fp32._run(x)[0])  # the float graph, exactly


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_int8_graph_finds_what_the_float_graph_finds(astronaut, group_image_path, k):
    """The 8-bit CenterFace and the float one find the same faces, turned the same way, with close boxes and
    scores; the default ("mixed") runs the 8-bit graph on the upright passes and the float one on the rest."""
    from perface.face.detect import DetectConfig, detect_with_unsure, get_detector
    from perface.face.io import read_image

    assert get_detector("centerface").precision == "mixed" == DetectConfig().precision
    assert get_detector("centerface", "fp32").precision == "fp32"
    for img in (np.ascontiguousarray(np.rot90(astronaut, k)), np.ascontiguousarray(
            np.rot90(read_image(group_image_path), k))):
        q, _ = detect_with_unsure(img, DetectConfig(threshold=0.4, precision="int8"))
        f, _ = detect_with_unsure(img, DetectConfig(threshold=0.4, precision="fp32"))
        assert len(q) == len(f) > 0
        for a in q:
            b = max(f, key=lambda x: _iou(a.box, x.box))
            assert _iou(a.box, b.box) > 0.8 and a.rotation == b.rotation
            assert abs(a.score - b.score) < 0.15


@pytest.mark.parametrize("raise_scores", [True, False])
def test_recheck_raises_an_uncertain_candidate_into_the_unsure_band(monkeypatch, raise_scores):
    """An uncertain candidate whose zoomed look scores higher (yet below the threshold) takes that score when
    ``recheck_raise`` is on, so it becomes an unsure region; off, it keeps its own score."""
    from perface.face.detect import CenterFaceDetector, DetectConfig, _Cands

    det = CenterFaceDetector()
    box, lms = np.array([10, 10, 40, 40], np.float32), np.zeros((5, 2), np.float32)
    monkeypatch.setattr(det, "_look", lambda *a, **k: (0.33, box + 1, lms + 1, 0))
    cands = _Cands(box[None], np.array([0.1], np.float32), lms[None], np.zeros(1, np.int64))
    cfg = DetectConfig(threshold=0.4, recheck_raise=raise_scores)
    out, n = det.recheck(np.zeros((64, 64, 3), np.uint8), cands, cfg)
    assert n == 1
    assert float(out.scores[0]) == pytest.approx(0.33 if raise_scores else 0.1)
    np.testing.assert_array_equal(out.boxes[0], box + 1 if raise_scores else box)


def test_candidates_cut_by_the_border_are_unsure_from_the_border_threshold():
    """A weak candidate that crosses the image border becomes an unsure region from ``border_unsure_threshold``;
    the same score inside the image stays below the unsure band (and off, the border one does too)."""
    from perface.face.detect import DetectConfig, _Cands, _split

    boxes = np.array([[20, -15, 80, 45], [100, 100, 160, 160]], np.float32)  # cut by the top edge; inside
    cands = _Cands(boxes, np.array([0.22, 0.22], np.float32), np.zeros((2, 5, 2), np.float32),
                   np.zeros(2, np.int64))
    faces, unsure = _split(cands, (300, 300, 3), DetectConfig(threshold=0.4), "centerface")
    assert faces == [] and [u.box for u in unsure] == [(20.0, 0.0, 80.0, 45.0)]
    assert _split(cands, (300, 300, 3), DetectConfig(threshold=0.4, border_unsure_threshold=None), "x") == ([], [])
    assert DetectConfig(unsure_threshold=None).border_unsure_threshold == 0.2  # inert without an unsure band
    assert _split(cands, (300, 300, 3), DetectConfig(threshold=0.4, unsure_threshold=None), "x") == ([], [])
    with pytest.raises(ValueError, match="border_unsure_threshold"):
        DetectConfig(border_unsure_threshold=1.5)


def _cands(boxes, scores, rots):
    from perface.face.detect import _Cands

    n = len(scores)
    return _Cands(np.asarray(boxes, np.float32), np.asarray(scores, np.float32), np.zeros((n, 5, 2), np.float32),
                  np.asarray(rots, np.int64))


def test_a_weaker_box_of_another_rotation_inside_a_face_is_dropped():
    """A turned copy's reading of half an upright face (IoU 0.27 with it, 0.57 of it inside) is no second face; the
    same box at the same rotation, lying less inside, scoring higher, or beside a face under the threshold stays,
    and so does a small face of another rotation that lies inside a big weak box (it is the box's own area that
    counts)."""
    from perface.face.detect import _drop_turned_readings

    face, half = [0, 0, 100, 120], [60, 10, 130, 110]  # intersection 40 x 100: 0.57 of the half box's area

    def kept(boxes, scores, rots, threshold=0.4, inside=0.3):
        return _drop_turned_readings(_cands(boxes, scores, rots), threshold, inside).scores.tolist()

    assert kept([face, half], [0.9, 0.6], [0, 180]) == pytest.approx([0.9])
    assert len(kept([face, half], [0.9, 0.6], [0, 180], inside=None)) == 2  # the rule off
    assert len(kept([face, half], [0.9, 0.6], [0, 0])) == 2  # the same rotation: NMS's business
    assert len(kept([face, [90, 0, 160, 100]], [0.9, 0.6], [0, 180])) == 2  # 0.14 of it inside
    assert len(kept([face, half], [0.9, 0.95], [0, 180])) == 2  # it scores higher, and the face is larger
    assert len(kept([half, face], [0.9, 0.6], [180, 0])) == 2  # the larger box is never the one dropped
    assert len(kept([face, half], [0.3, 0.25], [0, 180])) == 2  # neither is a face
    small = [40, 40, 60, 60]  # a 20 px turned face inside a big, weaker upright box
    assert len(kept([[0, 0, 200, 200], small], [0.45, 0.42], [0, 90])) == 2


def test_celeba_photo_has_one_face_not_an_upside_down_half(shared_data):
    """CelebA 136833.jpg: the 180-degree copy reads half of the upright face as a face (score 0.52, 0.70 of it
    inside); the anonymizer pasted an upside-down donor over the swapped face. Now one face."""
    from perface.face.detect import DetectConfig, detect_with_unsure
    from perface.face.io import read_image

    path = shared_data / "celeba" / "images" / "136833.jpg"
    if not path.exists():
        pytest.skip(f"{path} is not in this copy of ../shared")
    image = read_image(path)
    faces, unsure = detect_with_unsure(image, DetectConfig(threshold=0.4))
    assert [f.rotation for f in faces + unsure] == [0]
    before, _ = detect_with_unsure(image, DetectConfig(threshold=0.4, cross_rotation_overlap=None))
    assert sorted(f.rotation for f in before) == [0, 180]  # what the rule removes
