"""Load test of the annotation app: 50 simulated annotators on loopback, against SQLite and against a
PostgreSQL server this script starts itself (Debian ``postgresql``: initdb into a temp dir, loopback port).

Each annotator loops as fast as it can (no think time; the per-token rate limit is off for this run):
``POST next``, the three images, ``POST vote``; 3% of votes are sent twice, as a browser retry would.
Bounded: 50 annotators, at most ``--seconds`` per backend and ``--triplets`` real triplets (K = 3). The
server runs as a separate process (``perface annotate serve``), the clients in one asyncio process.
Reported: requests/s, p50/p99 latency per request kind, and the check that the votes in the database
equal the acknowledged answers, none lost or duplicated and no real triplet above K votes.

    python benchmarks/annotation_load.py            # writes docs/benchmarks/annotation_load.md
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from _common import REPO, write_fragment
from PIL import Image

from perface.annotation.db import TripletRow, Vote, transaction
from perface.annotation.project import AnnotationSettings, create_project, open_project
from perface.annotation.quality import valid_votes
from perface.annotation.security import csrf_token


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def temporary_postgres():
    """A throw-away PostgreSQL server on a loopback port (as user ``postgres`` when run as root)."""
    bindir = Path("/usr/lib/postgresql")
    versions = sorted(bindir.glob("*/bin/initdb")) if bindir.is_dir() else []
    initdb = str(versions[-1]) if versions else shutil.which("initdb")
    if not initdb:
        raise SystemExit("PostgreSQL not found (Debian: apt-get install postgresql)")
    pg_ctl = str(Path(initdb).with_name("pg_ctl"))
    tmp = Path(tempfile.mkdtemp(prefix="perface-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    data = tmp / "data"
    run = lambda *cmd: subprocess.run([*as_user, *cmd], check=True, capture_output=True)  # noqa: E731
    run(initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
    opts = f"-p {port} -k {tmp} -h 127.0.0.1 -c max_connections=200 -c fsync=on"
    run(pg_ctl, "-D", str(data), "-o", opts, "-l", str(tmp / "log"), "-w", "start")
    try:
        run(str(Path(initdb).with_name("createdb")), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "perface")
        yield f"postgresql://postgres@127.0.0.1:{port}/perface"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


def make_project(root: Path, n_real: int, db: str | None) -> tuple[Path, list[str]]:
    """A project with random 224 px images (no swapping: the app, not the builder, is under test) and 50 invites."""
    # catch trials are served as usual, but nobody is flagged: the simulated annotators answer at random
    project, _ = create_project(root, AnnotationSettings(catch_share=0.1, catch_threshold=0.0), db=db)
    rng = np.random.default_rng(0)
    rows = []
    n_catch = n_real // 10
    for i in range(n_real + n_catch):
        code = f"t{i:04d}" if i < n_real else f"c{i - n_real:04d}"
        for side in "abc":
            Image.fromarray(rng.integers(0, 255, (224, 224, 3), dtype=np.uint8)).save(
                project.images / f"{code}_{side}.jpg", quality=80)
        rows.append(TripletRow(code=code, kind="real" if i < n_real else "catch", target=f"T{i % 10}",
                               source_a=f"S{i}a", source_b=f"S{i}b", source_c=f"S{i}c",
                               catch_answer=None if i < n_real else "a"))
    with transaction(project.engine) as s:
        s.add_all(rows)
    tokens = [project.invite(f"sim{i:02d}") for i in range(50)]
    project.engine.dispose()
    return root, tokens


async def annotator(client, url: str, token: str, secret: str, deadline: float, lat: dict, acked: list,
                    seed: int) -> None:
    """One simulated annotator: next, three images, vote (sometimes twice), until done or out of time."""
    rng = random.Random(seed)
    h = {"X-CSRF-Token": csrf_token(secret, token)}
    base = f"{url}/a/{token}"

    async def req(kind: str, method: str, path: str, **kw):
        t = time.perf_counter()
        r = await client.request(method, base + path, **kw)
        lat[kind].append(time.perf_counter() - t)
        return r

    r = await req("next", "POST", "/api/next", json={}, headers=h)
    item = r.json()
    while not item.get("done") and time.monotonic() < deadline:
        aid = item["assignment_id"]
        for side in "cab":
            img = await req("image", "GET", f"/img/{aid}/{side}")
            assert img.status_code == 200, img.status_code
        body = {"assignment_id": aid, "answer": rng.choice("ab"), "rt_ms": rng.randint(500, 4000)}
        r = await req("vote", "POST", "/api/vote", json=body, headers=h)
        if r.status_code != 200:
            lat["refused"].append(0.0)
            r = await req("next", "POST", "/api/next", json={}, headers=h)
            item = r.json()
            continue
        if r.json()["new"]:
            acked.append((token, aid, body["answer"]))
        if rng.random() < 0.03:  # a browser retry of the same answer: must not count twice
            r2 = await req("vote", "POST", "/api/vote", json=body, headers=h)
            assert r2.status_code == 200 and r2.json()["new"] is False
        item = r.json()["next"]


async def drive(url: str, tokens: list[str], secret: str, seconds: float) -> tuple[dict, list, float]:
    import httpx

    lat: dict[str, list[float]] = defaultdict(list)
    acked: list = []
    limits = httpx.Limits(max_connections=len(tokens) + 10, max_keepalive_connections=len(tokens) + 10)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        t0 = time.monotonic()
        await asyncio.gather(*(annotator(client, url, tok, secret, t0 + seconds, lat, acked, i)
                               for i, tok in enumerate(tokens)))
        wall = time.monotonic() - t0
    return lat, acked, wall


def run_backend(name: str, db: str | None, n_real: int, seconds: float) -> dict:
    root = Path(tempfile.mkdtemp(prefix=f"perface-load-{name}-")) / "project"
    root, tokens = make_project(root, n_real, db)
    secret = open_project(root).secret
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    server = subprocess.Popen([sys.executable, "-m", "perface.cli", "annotate", "serve", str(root), "--port", str(port),
                               "--rate", "0"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit(f"server did not start: {server.stderr.read().decode()[-2000:]}")
            time.sleep(0.2)
        cpu0 = _cpu_seconds(server.pid)
        lat, acked, wall = asyncio.run(drive(f"http://127.0.0.1:{port}", tokens, secret, seconds))
        server_cpu = _cpu_seconds(server.pid) - cpu0
    finally:
        server.terminate()
        server.wait(timeout=20)
    project = open_project(root)
    from sqlalchemy import select

    from perface.annotation.db import Annotator, Assignment

    with transaction(project.engine) as s:
        rows = s.execute(select(Annotator.token_hash, Vote.assignment_id, Vote.answer, TripletRow.kind,
                                TripletRow.id)
                         .join(Annotator, Annotator.id == Vote.annotator_id)
                         .join(TripletRow, TripletRow.id == Vote.triplet_id)).all()
        n_assign = s.query(Assignment).count()
        valid = valid_votes(s, project.settings)  # flagged annotators' votes left out, as in every count
    from perface.annotation.project import hash_token

    in_db = Counter((h, a, ans) for h, a, ans, _, _ in rows)
    acked_set = Counter((hash_token(t), a, ans) for t, a, ans in acked)
    per_real = Counter({t: len(v) for t, v in valid.items()})
    project.engine.dispose()
    shutil.rmtree(root.parent, ignore_errors=True)
    n_req = sum(len(v) for k, v in lat.items() if k != "refused")
    allv = np.array([x for k, v in lat.items() if k != "refused" for x in v]) * 1000
    out = {"backend": name, "wall": wall, "requests": n_req, "rps": n_req / wall,
           "p50": float(np.percentile(allv, 50)), "p99": float(np.percentile(allv, 99)),
           "acked": len(acked), "in_db": len(rows), "lost": sum((acked_set - in_db).values()),
           "unacked_in_db": sum((in_db - acked_set).values()), "dupes": sum(c - 1 for c in in_db.values() if c > 1),
           "max_per_real": max(per_real.values(), default=0), "complete": sum(c >= 3 for c in per_real.values()),
           "n_real": n_real, "assignments": n_assign, "cpu_ms": 1000 * server_cpu / max(1, n_req),
           "refused": len(lat.get("refused", []))}
    for kind in ("next", "image", "vote"):
        v = np.array(lat[kind]) * 1000
        out[f"{kind}_p50"], out[f"{kind}_p99"] = float(np.percentile(v, 50)), float(np.percentile(v, 99))
    print(out, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--triplets", type=int, default=300, help="real triplets (K = 3 votes each)")
    ap.add_argument("--seconds", type=float, default=60, help="time limit per backend")
    ap.add_argument("--backends", default="sqlite,postgresql")
    args = ap.parse_args()
    results = []
    for name in args.backends.split(","):
        if name == "sqlite":
            results.append(run_backend("SQLite (WAL)", None, args.triplets, args.seconds))
        else:
            with temporary_postgres() as url:
                results.append(run_backend("PostgreSQL 15", url, args.triplets, args.seconds))
    rows = ["| backend | requests | wall (s) | requests/s | p50 / p99 all (ms) | p50 / p99 next | p50 / p99 image "
            "| p50 / p99 vote | votes acknowledged | votes in DB | lost | duplicated | unacknowledged in DB "
            "| real triplets complete | most valid votes on one real triplet | server CPU per request (ms) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        rows.append(f"| {r['backend']} | {r['requests']} | {r['wall']:.1f} | {r['rps']:.0f} | {r['p50']:.1f} / "
                    f"{r['p99']:.1f} | {r['next_p50']:.1f} / {r['next_p99']:.1f} | {r['image_p50']:.1f} / "
                    f"{r['image_p99']:.1f} | {r['vote_p50']:.1f} / {r['vote_p99']:.1f} | {r['acked']} | {r['in_db']} | "
                    f"{r['lost']} | {r['dupes']} | {r['unacked_in_db']} | {r['complete']} of {r['n_real']} | "
                    f"{r['max_per_real']} (K = 3) | {r['cpu_ms']:.1f} |")
    ok = all(r["lost"] == 0 and r["dupes"] == 0 and r["unacked_in_db"] == 0 and r["max_per_real"] <= 3
             for r in results)
    verdict = ("none lost, none duplicated, none unacknowledged, no real triplet above K: the check passes" if ok
               else "**the check FAILED**")
    body = f"""`python benchmarks/annotation_load.py` (`--triplets {args.triplets} --seconds {args.seconds:.0f}`):
50 simulated annotators on 127.0.0.1, each looping `POST next`, three image GETs and `POST vote` with no think
time (3% of votes re-sent as a browser retry would), against one `perface annotate serve` process (uvicorn, one worker,
per-token rate limit off for the run) backed by SQLite in WAL mode and by a PostgreSQL 15 server the script
started (initdb in a temp dir, loopback port, fsync on). {args.triplets} real triplets +
{args.triplets // 10} catch trials, K = 3. Clients and server shared the machine's 2 cores (with other jobs
running on them too), so these are lower bounds for a dedicated server; the server's own CPU time per request
(last column) gives its capacity on one dedicated core (1000 / that figure, requests/s).

{chr(10).join(rows)}

Votes in the database equal the acknowledged answers ({verdict}). The simulated annotators answer at
random, catch trials included, so the project's catch threshold is 0 for this run (catch trials are served,
nobody is flagged) and every vote is valid. Retries were recognised and not
counted twice. A real annotator answers about one triplet every 2-4 s (5 requests), so 50 of them make
about 60-125 requests/s.
"""
    write_fragment("annotation_load", "Annotation app under load (issue 21)", body)


if __name__ == "__main__":
    main()
