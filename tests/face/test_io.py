"""perface.face.io: every bad-input kind gives one InputError naming the file; writes are clean and safe."""

from __future__ import annotations

import io as _io

import numpy as np
import pytest
from PIL import Image

from perface.face.io import (
    InputError,
    ReadConfig,
    atomic_write,
    default_file_mode,
    iter_image_paths,
    read_image,
    write_image,
)


def _save(path, img: Image.Image, **kw) -> None:
    img.save(path, **kw)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "RGB"])
def test_modes_become_rgb(tmp_path, mode):
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8))
    img = rgb.convert(mode) if mode != "I;16" else Image.fromarray(
        np.arange(600, dtype=np.uint16).reshape(20, 30) * 100)
    ext = "jpg" if mode == "CMYK" else ("tif" if mode == "I;16" else "png")
    p = tmp_path / f"x.{ext}"
    _save(p, img)
    arr = read_image(p)
    assert arr.shape == (20, 30, 3) and arr.dtype == np.uint8


def test_i16_scaled_not_clipped(tmp_path):
    vals = np.full((4, 4), 65535, dtype=np.uint16)
    vals[0, 0] = 0
    p = tmp_path / "deep.png"
    Image.fromarray(vals).save(p)
    arr = read_image(p)
    assert arr[1, 1, 0] == 255 and arr[0, 0, 0] == 0


def test_exif_orientation_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    img.paste((0, 0, 255), (0, 0, 10, 20))  # blue band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    p = tmp_path / "rot.jpg"
    img.save(p, exif=exif.tobytes(), quality=95)
    arr = read_image(p)
    assert arr.shape[:2] == (40, 20)  # portrait after transpose
    assert arr[2, 10, 2] > 200 and arr[-3, 10, 0] > 200  # blue band now on top


@pytest.mark.parametrize(
    "kind,expect",
    [
        ("empty", "empty"),
        ("truncated", "truncated"),
        ("text", "not an image"),
        ("missing", "not found"),
        ("folder", "folder"),
    ],
)
def test_bad_inputs(tmp_path, kind, expect):
    p = tmp_path / "bad.jpg"
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "truncated":
        buf = _io.BytesIO()
        Image.fromarray(np.random.default_rng(1).integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(
            buf, format="JPEG")
        p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
    elif kind == "text":
        p.write_text("hello, I am not a picture")
    elif kind == "folder":
        p.mkdir()
    with pytest.raises(InputError) as err:
        read_image(p)
    assert str(p) in str(err.value) and expect in str(err.value)


def test_unsupported_format(tmp_path):
    p = tmp_path / "x.svg"
    p.write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    with pytest.raises(InputError, match="not an image"):
        read_image(p)


def test_pixel_limit(tmp_path):
    p = tmp_path / "big.png"
    Image.new("RGB", (300, 300)).save(p)
    with pytest.raises(InputError, match="above the limit"):
        read_image(p, ReadConfig(max_pixels=300 * 299))
    assert read_image(p, ReadConfig(max_pixels=300 * 300)).shape == (300, 300, 3)


def test_write_strips_metadata_and_refuses_overwrite(tmp_path):
    src = tmp_path / "gps.jpg"
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0)}  # GPS IFD
    Image.new("RGB", (32, 32), (10, 200, 30)).save(src, exif=exif.tobytes())
    assert Image.open(src).getexif()  # the fixture really carries EXIF
    arr = read_image(src)
    out = tmp_path / "out" / "clean.jpg"
    write_image(out, arr)
    with Image.open(out) as im:
        assert not im.getexif() and "exif" not in im.info and "icc_profile" not in im.info
    with pytest.raises(InputError, match="already exists"):
        write_image(out, arr)
    before = out.read_bytes()
    write_image(out, np.zeros_like(arr), overwrite=True)
    assert out.read_bytes() != before
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]


def test_iter_image_paths(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ("a/1.jpg", "a/2.PNG", "a/notes.txt", "3.jpg"):
        (tmp_path / name).write_bytes(b"x")
    found = iter_image_paths([str(tmp_path / "a"), str(tmp_path / "*.jpg"), str(tmp_path / "3.jpg")])
    assert [p.name for p in found] == ["1.jpg", "2.PNG", "3.jpg"]


def test_atomic_write_publishes_only_on_success(tmp_path):
    target = tmp_path / "sub" / "data.bin"
    with atomic_write(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_bytes(b"first")
    assert target.read_bytes() == b"first"
    assert target.stat().st_mode & 0o777 == default_file_mode()
    with pytest.raises(RuntimeError), atomic_write(target, overwrite=True) as tmp:
        tmp.write_bytes(b"half-written")
        raise RuntimeError("writer failed")
    assert target.read_bytes() == b"first"  # a failed write leaves the old file as it was
    with pytest.raises(InputError, match="report already exists"), atomic_write(target, what="report"):
        pass
    assert sorted(p.name for p in target.parent.iterdir()) == ["data.bin"]  # no temp files left
