"""Tests for perface.anonymize.swap: the classic landmark-driven face swap.

Target is skimage's astronaut; donors are generated from it (mirrored, rotated, rescaled and striped so
the swapped-in content is recognisable), with their landmarks transformed analytically.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from perface.anonymize.swap import (
    ClassicSwapper,
    FaceSwapper,
    SwapResult,
    available_swappers,
    estimate_yaw,
    get_swapper,
    piecewise_affine_warp,
    register_swapper,
    skin_lightness,
    swap_many,
    template_triangles,
)
from perface.face.landmarks import IBUG68_MIRROR, predict_landmarks68

ASTRO_BOX = (177.0, 76.0, 270.0, 170.0)


@pytest.fixture(scope="module")
def target_lm(astronaut: np.ndarray) -> np.ndarray:
    return predict_landmarks68(astronaut, ASTRO_BOX)


def make_donor(
    image: np.ndarray,
    lm: np.ndarray,
    *,
    angle: float = 8.0,
    scale: float = 0.8,
    shift: tuple[float, float] = (25.0, -15.0),
    stripes: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Mirror, rotate, rescale and shift ``image`` (optionally add vertical stripes); move ``lm`` with it."""
    h, w = image.shape[:2]
    img = np.ascontiguousarray(image[:, ::-1])
    pts = lm[IBUG68_MIRROR].astype(np.float64)
    pts[:, 0] = w - 1 - pts[:, 0]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    m[:, 2] += shift
    img = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    pts = pts @ m[:, :2].T + m[:, 2]
    if stripes:
        x = np.arange(w, dtype=np.float32)
        gain = 1.0 - stripes * (0.5 + 0.5 * np.sign(np.sin(x / 3.0)))
        img = (img.astype(np.float32) * gain[None, :, None]).astype(np.uint8)
    return img, pts.astype(np.float32)


def turn(lm: np.ndarray, degrees: float) -> np.ndarray:
    """Fake a head yaw: rotate the landmarks about a vertical axis with a crude depth model."""
    out = np.asarray(lm, dtype=np.float64).copy()
    cx = (out[0, 0] + out[16, 0]) / 2
    half = (out[16, 0] - out[0, 0]) / 2
    u = (out[:, 0] - cx) / half
    depth = 0.9 * half * np.sqrt(np.clip(1 - u**2, 0, 1))
    depth[27:36] += half * np.array([0.05, 0.15, 0.25, 0.35, 0.2, 0.25, 0.3, 0.25, 0.2])
    a = np.radians(degrees)
    out[:, 0] = cx + (out[:, 0] - cx) * np.cos(a) + depth * np.sin(a)
    return out.astype(np.float32)


def hull_mask(shape: tuple[int, int], pts: np.ndarray, erode: int = 0) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(m, np.round(cv2.convexHull(pts.astype(np.float32))).astype(np.int32), 1)
    if erode:
        m = cv2.erode(m, np.ones((2 * erode + 1, 2 * erode + 1), np.uint8))
    return m.astype(bool)


def test_swap_changes_face_only(astronaut: np.ndarray, target_lm: np.ndarray) -> None:
    donor, donor_lm = make_donor(astronaut, target_lm, stripes=0.5)
    res = ClassicSwapper(outline=0.0).swap(astronaut, target_lm, donor, donor_lm)  # outline warps the ring too
    assert isinstance(res, SwapResult) and res.ok and res.reason is None
    assert res.image.shape == astronaut.shape and res.image.dtype == np.uint8
    assert res.info["blend_used"] == "seamless"
    diff = np.abs(res.image.astype(np.int16) - astronaut.astype(np.int16)).mean(axis=2)
    face = hull_mask(diff.shape, target_lm, erode=5)
    assert diff[face].mean() > 12.0
    assert diff[res.mask == 0].mean() < 0.05  # unchanged where nothing was pasted
    far = np.ones(diff.shape, bool)
    far[40:220, 140:310] = False
    assert diff[far].max() == 0
    assert not np.array_equal(astronaut, res.image)
    default = ClassicSwapper().swap(astronaut, target_lm, donor, donor_lm)
    assert default.ok and np.array_equal(default.image[far], astronaut[far])


