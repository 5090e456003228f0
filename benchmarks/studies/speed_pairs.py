"""`perface anonymize` against deface on the same 640 px one-face photos, many alternating rounds (issue 20).

Why: a 5-round run of ``benchmarks/anonymize_speed.py`` moved between 0.44x and 0.52x for the same code (deface's
own time for the same photos varied 3.6-4.6 s between runs), so the margin to the 0.5x target needs more rounds.
Each round runs both whole commands back to back, in alternating order; prints the medians, the ratio of each
round's pair and the CPU times (children's user + system). deface as in ``anonymize_speed.py``
(``$DEFACE_PYTHON``, default /tmp/defacevenv/bin/python, ``--backend onnxrt``).
Usage: ``python benchmarks/studies/speed_pairs.py --rounds 10`` (about 2.5 minutes on 2 cores); ``PERFACE_ARGS``
adds options to PerFace's command, e.g. ``PERFACE_ARGS="--recognizers mobilefacenet,mobileface"``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import REPO, celeba_at_640, timed_command  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--n", type=int, default=30, help="photos (CelebA rows 100.., as in anonymize_speed.py)")
    args = ap.parse_args()
    deface = str(Path(os.environ.get("DEFACE_PYTHON", "/tmp/defacevenv/bin/python")).with_name("deface"))
    if not Path(deface).exists():
        raise SystemExit(f"deface not found at {deface} (see benchmarks/deface_runner.py to install it)")
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    photos, _ = celeba_at_640(args.n, start=100)
    with tempfile.TemporaryDirectory(prefix="perface-pairs-") as name:
        res = _rounds(photos, Path(name), deface, env, args.rounds)
    pw, dw = ([w for w, _ in res[k]] for k in ("perface", "deface"))
    pc, dc = ([c for _, c in res[k]] for k in ("perface", "deface"))
    pairs = [d / p for p, d in zip(pw, dw, strict=True)]
    mp, md, cp, cd = (statistics.median(x) for x in (pw, dw, pc, dc))
    lines = [f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {args.rounds} rounds, {args.n} photos, "
             f"1-minute load average {os.getloadavg()[0]:.1f}",
             f"perface wall s: {[round(x, 2) for x in pw]}", f"deface wall s:  {[round(x, 2) for x in dw]}",
             f"medians: perface {mp:.2f} s, deface {md:.2f} s -> {md / mp:.3f}x; per-round pairs median "
             f"{statistics.median(pairs):.3f} (range {min(pairs):.3f}-{max(pairs):.3f}); CPU {cp:.1f} vs {cd:.1f} s "
             f"-> {cd / cp:.3f}x"]
    sys.stdout.write("\n".join(lines) + "\n")


def _rounds(photos: list[Path], tmp: Path, deface: str, env: dict[str, str], rounds: int
            ) -> dict[str, list[tuple[float, float]]]:
    """Both whole commands each round, in alternating order: (wall, CPU) seconds per run."""
    theirs_in = tmp / "deface-in"
    theirs_in.mkdir()
    copies = [shutil.copy(p, theirs_in) for p in photos]
    ours = [sys.executable, "-m", "perface.cli", "anonymize", *map(str, photos),
            *os.environ.get("PERFACE_ARGS", "").split(), "-o", str(tmp / "out")]  # e.g. "--recognizers none"
    theirs = [deface, *map(str, copies), "--backend", "onnxrt", "--ep", "CPUExecutionProvider"]
    timed_command([*ours[:-1], str(tmp / "warm")], env)  # ONNX graphs exported and cached once
    res: dict[str, list[tuple[float, float]]] = {"perface": [], "deface": []}
    for r in range(rounds):
        order = [("perface", ours), ("deface", theirs)]
        for name, cmd in order if r % 2 == 0 else order[::-1]:
            shutil.rmtree(tmp / "out", ignore_errors=True)
            for f in theirs_in.glob("*_anonymized.*"):
                f.unlink()
            res[name].append(timed_command(cmd, env))
    return res

if __name__ == "__main__":
    main()
