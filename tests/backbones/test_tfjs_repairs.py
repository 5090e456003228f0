"""The mobilefacenet repairs: what they change, that they fix the embedding, and that they apply once."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from perface.backbones.tfjs import SHIPPED_MODELS, TfjsGraph, TfjsGraphModule, read_graph_model, shipped_model_dir
from perface.backbones.tfjs_repairs import (
    REPAIRS,
    RepairError,
    apply_repairs,
    find_written_prelus,
    flip_prelu_slope_sign,
    split_fused_relu_before_prelu,
)

BOTH = ["split_fused_relu_before_prelu", "flip_prelu_slope_sign"]


def _graph(name: str) -> TfjsGraph:
    folder = shipped_model_dir(name)
    return read_graph_model(folder / "model.json", folder / "weights.safetensors")


@pytest.fixture(scope="module")
def raw() -> TfjsGraph:
    return _graph("mobilefacenet")


@pytest.fixture(scope="module")
def repaired(raw: TfjsGraph) -> TfjsGraph:
    return apply_repairs(raw, BOTH)


def test_mobilefacenet_has_the_broken_prelu_pattern(raw: TfjsGraph) -> None:
    matches = find_written_prelus(raw)
    assert len(matches) == 33
    fused = [m for m in matches if m.fused_relu]
    assert len(fused) == 16
    assert all(raw.nodes[m.pre].op == "FusedDepthwiseConv2dNative" for m in fused)
    assert all(raw.nodes[m.pre].attrs["fused_ops"] == ["BiasAdd", "Relu"] for m in fused)
    assert all(m.relu is not None and raw.nodes[m.pre].op == "_FusedConv2D" for m in matches if not m.fused_relu)


@pytest.mark.parametrize("name", [n for n in SHIPPED_MODELS if n != "mobilefacenet"])
def test_other_models_do_not_have_it(name: str) -> None:
    graph = _graph(name)
    assert find_written_prelus(graph) == []
    with pytest.raises(RepairError, match="does not apply"):
        flip_prelu_slope_sign(graph)


def test_repairs_change_exactly_the_expected_parts(raw: TfjsGraph, repaired: TfjsGraph) -> None:
    assert repaired.repairs == tuple(BOTH)
    log = {e["repair"]: e["changed"] for e in repaired.metadata["repair_log"]}
    assert len(log["flip_prelu_slope_sign"]) == 33
    assert len(log["split_fused_relu_before_prelu"]) == 16
    # slopes negated, every other weight untouched
    changed = [k for k in raw.weights if not np.array_equal(raw.weights[k], repaired.weights[k])]
    assert sorted(changed) == sorted(log["flip_prelu_slope_sign"])
    for k in changed:
        np.testing.assert_array_equal(repaired.weights[k], -raw.weights[k])
    # 16 new Relu nodes; the split nodes now feed Abs/Sub before the Relu
    assert len(repaired.nodes) == len(raw.nodes) + 16
    assert repaired.op_counts()["Relu"] == raw.op_counts()["Relu"] + 16
    matches = find_written_prelus(repaired)
    assert len(matches) == 33 and not any(m.fused_relu for m in matches)
    for name in log["split_fused_relu_before_prelu"]:
        assert repaired.nodes[name].attrs["fused_ops"] == ["BiasAdd"]
        readers = {n.op for n in repaired.consumers(name)}
        assert readers == {"Abs", "Sub", "Relu"}
    # the input graph is not modified
    assert len(find_written_prelus(raw)) == 33 and sum(m.fused_relu for m in find_written_prelus(raw)) == 16


def test_repairs_refuse_to_apply_twice(repaired: TfjsGraph) -> None:
    for name in BOTH:
        with pytest.raises(RepairError, match="already applied"):
            REPAIRS[name](repaired)
        with pytest.raises(RepairError, match="already applied"):
            apply_repairs(repaired, [name])
    with pytest.raises(RepairError, match="unknown repair"):
        apply_repairs(repaired, ["no_such_repair"])


def test_each_repair_alone_and_order(raw: TfjsGraph, repaired: TfjsGraph) -> None:
    other_order = apply_repairs(raw, BOTH[::-1])
    x = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (2, 112, 112, 3)).astype(np.float32))
    with torch.inference_mode():
        a = TfjsGraphModule(repaired)(x)
        b = TfjsGraphModule(other_order)(x)
        c = TfjsGraphModule(raw)(x)
        d = TfjsGraphModule(split_fused_relu_before_prelu(raw))(x)
    torch.testing.assert_close(a, b)
    assert (a - c).abs().max() > 0.1 and (d - c).abs().max() > 0.01


def test_repair_restores_a_discriminative_embedding(chips: np.ndarray, raw: TfjsGraph, repaired: TfjsGraph) -> None:
    """On the 21 bundled chips (21 different people): the broken graph maps every face to nearly the same
    embedding; the repaired one separates people while a face and its mirror image stay close."""
    from PIL import Image

    faces = np.stack([np.asarray(Image.fromarray(c).resize((112, 112), Image.BILINEAR)) for c in chips])
    mirrored = faces[:, :, ::-1].copy()
    sims = {}
    for label, graph in (("raw", raw), ("repaired", repaired)):
        model = TfjsGraphModule(graph).eval()
        with torch.inference_mode():
            emb = [torch.nn.functional.normalize(model(torch.from_numpy(f).float() / 128 - 127.5 / 128), dim=1)
                   for f in (faces, mirrored)]
        sims[label] = (emb[0] @ emb[1].T).numpy()
    off = ~np.eye(len(faces), dtype=bool)
    raw_s, rep_s = sims["raw"], sims["repaired"]
    assert raw_s[off].mean() > 0.99  # collapsed: different people look identical
    assert rep_s[off].mean() < 0.8
    assert np.diag(rep_s).mean() > 0.9
    assert (rep_s.argmax(1) == np.arange(len(faces))).all()  # each face's nearest mirrored face is its own
    gap = {k: np.diag(s).mean() - s[off].mean() for k, s in sims.items()}
    assert gap["repaired"] > 0.3 > 30 * gap["raw"]


def test_shipped_loader_applies_the_repairs_by_default() -> None:
    from perface.backbones.tfjs import load_tfjs_model

    model = load_tfjs_model("mobilefacenet")
    assert model.repairs == tuple(BOTH) and model.config["repairs"] == BOTH
    assert load_tfjs_model("mobilefacenet", repaired=False).repairs == ()
    assert load_tfjs_model("faceres").repairs == ()
