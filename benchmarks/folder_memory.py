"""Folder runs: peak memory of ``perface anonymize`` over big folders, and throughput by worker count (issue 20).

A folder of N images is made from a few CelebA photos (hard links, so 2,000 "files" cost no disk); the command
runs as a subprocess while this script samples the resident memory (RSS) of the whole process tree (the run and
its workers) every 0.25 s. Memory should not grow with the folder: images stream through a bounded number of
tasks in flight, and only the per-image report records (a few hundred bytes each) accumulate.

    python benchmarks/folder_memory.py --sizes 200 2000 --workers 2            # peak RSS per folder size (swap)
    python benchmarks/folder_memory.py --sizes 2000:blur 10000:blur 600:swap   # N:method per run
    python benchmarks/folder_memory.py --sizes --compare-workers 24 --rounds 2 --fragment folder_workers
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, shared_data, write_fragment


def tree_pids(pid: int) -> list[int]:
    """A process and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def tree_pss_mb(pid: int) -> float:
    """Proportional set size of a process tree, in MB: pages shared by several processes (workers forked from
    the loaded models) are divided among them, so unlike summed RSS this is the memory the tree really holds."""
    total = 0
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/smaps_rollup") as fh:
                total += next(int(ln.split()[1]) for ln in fh if ln.startswith("Pss:"))
        except (OSError, StopIteration, ValueError):
            continue
    return total / 1e3


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MB (Linux /proc); shared pages count once
    per process (an upper bound)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ppid, pages = int(fields[1]), int(fields[21])
        children.setdefault(ppid, []).append(int(entry))
        rss[int(entry)] = pages
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo.extend(children.get(p, []))
    return total * os.sysconf("SC_PAGE_SIZE") / 1e6


def make_folder(root: Path, n: int, sources: list[Path]) -> Path:
    """``n`` image files named 00000.jpg.. in ``root``, hard links to ``sources`` in turn."""
    folder = root / f"in{n}"
    folder.mkdir(parents=True)
    for i in range(n):
        src = sources[i % len(sources)]
        try:
            os.link(src, folder / f"{i:05d}{src.suffix}")
        except OSError:
            shutil.copyfile(src, folder / f"{i:05d}{src.suffix}")
    return folder


def run(folder: Path, out: Path, workers: int, method: str) -> dict:
    """One ``perface anonymize`` run, RSS of the process tree sampled; returns peak, curve and timing."""
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    cmd = [sys.executable, "-m", "perface.cli", "anonymize", str(folder), "-o", str(out), "--method", method,
           "--workers", str(workers)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak, peak_pss, curve = 0.0, 0.0, []
    report = out / "perface-report.json"
    n_in = sum(1 for _ in folder.iterdir())
    while proc.poll() is None:
        mb = tree_rss_mb(proc.pid)
        peak = max(peak, mb)
        peak_pss = max(peak_pss, tree_pss_mb(proc.pid))
        done = _done(report)
        curve.append((done / n_in, mb))
        time.sleep(0.25)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}")
    rep_seconds = _report_seconds(report)
    return {"n": n_in, "workers": workers, "method": method, "peak_mb": peak, "peak_pss_mb": peak_pss, "wall_s": wall,
            "run_s": rep_seconds, "curve": curve}


def _done(report: Path) -> int:
    import json

    try:
        return len(json.loads(report.read_text())["images"])
    except (OSError, ValueError, KeyError):
        return 0


def _report_seconds(report: Path) -> float:
    import json

    return float(json.loads(report.read_text())["seconds"])


