"""perface.anonymize.runner: nothing lost, nothing partial (kill -9, full disk, two runs at once), workers agree."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hostile import cli, one_line_error, tmpfs
from PIL import Image

from perface.anonymize.anonymizer import AnonymizeConfig, Anonymizer
from perface.anonymize.runner import (
    AnonymizerRecipe,
    anonymize_files,
    fork_workers_possible,
    output_paths,
    save_output,
)
from perface.face.io import TEMP_PREFIX, InputError, clean_stale_temps

REPO = Path(__file__).resolve().parents[2]


def _perface(*args, **kw) -> subprocess.Popen:
    """``python -m perface.cli ARGS`` in a new process (its own process group), this checkout's code."""
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.Popen([sys.executable, "-m", "perface.cli", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, **kw)


def _folder(tmp_path, astronaut, n, prefix="img", size=160, name="in"):
    folder = tmp_path / name
    folder.mkdir()
    small = np.asarray(Image.fromarray(astronaut).resize((size, size)))
    for i in range(n):
        Image.fromarray(small).save(folder / f"{prefix}{i:03d}.jpg", quality=90)
    return folder


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _complete_image(path: Path) -> bool:
    try:
        with Image.open(path) as im:
            im.load()  # raises on a truncated file
        return True
    except OSError:
        return False


def test_stale_temp_files_are_removed_live_ones_kept(tmp_path):
    dead = tmp_path / f"{TEMP_PREFIX}{_dead_pid()}-abc.tmp"
    live = tmp_path / f"{TEMP_PREFIX}{os.getpid()}-def.tmp"
    other = tmp_path / ".astro.jpg.tmp"  # not ours: never touched
    for p in (dead, live, other):
        p.write_bytes(b"x" * 100)
    assert clean_stale_temps(tmp_path) == [dead]
    assert not dead.exists() and live.exists() and other.exists()


def test_output_names_fit_and_never_hit_an_input(tmp_path):
    long_in = tmp_path / ("é" * 126 + ".jpg")  # 252 bytes in UTF-8
    paths = output_paths([long_in, long_in.with_name("b.jpg")], tmp_path)
    assert all(len(os.fsencode(p.name)) <= 255 for p in paths)
    assert output_paths([tmp_path / "a.jpg"], tmp_path)[0].name == "a-2.jpg"


def test_a_name_taken_meanwhile_gets_another_not_overwritten(tmp_path):
    dst = tmp_path / "a.png"
    dst.write_bytes(b"another run's output")
    got = save_output(dst, np.zeros((8, 8, 3), np.uint8), overwrite=False)
    assert got == tmp_path / f"a-{os.getpid()}.png" and dst.read_bytes() == b"another run's output"
    assert _complete_image(got)


def test_two_reports_in_one_folder(tmp_path, astronaut):
    folder = _folder(tmp_path, astronaut, 2)
    an = Anonymizer(AnonymizeConfig(method="blur"))
    r1 = anonymize_files([folder / "img000.jpg"], tmp_path / "o", an)
    r2 = anonymize_files([folder / "img001.jpg"], tmp_path / "o", an)
    assert Path(r1.path).name == "perface-report.json" and Path(r2.path).name == "perface-report-2.json"
    for r in (r1, r2):
        assert json.loads(Path(r.path).read_text())["status"] == "finished"


def test_a_failing_image_is_listed_and_the_run_goes_on(tmp_path, astronaut, monkeypatch):
    folder = _folder(tmp_path, astronaut, 3)
    an = Anonymizer(AnonymizeConfig(method="blur"))
    real = an.anonymize_array
    calls = {"n": 0}

    def flaky(image, seed=None, detected=None):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("boom in the middle")
        return real(image, seed, detected)

    monkeypatch.setattr(an, "anonymize_array", flaky)
    rep = anonymize_files(sorted(folder.iterdir()), tmp_path / "o", an)
    assert [im.error is None for im in rep.images] == [True, False, True]
    assert "boom in the middle" in rep.images[1].error and rep.images[1].output is None
    assert not (tmp_path / "o" / "img001.jpg").exists()  # fail closed: no output for it


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="kill -9 is POSIX")
@pytest.mark.parametrize("workers", [1, 2])
def test_kill_9_leaves_complete_outputs_a_report_and_temps_the_next_run_cleans(tmp_path, astronaut, workers):
    folder = _folder(tmp_path, astronaut, 150)
    out = tmp_path / "out"
    proc = _perface("anonymize", folder, "-o", out, "--method", "blur", "--workers", workers)
    report = out / "perface-report.json"
    deadline = time.monotonic() + 120
    done = 0
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            done = len(json.loads(report.read_text())["images"])
        except (OSError, ValueError, KeyError):
            done = 0
        if done >= 5:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.communicate()}"
    os.killpg(proc.pid, signal.SIGKILL)  # the run and its workers, as a crash or an OOM kill would
    proc.wait()
    time.sleep(0.3)
    rep = json.loads(report.read_text())
    assert rep["status"] == "running" and rep["inputs"] == 150 and 5 <= len(rep["images"]) < 150
    for im in rep["images"]:
        assert im["error"] is None and Path(im["output"]).is_file()
    for p in out.iterdir():
        if p.name.startswith(TEMP_PREFIX):
            continue
        assert p.name == "perface-report.json" or _complete_image(p), f"partial output {p}"
    stale = out / f"{TEMP_PREFIX}{_dead_pid()}-leftover.tmp"  # as a kill mid-write leaves
    stale.write_bytes(b"\xff\xd8" + b"\0" * 5000)
    res = cli("anonymize", folder, "-o", out, "--method", "blur", "--overwrite")
    assert res.exit_code == 0, res.output
    assert not [p for p in out.iterdir() if p.name.startswith(TEMP_PREFIX)]
    rep = json.loads(report.read_text())
    assert rep["status"] == "finished" and rep["totals"]["images_written"] == 150
    assert any("temp file" in n for n in rep["notes"])


