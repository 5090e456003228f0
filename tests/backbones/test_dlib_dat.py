"""Tests for the dlib .dat reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perface.backbones.dlib_dat import DlibFormatError, _Reader, default_dat_path, read_dlib_net
from perface.backbones.dlib_resnet import DlibResNet, dlib_expected_kinds


@pytest.fixture(scope="module")
def net():
    return read_dlib_net()


def test_reader_primitives() -> None:
    # dlib ints: control byte (0x80 = negative, low nibble = byte count) + little-endian magnitude
    r = _Reader(bytes([0x00, 0x01, 0x05, 0x82, 0x34, 0x12, 0x31, 0x30, 0x01, 0x03]) + b"abc")
    assert r.int() == 0
    assert r.int() == 5
    assert r.int() == -0x1234
    assert r.bool() is True and r.bool() is False
    assert r.str() == "abc"
    # float_details: mantissa 3, exponent -1 -> 1.5
    assert _Reader(bytes([0x01, 0x03, 0x81, 0x01])).float() == 1.5
    with pytest.raises(DlibFormatError):
        _Reader(bytes([0x02, 0x01])).int()  # truncated


def test_parses_face_model(net) -> None:
    assert net.loss == "loss_metric_2"
    assert net.loss_attrs["margin"] == pytest.approx(0.04)
    assert net.loss_attrs["dist_thresh"] == pytest.approx(0.6)
    assert net.input.kind == "input_rgb_image_sized"
    assert tuple(net.input.attrs["size"]) == (150, 150)
    np.testing.assert_allclose(net.input.attrs["avg_rgb"], [122.782, 117.001, 104.298], rtol=1e-6)
    assert net.kinds() == dlib_expected_kinds()
    cons = [la for la in net.layers if la.kind == "con"]
    assert len(cons) == 29
    assert cons[0].attrs["kernel"] == (7, 7) and cons[0].attrs["stride"] == (2, 2)
    assert cons[0].params["weight"].shape == (32, 3, 7, 7)
    # stride-2 3x3 convs are unpadded, stride-1 ones padded by 1 (dlib's con_ defaults)
    assert {(c.attrs["stride"], c.attrs["padding"]) for c in cons[1:]} == {((1, 1), (1, 1)), ((2, 2), (0, 0))}
    fc = net.layers[-1]
    assert fc.kind == "fc" and fc.params["weight"].shape == (128, 256) and "bias" not in fc.params


def test_param_count_matches_model(net) -> None:
    n_dat = sum(a.size for la in net.param_layers() for a in la.params.values())
    n_model = sum(p.numel() for p in DlibResNet().parameters())
    assert n_dat == n_model


def test_truncated_file_raises(tmp_path: Path) -> None:
    data = default_dat_path().read_bytes()
    bad = tmp_path / "bad.dat"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(DlibFormatError):
        read_dlib_net(bad)
    bad.write_bytes(b"\x01\x01\x05hello")
    with pytest.raises(DlibFormatError):
        read_dlib_net(bad)
