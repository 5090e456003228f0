"""perface.evaluation.protocols: a model trained on a dataset's labels is scored on that dataset's held-out part."""

from __future__ import annotations

import dataclasses

from perface.datasets import LabelledFace, LabelTripletConfig, in_training_part
from perface.evaluation.protocols import _labelled_sources
from perface.metric.train import config_from_dict


def test_the_labelled_sources_a_model_trained_on_come_from_its_saved_config():
    src = LabelTripletConfig(kind="utkface", root="/data/utk", train_fraction=0.3, n_triplets=0)
    cfg = config_from_dict({})
    meta = {"config": dataclasses.asdict(dataclasses.replace(cfg, data=dataclasses.replace(cfg.data,
                                                                                           labelled=(src,))))}
    assert _labelled_sources(meta) == [src]
    assert _labelled_sources({"config": dataclasses.asdict(cfg)}) == [] and _labelled_sources({}) == []
    faces = [LabelledFace(path=f"/data/utk/{i}_0_0_20170101{i:04d}.jpg", gender="male", age=30, young=True)
             for i in range(200)]
    held = [f for f in faces if not in_training_part(f, src.train_fraction)]
    assert 100 < len(held) < 180  # about 70% held out, decided by the file name alone