@pytest.mark.slow
def test_full_disk_one_line_error_no_partial_output_inputs_untouched(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(4):  # noise does not compress: each output is about 480 kB, the disk holds 1 MB
        Image.fromarray(rng.integers(0, 255, (400, 400, 3), dtype=np.uint8)).save(folder / f"n{i}.png")
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    with tmpfs(tmp_path / "small", size="1m") as out:
        res = cli("anonymize", folder, "-o", out, "--method", "blur", "--workers", "1")
        assert res.exit_code == 2
        err = one_line_error(res)
        assert "No space left on device" in err and "stopped after" in err
        rep = json.loads((out / "perface-report.json").read_text())
        assert rep["status"].startswith("stopped:")
        written = {Path(im["output"]).name for im in rep["images"] if im["output"]}
        assert written and len(written) < 4
        for p in out.iterdir():
            assert not p.name.startswith(TEMP_PREFIX), "temp file left behind"
            if p.name != "perface-report.json":
                assert p.name in written and _complete_image(p), f"partial or unlisted output {p}"
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()} == before


@pytest.mark.slow
def test_two_runs_at_once_into_one_folder_keep_both_reports(tmp_path, astronaut):
    a = _folder(tmp_path, astronaut, 6, prefix="a", name="a")
    b = _folder(tmp_path, astronaut, 6, prefix="b", name="b")
    out = tmp_path / "out"
    procs = [_perface("anonymize", f, "-o", out, "--method", "blur", "--workers", "1") for f in (a, b)]
    for p in procs:
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err.decode()
    reports = sorted(out.glob("perface-report*.json"))
    assert [r.name for r in reports] == ["perface-report-2.json", "perface-report.json"]
    outputs = []
    for r in reports:
        rep = json.loads(r.read_text())
        assert rep["status"] == "finished" and rep["totals"]["images_written"] == 6
        outputs += [im["output"] for im in rep["images"]]
    assert len(set(outputs)) == 12 and all(_complete_image(Path(o)) for o in outputs)