def rss_at(curve: list[tuple[float, float]], frac: float) -> float:
    """Highest RSS sampled up to ``frac`` of the images done."""
    vals = [mb for f, mb in curve if f <= frac]
    return max(vals) if vals else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", nargs="*", default=["200", "2000"], help="N or N:method (default method: --method)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--method", default="swap")
    ap.add_argument("--sources", type=int, default=200, help="distinct CelebA photos the folder is made of")
    ap.add_argument("--compare-workers", type=int, default=0, help="also time 1 vs 2 workers on this many images")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--fragment", default="folder_memory", help="docs/benchmarks/<name>.md to write")
    ap.add_argument("--note", default="", help="a line added under the tables (e.g. what else was running)")
    args = ap.parse_args()

    celeba = shared_data() / "celeba" / "images"
    sources = sorted(celeba.glob("*.jpg"))[: args.sources]
    rows, speed = [], []
    with tempfile.TemporaryDirectory(prefix="perface-folder-") as tmp:
        root = Path(tmp)
        for spec in args.sizes:
            n, method = (int(spec.split(":")[0]), spec.split(":")[1]) if ":" in spec else (int(spec), args.method)
            folder = root / f"in{n}" if (root / f"in{n}").exists() else make_folder(root, n, sources)
            r = run(folder, root / f"out{n}", args.workers, method)
            print(f"{n} images, {method}: peak {r['peak_mb']:.0f} MB, {r['wall_s']:.0f} s", flush=True)
            rows.append(r)
            shutil.rmtree(root / f"out{n}")
        if args.compare_workers:
            n = args.compare_workers
            folder = root / f"in{n}" if (root / f"in{n}").exists() else make_folder(root, n, sources)
            for k in range(args.rounds):
                for w in ((1, 2) if k % 2 == 0 else (2, 1)):  # alternating, so drifting load hits both alike
                    r = run(folder, root / f"w{w}-{k}", w, args.method)
                    print(f"workers {w}: {r['n'] / r['wall_s']:.2f} images/s (wall), peak {r['peak_mb']:.0f} MB",
                          flush=True)
                    speed.append(r)
                    shutil.rmtree(root / f"w{w}-{k}")

    body = ["`perface anonymize FOLDER -o OUT --method M --workers W`, run as a subprocess; RSS of "
            "the run and all its worker processes summed (pages the forked workers share with the run count once "
            "per process: an upper bound), and their proportional set size (PSS: shared pages divided among "
            "the processes), sampled every 0.25 s. The folder holds N hard links to "
            f"{args.sources} distinct CelebA photos (178x218 px, one face each), in turn.", ""]
    if rows:
        body += ["| images | method | workers | peak RSS, whole tree (MB) | peak PSS, whole tree (MB) | highest RSS by "
                 "10% / 50% / 100% of the images (MB) | wall time (s) | images/s |",
                 "|---|---|---|---|---|---|---|---|"]
        for r in rows:
            c = r["curve"]
            body.append(f"| {r['n']} | {r['method']} | {r['workers']} | **{r['peak_mb']:.0f}** | "
                        f"{r['peak_pss_mb']:.0f} | "
                        f"{rss_at(c, 0.1):.0f} / "
                        f"{rss_at(c, 0.5):.0f} / {rss_at(c, 1.0):.0f} | {r['wall_s']:.0f} | "
                        f"{r['n'] / r['wall_s']:.2f} |")
        body += ["", "Target (issue 20): peak RSS within 1.5 GB on a 2,000-image folder, not growing with the folder."]
    if speed:
        body += ["", f"Throughput by worker count, {speed[0]['n']} images, {speed[0]['method']}, whole command "
                 "(start-up included), "
                 f"{args.rounds} alternating rounds:", "", "| workers | images/s per round | peak RSS (MB) |",
                 "|---|---|---|"]
        for w in (1, 2):
            rs = [r for r in speed if r["workers"] == w]
            rates = ", ".join(f"{r['n'] / r['wall_s']:.2f}" for r in rs)
            body.append(f"| {w} | {rates} | {max(r['peak_mb'] for r in rs):.0f} |")
    if args.note:
        body += ["", args.note]
    title = "Folder runs: memory and workers (issue 20)" if rows else "Folder runs: workers (issue 20)"
    write_fragment(args.fragment, title, "\n".join(body))


if __name__ == "__main__":
    main()