def test_mask_covers_landmark_hull(astronaut: np.ndarray, target_lm: np.ndarray) -> None:
    donor, donor_lm = make_donor(astronaut, target_lm)
    for blend in ("seamless", "feather"):
        res = ClassicSwapper(blend=blend).swap(astronaut, target_lm, donor, donor_lm)
        assert res.ok
        assert res.mask.shape == astronaut.shape[:2] and res.mask.dtype == np.float32
        assert res.mask.min() >= 0.0 and res.mask.max() <= 1.0
        inner = hull_mask(res.mask.shape, target_lm, erode=6)
        assert (res.mask[inner] > 0.5).mean() > 0.97
        # forehead is included: the region reaches clearly above the brows
        brow_top = target_lm[17:27, 1].min()
        cx = int(target_lm[27, 0])
        assert res.mask[int(brow_top) - 6, cx] > 0.5
        assert (res.mask > 0.5).sum() < 2.0 * hull_mask(res.mask.shape, target_lm).sum()


def test_higher_forehead_replaces_more_above_the_brows(astronaut: np.ndarray, target_lm: np.ndarray) -> None:
    """``forehead`` (the `--forehead` option) moves the top of the replaced region up, and only there."""
    donor, donor_lm = make_donor(astronaut, target_lm)
    low = ClassicSwapper(forehead=0.4).swap(astronaut, target_lm, donor, donor_lm)
    high = ClassicSwapper(forehead=1.2).swap(astronaut, target_lm, donor, donor_lm)
    assert low.ok and high.ok
    brow_top = int(target_lm[17:27, 1].min())
    above, below = slice(0, brow_top - 4), slice(brow_top + 4, None)
    assert (high.mask[above] > 0.5).sum() > 1.5 * (low.mask[above] > 0.5).sum()
    top_row = lambda m: int(np.nonzero((m > 0.5).any(axis=1))[0].min())  # noqa: E731
    assert top_row(high.mask) < top_row(low.mask) - 10
    # below the brows both cover the same face
    assert np.abs((high.mask[below] > 0.5).astype(int) - (low.mask[below] > 0.5)).mean() < 0.01
    with pytest.raises(ValueError, match="forehead"):
        ClassicSwapper(forehead=2.0)


def test_warp_puts_eyes_and_mouth_on_target(astronaut: np.ndarray, target_lm: np.ndarray) -> None:
    """Paint a dot at a donor landmark, warp, and find the dot at the target landmark."""
    donor, donor_lm = make_donor(astronaut, target_lm, angle=-10, scale=1.3, shift=(-60, -30))
    sw = ClassicSwapper()
    from perface.anonymize.swap import _extended

    d_pts, t_pts = _extended(donor_lm, sw.forehead), _extended(target_lm, sw.forehead)
    tri = template_triangles(sw.forehead)
    roi = (100, 20, 350, 250)
    h, w = donor.shape[:2]
    named = {
        "left eye": (slice(36, 42),),
        "right eye": (slice(42, 48),),
        "left mouth corner": (48,),
        "right mouth corner": (54,),
        "nose tip": (30,),
    }
    for name, (idx,) in named.items():
        src_pt = np.atleast_2d(d_pts[idx]).mean(axis=0)
        dst_pt = np.atleast_2d(t_pts[idx]).mean(axis=0)
        dot = np.zeros((h, w, 3), np.uint8)
        centre = (int(round(src_pt[0] * 16)), int(round(src_pt[1] * 16)))
        cv2.circle(dot, centre, 3 * 16, (255, 255, 255), -1, cv2.LINE_AA, shift=4)
        warped, covered = piecewise_affine_warp(dot, d_pts, t_pts, tri, roi)
        assert covered.any()
        wgt = warped[..., 0].astype(np.float64)
        ys, xs = np.mgrid[0 : wgt.shape[0], 0 : wgt.shape[1]]
        found = np.array([(wgt * xs).sum(), (wgt * ys).sum()]) / wgt.sum() + roi[:2]
        assert np.linalg.norm(found - dst_pt) < 1.5, name


def test_swapped_face_landmarks_match_target(astronaut: np.ndarray, target_lm: np.ndarray) -> None:
    """End to end: dlib finds the swapped face's eyes/nose/mouth where the target's were."""
    donor, donor_lm = make_donor(astronaut, target_lm, angle=5, scale=1.2, shift=(-40, -20))
    res = ClassicSwapper().swap(astronaut, target_lm, donor, donor_lm)
    assert res.ok
    got = predict_landmarks68(res.image, ASTRO_BOX)
    err = np.linalg.norm(got[27:68] - target_lm[27:68], axis=1)
    assert err.mean() < 3.0


