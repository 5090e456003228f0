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


# ------------------------------------------------------------------------ issue 19: inputs taken literally, no crash
def test_special_files_loops_and_long_names_get_their_own_message(tmp_path):
    import os

    cases = {tmp_path / "loop.jpg": "symlink loop", tmp_path / ("n" * 300 + ".jpg"): "file name too long",
             tmp_path / "dangling.jpg": "broken symlink"}
    (tmp_path / "loop.jpg").symlink_to("loop.jpg")
    (tmp_path / "dangling.jpg").symlink_to("nowhere.jpg")
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe.jpg")
        cases[tmp_path / "pipe.jpg"] = "named pipe (FIFO)"
    if os.path.exists("/dev/null"):
        cases["/dev/null"] = "character device"
    for path, reason in cases.items():
        with pytest.raises(InputError) as err:
            read_image(path)
        assert reason in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "TIFF", "WEBP"])
def test_multi_frame_files_are_refused_single_frame_read(tmp_path, fmt):
    frames = [Image.new("RGB", (16, 12), (120 * i, 0, 0)) for i in range(3)]
    multi, single = tmp_path / f"m.{fmt.lower()}", tmp_path / f"s.{fmt.lower()}"
    frames[0].save(multi, format=fmt, save_all=True, append_images=frames[1:])
    frames[0].save(single, format=fmt)
    with pytest.raises(InputError, match="3 frames"):
        read_image(multi)
    assert read_image(single).shape == (12, 16, 3)


def test_existing_paths_are_literal_globs_only_for_missing_paths(tmp_path):
    for name in ("face[1].jpg", "face1.jpg", "photo[2024].jpg"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in iter_image_paths([str(tmp_path / "face[1].jpg")])] == ["face[1].jpg"]
    assert [p.name for p in iter_image_paths([str(tmp_path / "photo[2024].jpg")])] == ["photo[2024].jpg"]
    assert [p.name for p in iter_image_paths([str(tmp_path / "face[0-9].jpg")])] == ["face1.jpg"]


def test_folder_walk_lists_broken_entries_skips_temps_and_does_not_loop(tmp_path):
    from perface.face.io import TEMP_PREFIX

    (tmp_path / "ok.jpg").write_bytes(b"x")
    (tmp_path / "self.jpg").symlink_to("self.jpg")
    (tmp_path / f"{TEMP_PREFIX}123-abc.jpg").write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "up").symlink_to("..")
    assert [p.name for p in iter_image_paths([str(tmp_path)])] == ["ok.jpg", "self.jpg"]


def test_short_write_is_never_published(tmp_path, monkeypatch):
    """Pillow once took a short write on a full disk for success; the size on disk is now checked."""
    import os as _os

    import perface.face.io as io_mod

    real_fstat = _os.fstat

    class Short:
        def __init__(self, st):
            self.st_size = st.st_size - 1

    monkeypatch.setattr(io_mod.os, "fstat", lambda fd: Short(real_fstat(fd)))
    out = tmp_path / "o" / "x.jpg"
    with pytest.raises(io_mod.OutputError, match="short write"):
        write_image(out, np.zeros((20, 20, 3), np.uint8))
    assert not out.exists() and not list(out.parent.iterdir())


def test_full_disk_is_a_fatal_output_error(tmp_path, monkeypatch):
    import builtins
    import errno

    import perface.face.io as io_mod

    real_open = builtins.open

    class Full:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(builtins, "open", lambda p, mode="r", *a, **k: Full(real_open(p, mode, *a, **k))
                        if "w" in mode and io_mod.TEMP_PREFIX in str(p) else real_open(p, mode, *a, **k))
    with pytest.raises(io_mod.OutputError) as err:
        write_image(tmp_path / "x.png", np.zeros((8, 8, 3), np.uint8))
    assert err.value.fatal and "No space left" in str(err.value)
    assert not list(tmp_path.iterdir())


def test_check_output_file_before_any_work(tmp_path):
    from perface.face.io import check_output_file

    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(InputError, match="part of the path is a file"):
        check_output_file(tmp_path / "f" / "e.npz")
    with pytest.raises(InputError, match="must end in .npz"):
        check_output_file(tmp_path / "e.txt", suffixes=(".npz",))
    with pytest.raises(InputError, match="already exists"):
        check_output_file(tmp_path / "f")
    check_output_file(tmp_path / "new" / "e.npz", suffixes=(".npz",))
    assert (tmp_path / "new").is_dir() and not list((tmp_path / "new").iterdir())
