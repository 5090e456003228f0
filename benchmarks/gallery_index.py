"""Benchmark the donor gallery's search layers on synthetic data.

1. The approximate index layer (``perface.anonymize.gallery.AnnIndex``, usearch HNSW) on N random unit vectors
   (default 1,000,000 x 128, one partition, vectors only): build time, memory (RSS delta and
   usearch's own count), size on disk, save/load time, query latency p50/p99 over 1,000 queries for the
   10 most and the 10 least similar (the latter via the negated query), recall@10 against exact numpy
   search on 200 queries, for each ``--expansion-search`` value.
2. The SQLite path (``perface.anonymize.gallery.Gallery``) with ``--sqlite-rows`` full donor rows (vectors,
   landmarks and a small JPEG crop): insert rate, file size, first-search cost (loading vectors and
   building/saving the ANN index), and search latency through the gallery API, exact vs approximate.

Random unit vectors are a worst case for HNSW (no cluster structure, the nearest neighbours are barely
closer than everything else), so recall on real embeddings is higher at the same settings.

Usage: ``python benchmarks/gallery_index.py [--n 1000000] [--dim 128] [--markdown out.md]``
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from perface.anonymize.gallery import AnnIndex, Donor, Gallery, IndexConfig, build_index


def rss_bytes() -> int:
    """Current resident set size of this process."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def unit_vectors(
    rng: np.random.Generator, count: int, dim: int, basis: np.ndarray | None = None, chunk: int = 100_000
) -> np.ndarray:
    """Random unit vectors: uniform on the sphere, or (``basis`` given) near a low-dim subspace."""
    out = np.empty((count, dim), dtype=np.float32)
    for start in range(0, count, chunk):
        size = min(chunk, count - start)
        if basis is None:
            block = rng.standard_normal((size, dim), dtype=np.float32)
        else:  # intrinsic dimension = basis rows, plus 10% isotropic noise
            block = rng.standard_normal((size, basis.shape[0]), dtype=np.float32) @ basis
            block += 0.1 * rng.standard_normal((size, dim), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start : start + len(block)] = block
    return out


def make_basis(args: argparse.Namespace, rng: np.random.Generator) -> np.ndarray | None:
    if args.data == "uniform":
        return None
    return (rng.standard_normal((args.intrinsic_dim, args.dim)) / np.sqrt(args.intrinsic_dim)).astype(np.float32)