@pytest.mark.parametrize("crop", ["left", "top", "mostly-outside"])
def test_face_at_border(astronaut: np.ndarray, target_lm: np.ndarray, crop: str) -> None:
    donor, donor_lm = make_donor(astronaut, target_lm, stripes=0.4)
    if crop == "left":
        img, lm = astronaut[:, 210:], target_lm - np.float32([210, 0])
    elif crop == "top":
        img, lm = astronaut[95:, :], target_lm - np.float32([0, 95])
    else:
        img, lm = astronaut[:, 262:], target_lm - np.float32([262, 0])
    img = np.ascontiguousarray(img)
    for blend in ("seamless", "feather"):
        res = ClassicSwapper(blend=blend).swap(img, lm, donor, donor_lm)
        assert res.image.shape == img.shape
        if crop == "mostly-outside":
            assert res.ok or res.reason == "face outside image"
            continue
        assert res.ok, res.reason
        touching = res.mask[:, 0] if crop == "left" else res.mask[0, :]
        assert touching.max() > 0.5  # the swap reaches the border
        diff = np.abs(res.image.astype(np.int16) - img.astype(np.int16)).mean(axis=2)
        inside = hull_mask(diff.shape, lm, erode=5)
        assert diff[inside].mean() > 8.0


def test_tiny_face_is_refused(astronaut: np.ndarray, target_lm: np.ndarray) -> None:
    s = 0.12
    small = cv2.resize(astronaut, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    lm = target_lm * s
    donor, donor_lm = make_donor(astronaut, target_lm)
    res = ClassicSwapper().swap(small, lm, donor, donor_lm)
    assert not res.ok and res.reason == "too small"
    assert np.array_equal(res.image, small)
    assert res.mask.max() == 1.0  # tells the caller where to blur instead
    res = ClassicSwapper(min_face_px=2).swap(small, lm, donor, donor_lm)
    assert res.ok and res.image.shape == small.shape


def test_yaw_estimate_and_extreme_pose(astronaut: np.ndarray, target_lm: np.ndarray) -> None:
    assert abs(estimate_yaw(target_lm)) < 12
    yaws = [estimate_yaw(turn(target_lm, a)) for a in (-70, -20, 0, 20, 70)]
    assert yaws == sorted(yaws) and yaws[3] > 10 and yaws[4] > 45 and yaws[0] < -45
    donor, donor_lm = make_donor(astronaut, target_lm)
    sw = ClassicSwapper()
    res = sw.swap(astronaut, turn(target_lm, 70), donor, donor_lm)
    assert not res.ok and res.reason == "extreme pose" and np.array_equal(res.image, astronaut)
    res = sw.swap(astronaut, target_lm, donor, turn(donor_lm, -70))
    assert not res.ok and res.reason == "extreme donor pose"
    assert sw.swap(astronaut, turn(target_lm, 15), donor, donor_lm).ok
    assert ClassicSwapper(max_yaw_deg=85).swap(astronaut, turn(target_lm, 70), donor, donor_lm).ok


def test_auto_mirror_matches_yaw(astronaut: np.ndarray, target_lm: np.ndarray) -> None:
    donor, donor_lm = make_donor(astronaut, target_lm)
    t = turn(target_lm, 25)
    res = ClassicSwapper().swap(astronaut, t, donor, turn(donor_lm, -25))
    assert res.ok and res.info["donor_mirrored"] is True
    res = ClassicSwapper(mirror_donor="never").swap(astronaut, t, donor, turn(donor_lm, -25))
    assert res.ok and res.info["donor_mirrored"] is False


def test_invalid_landmarks_are_reported(astronaut: np.ndarray, target_lm: np.ndarray) -> None:
    donor, donor_lm = make_donor(astronaut, target_lm)
    bad = target_lm.copy()
    bad[3] = np.nan
    res = ClassicSwapper().swap(astronaut, bad, donor, donor_lm)
    assert not res.ok and res.reason == "invalid target landmarks"
    res = ClassicSwapper().swap(astronaut, target_lm, donor, donor_lm[:5])
    assert not res.ok and res.reason == "invalid donor landmarks"
    with pytest.raises(ValueError):
        ClassicSwapper().swap(astronaut[..., 0], target_lm, donor, donor_lm)


def test_rolled_face(astronaut: np.ndarray, target_lm: np.ndarray) -> None:
    m = cv2.getRotationMatrix2D((223, 123), 35, 1.0)
    img = cv2.warpAffine(astronaut, m, (512, 512), borderMode=cv2.BORDER_REFLECT_101)
    lm = (target_lm @ m[:, :2].T + m[:, 2]).astype(np.float32)
    donor, donor_lm = make_donor(astronaut, target_lm, stripes=0.5)
    res = ClassicSwapper().swap(img, lm, donor, donor_lm)
    assert res.ok and abs(res.info["target_yaw"]) < 12
    diff = np.abs(res.image.astype(np.int16) - img.astype(np.int16)).mean(axis=2)
    assert diff[hull_mask(diff.shape, lm, erode=5)].mean() > 12.0
    assert (res.mask[hull_mask(diff.shape, lm, erode=6)] > 0.5).mean() > 0.97


def test_donor_face_cut_off(astronaut: np.ndarray, target_lm: np.ndarray) -> None:
    donor = np.ascontiguousarray(astronaut[:, 215:])
    res = ClassicSwapper().swap(astronaut, target_lm, donor, target_lm - np.float32([215, 0]))
    assert not res.ok and res.reason == "donor face cut off"


def test_swap_many_two_faces(astronaut: np.ndarray, target_lm: np.ndarray) -> None:
    crop = astronaut[40:250, 120:330]
    img = np.ascontiguousarray(np.hstack([crop, crop[:, ::-1]]))
    lm_a = target_lm - np.float32([120, 40])
    lm_b = lm_a[IBUG68_MIRROR].copy()
    lm_b[:, 0] = 2 * crop.shape[1] - 1 - lm_b[:, 0]
    d1, d1_lm = make_donor(astronaut, target_lm, stripes=0.5)
    d2, d2_lm = make_donor(astronaut, target_lm, angle=-5, scale=1.1, shift=(-30, 0), stripes=0.3)
    out, results = swap_many(img, [(lm_a, d1, d1_lm), (lm_b, d2, d2_lm)])
    assert [r.ok for r in results] == [True, True]
    assert out is results[-1].image and out.shape == img.shape
    diff = np.abs(out.astype(np.int16) - img.astype(np.int16)).mean(axis=2)
    for lm in (lm_a, lm_b):
        assert diff[hull_mask(diff.shape, lm, erode=5)].mean() > 10.0
    assert results[0].mask[:, crop.shape[1] :].max() == 0  # per-face masks
    assert results[1].mask[:, : crop.shape[1] - 30].max() == 0


def test_registry() -> None:
    sw = get_swapper("classic", blend="feather")
    assert isinstance(sw, ClassicSwapper) and isinstance(sw, FaceSwapper)
    assert sw.name == "classic" and sw.blend == "feather"
    with pytest.raises(ValueError):
        get_swapper("nope")
    with pytest.raises(ValueError):
        ClassicSwapper(blend="poisson")  # type: ignore[arg-type]

    class Dummy:
        name = "dummy"

        def swap(self, target_image, target_landmarks68, donor_image, donor_landmarks68) -> SwapResult:
            mask = np.zeros(target_image.shape[:2], np.float32)
            return SwapResult(target_image.copy(), mask, False, "dummy")

    register_swapper("dummy", Dummy)
    try:
        assert "dummy" in available_swappers() and isinstance(get_swapper("dummy"), FaceSwapper)
    finally:
        from perface.anonymize import swap as swap_module

        swap_module._REGISTRY.pop("dummy", None)


def test_template_triangulation_is_valid() -> None:
    tri = template_triangles()
    assert tri.ndim == 2 and tri.shape[1] == 3 and len(tri) > 100
    assert set(np.unique(tri).tolist()) == set(range(74))  # every point used, incl. 6 forehead points


def _wide_eyed(lm: np.ndarray, factor: float = 1.25) -> np.ndarray:
    """Landmarks with the eyes and brows spread apart horizontally about the nose bridge."""
    out = lm.astype(np.float64).copy()
    cx = out[27, 0]
    for idx in (slice(17, 27), slice(36, 48)):
        out[idx, 0] = cx + factor * (out[idx, 0] - cx)
    return out


def test_shape_transfer_moves_inner_features_only(target_lm: np.ndarray) -> None:
    """The donor's proportions (here: wider-set eyes) move into the target's frame; jaw and forehead stay."""
    from perface.anonymize.swap import _extended, _transfer_shape

    t_pts = _extended(target_lm, 0.4)
    m = cv2.getRotationMatrix2D((200.0, 120.0), 12.0, 0.7)  # the donor sits elsewhere, rotated and smaller
    d_lm = _wide_eyed(target_lm) @ m[:, :2].T + m[:, 2]
    d_pts = _extended(d_lm, 0.4)
    assert np.array_equal(_transfer_shape(t_pts, d_pts, 0.0, False), t_pts)
    full = _transfer_shape(t_pts, d_pts, 1.0, False)
    half = _transfer_shape(t_pts, d_pts, 0.5, False)

    def eye_gap(p: np.ndarray) -> float:
        return float(np.linalg.norm(p[42:48].mean(0) - p[36:42].mean(0)))

    assert np.allclose(full[:17], t_pts[:17]) and np.allclose(full[68:], t_pts[68:])
    assert eye_gap(full) > 1.12 * eye_gap(t_pts)  # most of the 25% wider gap arrives (the fit spreads the rest)
    assert eye_gap(t_pts) < eye_gap(half) < eye_gap(full)
    assert np.allclose(half[17:68], (t_pts[17:68] + full[17:68]) / 2)
    kept = _transfer_shape(t_pts, d_pts, 1.0, True)
    assert np.allclose(kept[48:68], t_pts[48:68]) and not np.allclose(kept[36:48], t_pts[36:48])


def test_shape_transfer_swap_is_natural(astronaut: np.ndarray, target_lm: np.ndarray) -> None:
    """With shape transfer the output's eyes sit wider apart, and the face is still found where it was."""
    donor, donor_lm = make_donor(astronaut, target_lm, angle=5, scale=1.2, shift=(-40, -20))
    donor_lm = _wide_eyed(donor_lm.astype(np.float64), 1.2).astype(np.float32)
    plain = ClassicSwapper(shape_transfer=0.0, outline=0.0).swap(astronaut, target_lm, donor, donor_lm)
    moved = ClassicSwapper(shape_transfer=1.0, outline=0.0).swap(astronaut, target_lm, donor, donor_lm)
    assert plain.ok and moved.ok
    gap = [np.linalg.norm(lm[42:48].mean(0) - lm[36:42].mean(0))
           for lm in (predict_landmarks68(r.image, ASTRO_BOX) for r in (plain, moved))]
    assert gap[1] > gap[0] + 1.0
    with pytest.raises(ValueError, match="shape_transfer"):
        ClassicSwapper(shape_transfer=1.5)


def test_skin_lightness_reads_the_skin_not_the_eyes(astronaut: np.ndarray, target_lm: np.ndarray) -> None:
    """Darkening the face's skin lowers the reading; painting eyes, brows and mouth black does not move it."""
    base = skin_lightness(astronaut, target_lm)
    assert base is not None and 100 < base < 255
    darker = astronaut.copy()
    hull = hull_mask(astronaut.shape[:2], target_lm).astype(bool)
    darker[hull] = (darker[hull] * 0.5).astype(np.uint8)
    assert skin_lightness(darker, target_lm) < base - 40
    painted = astronaut.copy()
    for sl in (slice(17, 22), slice(22, 27), slice(36, 42), slice(42, 48), slice(48, 60)):
        cv2.fillConvexPoly(painted, cv2.convexHull(np.round(target_lm[sl]).astype(np.int32)), (0, 0, 0))
    assert abs(skin_lightness(painted, target_lm) - base) <= 3
    assert skin_lightness(astronaut, np.full((68, 2), np.nan)) is None
    assert skin_lightness(astronaut, target_lm + 5000) is None  # face outside the image


def test_outline_warp_moves_the_contour_and_anchors_the_surroundings(target_lm: np.ndarray) -> None:
    """The photo around the face follows a moved chin, continuously, and nothing past the anchor ring changes."""
    from perface.anonymize.swap import _extended, _outline_anchors, _warp_outline

    yy, xx = np.mgrid[0:300, 0:400].astype(np.float32)
    image = np.dstack([xx * 0.5, yy * 0.6, (xx + yy) * 0.3]).clip(0, 255).astype(np.uint8)
    t_pts = _extended(target_lm, 0.4)
    chin = np.round(t_pts[8]).astype(int)
    cv2.circle(image, tuple(int(v) for v in chin), 2, (255, 255, 255), -1)
    dest = t_pts.copy()
    dest[6:11, 1] += 8.0  # the chin and its neighbours 8 px lower
    out = _warp_outline(image, t_pts, dest, 0.4, 0.5)
    spot = np.argwhere(out.min(axis=2) > 240).mean(axis=0)[::-1]  # the white dot's centre (x, y)
    assert np.linalg.norm(spot - dest[8]) < 1.5
    ring = np.zeros(image.shape[:2], np.uint8)
    cv2.fillConvexPoly(ring, np.round(cv2.convexHull(_outline_anchors(t_pts, 0.5).astype(np.float32))).astype(
        np.int32), 1)
    outside = cv2.dilate(ring, np.ones((5, 5), np.uint8)) == 0
    assert np.array_equal(out[outside], image[outside])
    # no seams or holes: away from the dot, neighbouring pixels differ as little as in the smooth original
    smooth = np.abs(np.diff(out.astype(int), axis=1))[:, :, 0]
    near_dot = np.zeros_like(smooth, bool)
    near_dot[chin[1] - 14:chin[1] + 22, chin[0] - 10:chin[0] + 10] = True
    assert smooth[~near_dot].max() <= 3


def test_outline_gives_the_face_the_donors_jaw(astronaut: np.ndarray, target_lm: np.ndarray) -> None:
    """With ``outline`` the replaced region takes a wider donor jaw; without it the target's jaw stays."""
    donor, donor_lm = make_donor(astronaut, target_lm, angle=0, scale=1.0, shift=(0, 0))
    wide = donor_lm.astype(np.float64).copy()
    cx = wide[27, 0]
    wide[:17, 0] = cx + 1.2 * (wide[:17, 0] - cx)  # the donor's jaw 20% wider
    plain = ClassicSwapper(outline=0.0).swap(astronaut, target_lm, donor, wide)
    moved = ClassicSwapper(outline=1.0).swap(astronaut, target_lm, donor, wide)
    assert plain.ok and moved.ok and moved.info["outline_moved_px"] > 3
    row = int(target_lm[4, 1])  # across the lower cheeks
    width = [int((r.mask[row] > 0.5).sum()) for r in (plain, moved)]
    assert width[1] > width[0] + 4
    far = np.ones(astronaut.shape[:2], bool)
    far[20:260, 110:340] = False
    assert np.array_equal(moved.image[far], astronaut[far])
    for bad in ({"outline": 1.5}, {"outline_ring": 0.0}):
        with pytest.raises(ValueError, match="outline"):
            ClassicSwapper(**bad)


def test_membrane_keeps_the_donors_shading_at_the_centre_and_the_seam_hidden(astronaut: np.ndarray,
                                                                              target_lm: np.ndarray) -> None:
    """``membrane`` 0: a darker donor stays darker at the face's centre (the Poisson correction fades there), while
    the region's edge still matches the photo as with the full Poisson blend."""
    donor, donor_lm = make_donor(astronaut, target_lm)
    dark = (donor.astype(np.float32) * 0.6).astype(np.uint8)
    full = ClassicSwapper(color_match=False, membrane=1.0).swap(astronaut, target_lm, dark, donor_lm)
    faded = ClassicSwapper(color_match=False, membrane=0.0).swap(astronaut, target_lm, dark, donor_lm)
    assert full.ok and faded.ok
    centre = hull_mask(astronaut.shape[:2], target_lm, erode=25)
    lum = [r.image.astype(np.float32).mean(axis=2) for r in (full, faded)]
    assert lum[1][centre].mean() < lum[0][centre].mean() - 10
    edge = (full.mask > 0.3) & (full.mask < 0.8)  # the soft edge of the replaced region
    assert np.abs(lum[1][edge] - lum[0][edge]).mean() < 6
    assert np.array_equal(full.image[full.mask == 0], faded.image[full.mask == 0])
    with pytest.raises(ValueError, match="membrane"):
        ClassicSwapper(membrane=1.5)
