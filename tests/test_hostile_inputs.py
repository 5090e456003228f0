"""Issue 19's hostile inputs, each built in the test: a one-line error (exit 2) or a correct output, never a crash.

Runs ``perface`` in-process; ``--method blur`` and ``--model none`` keep the runs fast (what is under test is
input handling, not the swap).
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
from hostile import cli, one_line_error, tmpfs
from PIL import Image


@pytest.fixture
def face_jpg(tmp_path, astronaut):
    p = tmp_path / "faces" / "astronaut.jpg"
    p.parent.mkdir()
    Image.fromarray(astronaut).save(p, quality=92)
    return p


def _report(outdir):
    return json.loads((outdir / "perface-report.json").read_text())


def _strip(tmp_path, w, h):
    p = tmp_path / f"strip_{w}x{h}.png"
    Image.new("RGB", (w, h), (120, 90, 60)).save(p)
    return p


# ------------------------------------------------------------------ extreme aspect ratios (the crash is in detect)
SIZES = [(1, 10000), (5, 10000), (10000, 1)]


@pytest.mark.parametrize("w,h", SIZES)
def test_extreme_aspect_anonymize_writes_the_image(tmp_path, w, h):
    src = _strip(tmp_path, w, h)
    res = cli("anonymize", src, "-o", tmp_path / "out", "--method", "blur")
    assert res.exit_code == 0, res.output
    out = tmp_path / "out" / src.name
    assert Image.open(out).size == (w, h)


@pytest.mark.parametrize("w,h", SIZES)
def test_extreme_aspect_detect_finds_nothing(tmp_path, w, h):
    res = cli("detect", _strip(tmp_path, w, h), "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["faces"] == []


@pytest.mark.parametrize("w,h", SIZES)
def test_extreme_aspect_similarity_says_no_face(tmp_path, face_jpg, w, h):
    res = cli("similarity", face_jpg, _strip(tmp_path, w, h), "--model", "none", "--recognizers", "none")
    assert res.exit_code == 2
    assert "no face found" in one_line_error(res)


# ------------------------------------------------------------------------------------------------- odd paths
def test_file_name_too_long_is_one_line_error(tmp_path):
    name = tmp_path / ("x" * 300 + ".jpg")
    res = cli("anonymize", name, "-o", tmp_path / "out", "--method", "blur")
    assert res.exit_code == 2
    assert "file name too long" in res.stderr
    assert _report(tmp_path / "out")["failed"][0]["error"].startswith("file name too long")


def test_longest_allowed_name_gets_an_output(tmp_path, astronaut):
    src = tmp_path / ("y" * 250 + ".jpg")
    Image.fromarray(astronaut).save(src)
    res = cli("anonymize", src, "-o", tmp_path / "out", "--method", "blur")
    assert res.exit_code == 0, res.output
    (out,) = [p for p in (tmp_path / "out").iterdir() if p.suffix == ".jpg"]
    assert len(os.fsencode(out.name)) <= 255


def test_symlink_loops_are_listed_and_the_rest_done(tmp_path, face_jpg):
    folder = face_jpg.parent
    (folder / "self.jpg").symlink_to("self.jpg")  # a link to itself
    (folder / "sub").mkdir()
    (folder / "sub" / "up").symlink_to("..")  # a folder loop: not followed
    res = cli("anonymize", folder, folder / "self.jpg", "-o", tmp_path / "out", "--method", "blur")
    assert res.exit_code == 2
    rep = _report(tmp_path / "out")
    assert [f["error"] for f in rep["failed"]] == ["symlink loop (the link points back to itself)"]
    assert (tmp_path / "out" / "astronaut.jpg").is_file() and rep["totals"]["images_written"] == 1


@pytest.mark.parametrize("name", ["face[1].jpg", "photo[2024].jpg"])
def test_names_with_brackets_are_taken_literally(tmp_path, astronaut, name):
    src = tmp_path / name
    Image.fromarray(astronaut).save(src)
    decoy = tmp_path / "face1.jpg"  # what the glob face[1].jpg would match
    Image.fromarray(np.zeros_like(astronaut)).save(decoy)
    res = cli("anonymize", src, "-o", tmp_path / "out", "--method", "blur")
    assert res.exit_code == 0, res.output
    rep = _report(tmp_path / "out")
    assert [im["input"] for im in rep["images"]] == [str(src)]
    assert len(rep["images"][0]["faces"]) == 1 and (tmp_path / "out" / name).is_file()


def test_a_glob_still_expands_when_no_file_has_that_name(tmp_path, astronaut):
    for n in ("a1.jpg", "a2.jpg"):
        Image.fromarray(astronaut).save(tmp_path / n)
    res = cli("anonymize", tmp_path / "a[12].jpg", "-o", tmp_path / "out", "--method", "blur")
    assert res.exit_code == 0, res.output
    assert _report(tmp_path / "out")["totals"]["images_written"] == 2


# ------------------------------------------------------------------------------------- multi-frame and special
@pytest.mark.parametrize("fmt,ext,kind", [("GIF", "gif", "animated GIF"), ("TIFF", "tif", "multi-page TIFF"),
                                          ("PNG", "png", "animated PNG")])
def test_multi_frame_images_are_refused_by_name(tmp_path, astronaut, fmt, ext, kind):
    frames = [Image.fromarray(astronaut), Image.fromarray(astronaut[:, ::-1].copy())]
    src = tmp_path / f"anim.{ext}"
    frames[0].save(src, format=fmt, save_all=True, append_images=frames[1:])
    res = cli("anonymize", src, "-o", tmp_path / "out", "--method", "blur")
    assert res.exit_code == 2
    err = _report(tmp_path / "out")["failed"][0]["error"]
    assert kind in err and "2 frames" in err
    assert not [p for p in (tmp_path / "out").iterdir() if p.name != "perface-report.json"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_fifo_is_named_and_never_blocks(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    res = cli("anonymize", fifo, "-o", tmp_path / "out", "--method", "blur")
    assert res.exit_code == 2 and "named pipe (FIFO)" in res.stderr
    res = cli("detect", fifo)
    assert res.exit_code == 2 and "named pipe (FIFO)" in one_line_error(res)


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="no /dev/null")
def test_device_is_named(tmp_path):
    res = cli("detect", "/dev/null")
    assert res.exit_code == 2 and "character device" in one_line_error(res)


# ---------------------------------------------------------------------------------------- mixed good and bad
def _mixed_folder(tmp_path, astronaut):
    folder = tmp_path / "mixed"
    folder.mkdir()
    Image.fromarray(astronaut).save(folder / "good.jpg", quality=92)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.png").write_text("not a picture")
    data = (folder / "good.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 3])
    return folder


def test_mixed_folder_anonymize_processes_the_good_and_lists_the_bad(tmp_path, astronaut):
    folder = _mixed_folder(tmp_path, astronaut)
    res = cli("anonymize", folder, "-o", tmp_path / "out", "--method", "blur")
    assert res.exit_code == 2
    rep = _report(tmp_path / "out")
    assert sorted(os.path.basename(f["input"]) for f in rep["failed"]) == ["empty.jpg", "text.png", "truncated.jpg"]
    assert rep["totals"]["images_written"] == 1 and (tmp_path / "out" / "good.jpg").is_file()
    assert rep["status"] == "finished"


def test_mixed_folder_embed_processes_the_good_and_lists_the_bad(tmp_path, astronaut):
    folder = _mixed_folder(tmp_path, astronaut)
    res = cli("embed", folder, "-o", tmp_path / "e.npz")
    assert res.exit_code == 2
    for name in ("empty.jpg", "text.png", "truncated.jpg"):
        assert f"{name}:" in res.stderr
    assert np.load(tmp_path / "e.npz")["embeddings"].shape == (1, 128)


@pytest.mark.slow
def test_mixed_folder_gallery_build_processes_the_good_and_lists_the_bad(tmp_path, astronaut):
    folder = _mixed_folder(tmp_path, astronaut)
    res = cli("gallery", "build", folder, "-o", tmp_path / "g.sqlite", "--min-sharpness", "0",
              "--min-gender-confidence", "0.5")
    assert res.exit_code == 2, res.output
    for name in ("empty.jpg", "text.png", "truncated.jpg"):
        assert f"{name}:" in res.stderr
    assert "1 donors" in res.stdout and (tmp_path / "g.sqlite").is_file()


# ------------------------------------------------------------------------------------------------- options
@pytest.mark.parametrize("args,option", [(["--seed", "-1"], "--seed"), (["--tries", "0"], "--tries"),
                                         (["--forehead", "nan"], "--forehead"), (["--band", "0.5:0.1"], "band"),
                                         (["--max-age-gap", "nan"], "--max-age-gap"), (["--workers", "0"], "--workers"),
                                         (["--threshold", "1.5"], "--threshold"),
                                         (["--threshold", "nan"], "--threshold")])
def test_bad_options_are_refused_before_any_work(tmp_path, face_jpg, args, option):
    res = cli("anonymize", face_jpg, "-o", tmp_path / "out", *args)
    assert res.exit_code == 2
    assert option in one_line_error(res)
    assert not (tmp_path / "out").exists()  # refused before the output folder was even made


def test_labels_csv_not_utf8_is_one_line_error(tmp_path, face_jpg):
    labels = tmp_path / "labels.csv"
    labels.write_bytes("image,gender,age\nastronaut.jpg,female,30\nJos\xe9.jpg,male,40\n".encode("latin-1"))
    res = cli("gallery", "build", face_jpg, "-o", tmp_path / "g.sqlite", "--labels", labels)
    assert res.exit_code == 2
    err = one_line_error(res)
    assert str(labels) in err and "not UTF-8" in err


# ------------------------------------------------------------------------------------------- output folders
def test_output_below_a_regular_file(tmp_path, face_jpg):
    res = cli("anonymize", face_jpg, "-o", face_jpg / "out", "--method", "blur")
    assert res.exit_code == 2 and "a part of the path is a file" in one_line_error(res)
    res = cli("embed", face_jpg, "-o", face_jpg / "e.npz")
    assert res.exit_code == 2 and "a part of the path is a file" in one_line_error(res)


def test_output_path_is_a_file(tmp_path, face_jpg):
    res = cli("anonymize", face_jpg, "-o", face_jpg, "--method", "blur")
    assert res.exit_code == 2 and "not a folder" in one_line_error(res)


def test_read_only_output_folder(tmp_path, face_jpg):
    out = tmp_path / "ro"
    if os.geteuid() == 0:  # root writes through permission bits: a read-only mount it is
        ctx = tmpfs(out, readonly=True)
    else:
        out.mkdir()
        out.chmod(0o555)
        ctx = _nothing(out)
    with ctx:
        res = cli("anonymize", face_jpg, "-o", out, "--method", "blur")
        assert res.exit_code == 2
        assert "not writable" in one_line_error(res)
        assert not list(out.iterdir())


def test_non_writable_output_folder(tmp_path, face_jpg, monkeypatch):
    """A folder this user may not write to (as root, the probe's permission error is simulated)."""
    import perface.anonymize.runner as runner_mod

    out = tmp_path / "locked"
    out.mkdir()
    if os.geteuid() != 0:
        out.chmod(0o500)
    else:
        real_open = os.open

        def deny(path, flags, *a, **k):
            if str(path).startswith(str(out)) and flags & os.O_CREAT:
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, flags, *a, **k)

        monkeypatch.setattr(runner_mod.os, "open", deny)
    res = cli("anonymize", face_jpg, "-o", out, "--method", "blur")
    assert res.exit_code == 2
    assert "not writable (Permission denied)" in one_line_error(res)


class _nothing:
    def __init__(self, value):
        self.value = value

    def __enter__(self):
        return self.value

    def __exit__(self, *exc):
        self.value.chmod(0o755)


@pytest.mark.skipif(sys.platform != "linux", reason="non-UTF-8 file names are a Linux thing")
def test_non_utf8_file_name_prints(tmp_path, astronaut):
    src = os.fsdecode(os.fsencode(str(tmp_path)) + b"/caf\xe9.jpg")
    Image.fromarray(astronaut).save(src)
    res = cli("anonymize", src, "-o", tmp_path / "out", "--method", "blur")
    assert res.exit_code == 0, res.output