@pytest.mark.slow
@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_outputs_do_not_depend_on_the_worker_count(tmp_path, astronaut, group_image_path, monkeypatch, start):
    """Workers forked from the loaded models (a fresh CLI process on Linux), or spawned to load their own, write
    byte for byte what one process writes."""
    if start == "fork" and sys.platform != "linux":
        pytest.skip("workers are forked on Linux only")
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(astronaut).save(folder / "astronaut.jpg", quality=95)
    Image.open(group_image_path).save(folder / "group.jpg", quality=95)
    Image.fromarray(np.ascontiguousarray(astronaut[:, ::-1])).save(folder / "mirrored.png")
    paths = sorted(folder.iterdir())
    one = anonymize_files(paths, tmp_path / "w1", AnonymizerRecipe(AnonymizeConfig()), workers=1)
    monkeypatch.setenv("PERFACE_WORKER_START", start)
    proc = _perface("anonymize", folder, "-o", tmp_path / "w2", "--workers", "2")
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err.decode()
    two = json.loads((tmp_path / "w2" / "perface-report.json").read_text())
    assert any(("forked" if start == "fork" else "spawned") in n for n in two["notes"]), two["notes"]
    if start == "fork":  # the first images may have been detected by the detect-ahead child
        assert any("detected on the other core" in n for n in two["notes"]), two["notes"]
    for p in paths:
        name = output_paths([p], tmp_path)[0].name
        assert (tmp_path / "w1" / name).read_bytes() == (tmp_path / "w2" / name).read_bytes(), name
    donors = {1: [[f.donor_id for f in im.faces] for im in one.images],
              2: [[f.get("donor_id") for f in im["faces"]] for im in two["images"]]}
    assert donors[1] == donors[2] and sum(len(d) for d in donors[1]) == 5


def test_workers_are_forked_only_when_that_is_safe(monkeypatch):
    import threading

    monkeypatch.delenv("PERFACE_WORKER_START", raising=False)
    monkeypatch.delenv("PERFACE_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    assert fork_workers_possible() == (sys.platform == "linux" and "torch" not in sys.modules)
    monkeypatch.setenv("PERFACE_THREADS", "2")  # sessions with thread pools must not be forked
    assert not fork_workers_possible()
    monkeypatch.setenv("PERFACE_THREADS", "1")
    monkeypatch.setenv("PERFACE_WORKER_START", "spawn")
    assert not fork_workers_possible()
    monkeypatch.delenv("PERFACE_WORKER_START")
    monkeypatch.setattr(threading, "active_count", lambda: 2)  # another thread could hold a lock at the fork
    assert not fork_workers_possible()


def test_detect_ahead_sends_what_the_workers_would_find(tmp_path, astronaut):
    """The child that detects while the models load: its faces are exactly ``detect_with_unsure``'s, an unreadable
    file is left to its worker, and it stops when told."""
    import multiprocessing

    from perface.anonymize.runner import _detect_ahead
    from perface.face.detect import detect_with_unsure
    from perface.face.io import read_image

    folder = _folder(tmp_path, astronaut, 2, size=320)
    (folder / "img000x.jpg").write_bytes(b"not an image")
    paths = sorted(folder.iterdir())  # img000.jpg, img000x.jpg, img001.jpg
    cfg = AnonymizeConfig().detect
    ours, theirs = multiprocessing.Pipe()
    _detect_ahead(cfg, paths, None, theirs)  # here, to the end: nobody asked it to stop
    got = {}
    with pytest.raises(EOFError):  # the child's end is closed once it is done
        while True:
            i, found = ours.recv()
            got[i] = found
    assert sorted(got) == [0, 2]
    for i, (faces, unsure) in got.items():
        ref_faces, ref_unsure = detect_with_unsure(read_image(paths[i]), cfg)
        assert len(faces) == len(ref_faces) == 1
        assert [(f.box, f.score, f.rotation) for f in faces + unsure] == [
            (f.box, f.score, f.rotation) for f in ref_faces + ref_unsure]
        assert np.array_equal(faces[0].landmarks, ref_faces[0].landmarks)
    ours, theirs = multiprocessing.Pipe()
    ours.send("stop")
    _detect_ahead(cfg, paths, None, theirs)
    with pytest.raises(EOFError):  # told to stop before the first image: nothing sent
        ours.recv()


def test_workers_need_a_recipe(tmp_path):
    with pytest.raises(ValueError, match="AnonymizerRecipe"):
        anonymize_files([], tmp_path, Anonymizer(AnonymizeConfig(method="blur")), workers=2)


def test_existing_outputs_are_refused_up_front(tmp_path, astronaut):
    folder = _folder(tmp_path, astronaut, 1)
    an = Anonymizer(AnonymizeConfig(method="blur"))
    anonymize_files(sorted(folder.iterdir()), tmp_path / "o", an)
    with pytest.raises(InputError, match="already exists"):
        anonymize_files(sorted(folder.iterdir()), tmp_path / "o", an)