def data_label(args: argparse.Namespace) -> str:
    if args.data == "uniform":
        return "random unit vectors, uniform on the sphere"
    return f"random unit vectors near a {args.intrinsic_dim}-d subspace (+10% noise)"


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int, ascending: bool) -> np.ndarray:
    """Exact top-k row indices per query (numpy matmul in query chunks)."""
    result = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), 16):
        sims = queries[start : start + 16] @ vectors.T
        if not ascending:
            sims = -sims
        part = np.argpartition(sims, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(sims, part, axis=1).argsort(axis=1)
        result[start : start + 16] = np.take_along_axis(part, order, axis=1)
    return result


def percentiles_ms(samples: list[float]) -> tuple[float, float]:
    values = np.asarray(samples) * 1000.0
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def time_queries(search, queries: np.ndarray) -> tuple[float, float]:
    samples = []
    for query in queries:
        start = time.perf_counter()
        search(query)
        samples.append(time.perf_counter() - start)
    return percentiles_ms(samples)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def bench_index(args: argparse.Namespace, rng: np.random.Generator, workdir: Path) -> list[str]:
    log(f"generating {args.n:,} x {args.dim} unit vectors")
    basis = make_basis(args, rng)
    vectors = unit_vectors(rng, args.n, args.dim, basis)
    queries = unit_vectors(rng, args.queries, args.dim, basis)
    config = IndexConfig(
        threshold=1,
        connectivity=args.connectivity,
        expansion_add=args.expansion_add,
        expansion_search=args.expansion_search[0],
        dtype=args.dtype,
        threads=args.threads,
    )
    rss_before = rss_bytes()
    log(f"building index: {config}")
    start = time.perf_counter()
    index = build_index(vectors, config=config, progress=args.progress)
    build_s = time.perf_counter() - start
    rss_delta = rss_bytes() - rss_before
    log(f"built in {build_s:.1f} s ({args.n / build_s:,.0f} vectors/s)")
    path = workdir / "bench.usearch"
    start = time.perf_counter()
    index.save(path)
    save_s = time.perf_counter() - start
    disk = path.stat().st_size
    start = time.perf_counter()
    loaded = AnnIndex.load(path, config)
    load_s = time.perf_counter() - start
    assert loaded is not None and len(loaded) == args.n
    del loaded

    lines = [
        f"| vectors | {args.n:,} x {args.dim} float32, {data_label(args)} |",
        f"| index | usearch HNSW, cos, dtype {args.dtype}, connectivity {args.connectivity}, "
        f"expansion_add {args.expansion_add}, build threads {args.threads or 'all'} |",
        f"| build time | {build_s:.1f} s ({args.n / build_s:,.0f} vectors/s) |",
        f"| memory | RSS delta {rss_delta / 2**20:,.0f} MiB; usearch memory_usage "
        f"{index.memory_usage / 2**20:,.0f} MiB (raw vectors alone: {vectors.nbytes / 2**20:,.0f} MiB) |",
        f"| on disk | {disk / 2**20:,.0f} MiB; save {save_s:.1f} s, load {load_s:.1f} s |",
        "",
        f"| expansion_search | order | p50 ms | p99 ms | recall@{args.k} ({args.recall_queries} queries) "
        "| mean cos gap to exact |",
        "|---|---|---|---|---|---|",
    ]
    recall_queries = queries[: args.recall_queries]
    truth = {}
    for ascending in (False, True):
        log(f"exact ground truth ({'least' if ascending else 'most'} similar)")
        truth[ascending] = exact_top(vectors, recall_queries, args.k, ascending)
    for expansion in args.expansion_search:
        for partition in index.partitions.values():
            partition.expansion_search = expansion
        for ascending in (False, True):
            order = "ascending" if ascending else "descending"
            p50, p99 = time_queries(lambda q, order=order: index.search(q, args.k, order=order), queries)
            hits, gaps = 0, []
            for query, expected in zip(recall_queries, truth[ascending], strict=True):
                found, _ = index.search(query, args.k, order=order)
                hits += len(set(found.astype(np.int64).tolist()) & set(expected.tolist()))
                # how much worse the returned similarities are than the exact k best, rank by rank
                true_found = np.sort(vectors[found.astype(np.int64)] @ query)
                true_best = np.sort(vectors[expected] @ query)
                gaps.append(float(np.mean(np.abs(true_found - true_best[: len(true_found)]))))
            recall = hits / (args.k * len(recall_queries))
            label = "least similar (-q)" if ascending else "most similar"
            gap = float(np.mean(gaps))
            lines.append(f"| {expansion} | {label} | {p50:.2f} | {p99:.2f} | {recall:.3f} | {gap:.4f} |")
            log(f"ef={expansion} {label}: p50 {p50:.2f} ms p99 {p99:.2f} ms recall {recall:.3f} gap {gap:.4f}")
    # exact numpy baseline for the same vectors, single query
    exact_p50, exact_p99 = time_queries(lambda q: np.argpartition(-(vectors @ q), args.k)[: args.k], queries[:50])
    lines.append(f"| exact numpy (50 queries) | most similar | {exact_p50:.2f} | {exact_p99:.2f} | 1.000 | 0 |")
    return lines


def bench_sqlite(args: argparse.Namespace, rng: np.random.Generator, workdir: Path) -> list[str]:
    crop = Donor.encode_crop((np.indices((112, 112, 3)).sum(axis=0) * 3 % 256).astype(np.uint8), "jpeg", quality=90)
    landmarks = rng.uniform(0, 112, (68, 2)).astype(np.float32)
    rows = args.sqlite_rows
    basis = make_basis(args, rng)
    perceptual = unit_vectors(rng, rows, args.dim, basis)
    identity = rng.standard_normal((rows, 128), dtype=np.float32)
    genders, ages = ("male", "female"), ("young", "older")

    def donors():
        for i in range(rows):
            yield Donor(
                id=f"donor-{i:07d}",
                source=f"synthetic/{i}.jpg",
                gender=genders[i % 2],  # type: ignore[arg-type]
                age=float(20 + i % 60),
                age_group=ages[int(20 + i % 60 >= 40)],  # type: ignore[arg-type]
                attribute_source="label",
                perceptual=perceptual[i],
                identity=identity[i],
                crop=crop,
                landmarks=landmarks,
            )

    path = workdir / "bench-gallery.sqlite"
    config = IndexConfig(
        connectivity=args.connectivity,
        expansion_add=args.expansion_add,
        expansion_search=args.expansion_search[0],
        dtype=args.dtype,
        threads=args.threads,
    )
    log(f"SQLite: inserting {rows:,} donors")
    start = time.perf_counter()
    with Gallery.building(path, "bench-model:0", args.dim, index_config=config) as gallery:
        gallery.add(donors(), batch_size=1000)
    insert_s = time.perf_counter() - start
    size = path.stat().st_size
    lines = [
        f"| rows | {rows:,} donors ({data_label(args)}): perceptual {args.dim}-d, identity 128-d, "
        f"68 landmarks, {len(crop):,} B JPEG crop |",
        f"| insert (Gallery.building + add, one transaction) | {insert_s:.1f} s ({rows / insert_s:,.0f} rows/s) |",
        f"| file size | {size / 2**20:,.0f} MiB ({size / rows:,.0f} B/donor) |",
    ]
    with Gallery.open(path, "bench-model:0", index_config=config) as gallery:
        start = time.perf_counter()
        gallery._search_cache()
        cache_s = time.perf_counter() - start
        start = time.perf_counter()
        gallery.build_index()
        index_s = time.perf_counter() - start
        lines.append(f"| first search setup | load vectors {cache_s:.1f} s + build/save ANN index {index_s:.1f} s |")
    with Gallery.open(path, "bench-model:0", index_config=config) as gallery:
        start = time.perf_counter()
        gallery._search_cache()
        gallery.build_index()
        reopen_s = time.perf_counter() - start
        lines.append(f"| reopen + first search setup (saved index reused) | {reopen_s:.1f} s |")
        queries = unit_vectors(rng, 200, args.dim, basis)
        for label, kwargs in (
            ("exact, all donors", {"exact": True}),
            ("ANN, all donors", {"exact": False}),
            ("exact, one group (1/4)", {"exact": True, "group": ("female", "young")}),
            ("ANN, one group (1/4)", {"exact": False, "group": ("female", "young")}),
        ):
            for order in ("descending", "ascending"):
                p50, p99 = time_queries(lambda q, kw=kwargs, o=order: gallery.search(q, args.k, order=o, **kw), queries)
                lines.append(f"| Gallery.search k={args.k}, {label}, {order} | p50 {p50:.2f} ms, p99 {p99:.2f} ms |")
        agree = np.mean(
            [
                len(
                    set(gallery.search(q, args.k, order="ascending").ids)
                    & set(gallery.search(q, args.k, order="ascending", exact=True).ids)
                )
                / args.k
                for q in queries
            ]
        )
        lines.append(f"| Gallery ANN vs exact, least similar, recall@{args.k} (200 queries) | {agree:.3f} |")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="vectors in the index benchmark")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--data", choices=("uniform", "lowrank"), default="uniform")
    parser.add_argument("--intrinsic-dim", type=int, default=16, help="for --data lowrank")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--recall-queries", type=int, default=200)
    parser.add_argument("--connectivity", type=int, default=16)
    parser.add_argument("--expansion-add", type=int, default=128)
    parser.add_argument("--expansion-search", type=lambda s: [int(v) for v in s.split(",")], default=[64, 128, 256])
    parser.add_argument("--dtype", choices=("f32", "f16", "i8"), default="f32")
    parser.add_argument("--threads", type=int, default=0, help="build threads (0 = all cores)")
    parser.add_argument("--sqlite-rows", type=int, default=100_000, help="0 skips the SQLite benchmark")
    parser.add_argument("--skip-index", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temp dir)")
    parser.add_argument("--progress", action="store_true", help="usearch progress bar while building")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the tables to this file")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    load_start = os.getloadavg()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=args.workdir) as scratch:
        workdir = Path(scratch)
        header = [
            f"Run {datetime.datetime.now().isoformat(timespec='minutes')} on {platform.machine()}, "
            f"{os.cpu_count()} cores ({cpu_name()}), Python {platform.python_version()}, "
            f"numpy {np.__version__}, usearch {__import__('usearch').__version__}; "
            f"load average at start {load_start[0]:.1f}.",
            "",
        ]
        index_lines = [] if args.skip_index else bench_index(args, rng, workdir)
        sqlite_lines = bench_sqlite(args, rng, workdir) if args.sqlite_rows else []
    footer = [
        "",
        f"Total wall time {time.perf_counter() - started:.0f} s; load average at end {os.getloadavg()[0]:.1f}.",
    ]
    out = list(header)
    if index_lines:
        out += ["### Index layer (AnnIndex)", "", "| | |", "|---|---|", *index_lines, ""]
    if sqlite_lines:
        out += ["### SQLite gallery path", "", "| | |", "|---|---|", *sqlite_lines]
    out += footer
    text = "\n".join(out) + "\n"
    print(text)
    if args.markdown:
        args.markdown.write_text(text)


if __name__ == "__main__":
    main()
