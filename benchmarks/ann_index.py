"""Benchmark the approximate-nearest-neighbour (ANN) index that ``blipkit index`` builds on large collections.

Writes ``--n`` random unit vectors of the model's dimension to a LanceDB table, builds the same kind of
vector index the image index builds (:func:`blipkit.index.ann.create_vector_index`), and reports its build
time, the p50/p99 latency of one top-10 query, and recall@10 against exact (brute-force) search, for each
``--nprobes`` x ``--refine-factor`` setting asked for.

    python benchmarks/ann_index.py                  # 1,000,000 x 256, the goal: p50 <= 20 ms, recall >= 0.95
    python benchmarks/ann_index.py --n 100000 --nprobes 20,40 --refine-factor 5,10

``--data random`` (default) draws vectors uniformly on the sphere: the hardest case for any ANN index,
because nothing clusters. ``--data clustered`` draws them around 1,000 centres, closer to real image
embeddings. Queries are database vectors plus noise, so each query has a true nearest neighbour.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def make_vectors(n: int, dim: int, data: str, rng: np.random.Generator, chunk: int = 100_000):
    """Yield unit vectors in chunks (1M x 256 float32 is 1 GB: never hold two copies)."""
    centres = unit(rng.standard_normal((1000, dim))) if data == "clustered" else None
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        if centres is None:
            yield unit(rng.standard_normal((m, dim)))
        else:
            picks = centres[rng.integers(0, len(centres), m)]
            yield unit(picks + 0.05 * rng.standard_normal((m, dim)))


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Brute-force top-k row ids by cosine similarity, in query chunks to bound memory."""
    out = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), 16):
        sims = queries[start : start + 16] @ vectors.T
        part = np.argpartition(-sims, k, axis=1)[:, :k]
        order = np.take_along_axis(sims, part, axis=1).argsort(axis=1)[:, ::-1]
        out[start : start + 16] = np.take_along_axis(part, order, axis=1)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000, help="vectors in the table")
    parser.add_argument("--dim", type=int, default=256, help="vector dimension (the built-in model's: 256)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--data", choices=("random", "clustered"), default="random")
    parser.add_argument("--index-type", default=None, help="IVF_PQ, IVF_HNSW_SQ... (default: blipkit's)")
    parser.add_argument("--partitions", type=int, default=None, help="IVF partitions (default: sqrt(n))")
    parser.add_argument("--nprobes", default=None, help="comma-separated list (default: blipkit's)")
    parser.add_argument("--refine-factor", default=None, help="comma-separated list (default: blipkit's)")
    parser.add_argument("--ef", default=None, help="comma-separated HNSW search widths (HNSW index types)")
    parser.add_argument("--m", type=int, default=None, help="HNSW graph degree (HNSW index types)")
    parser.add_argument("--ef-construction", type=int, default=None, help="HNSW build width")
    parser.add_argument("--num-bits", type=int, default=None, help="bits per code (RQ: blipkit's 3, PQ: 8)")
    parser.add_argument("--sub-vectors", type=int, default=None, help="PQ sub-vectors (default: dim / 8)")
    parser.add_argument("--sync-api", action="store_true",
                        help="also time each setting through LanceDB's synchronous API, query by query in "
                             "turn with blipkit's own path (which runs queries on its own event loop)")
    parser.add_argument("--exact", action="store_true", help="also time an exact scan (no index)")
    parser.add_argument("--db", type=Path, default=None, help="folder for the table (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="reuse/keep the table in --db between runs")
    parser.add_argument("--reuse-index", action="store_true",
                        help="with --keep, query the kept table's vector index as it is (else it is rebuilt "
                             "with the settings asked for)")
    parser.add_argument("--storage-version", default=None,
                        help="Lance file format of a new table (2.0, 2.1...; default: LanceDB's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)

    import lancedb

    from blipkit import defaults
    from blipkit.index.ann import create_vector_index, tune_query

    rng = np.random.default_rng(args.seed)
    workdir = args.db or Path(tempfile.mkdtemp(prefix="blipkit-ann-"))
    db = lancedb.connect(str(workdir))
    schema = pa.schema([("id", pa.int64()), ("vector", pa.list_(pa.float32(), args.dim))])
    vectors = np.empty((args.n, args.dim), dtype=np.float32)
    t0 = time.perf_counter()
    if args.keep and "bench" in db.list_tables().tables:
        table = db.open_table("bench")
        for start, chunk in _starts(make_vectors(args.n, args.dim, args.data, rng)):
            vectors[start : start + len(chunk)] = chunk
    else:
        if "bench" in db.list_tables().tables:
            db.drop_table("bench")
        table = db.create_table("bench", schema=schema, data_storage_version=args.storage_version)
        for start, chunk in _starts(make_vectors(args.n, args.dim, args.data, rng)):
            vectors[start : start + len(chunk)] = chunk
            ids = pa.array(np.arange(start, start + len(chunk)), pa.int64())
            flat = pa.FixedSizeListArray.from_arrays(pa.array(chunk.ravel()), args.dim)
            table.add(pa.Table.from_arrays([ids, flat], schema=schema))
    load_s = time.perf_counter() - t0
    print(f"{args.n:,} x {args.dim} {args.data} vectors written in {load_s:.1f} s", file=sys.stderr)

    t0 = time.perf_counter()
    if not (args.keep and args.reuse_index and table.list_indices()):
        create_vector_index(table, args.n, index_type=args.index_type, partitions=args.partitions,
                            m=args.m, ef_construction=args.ef_construction, num_bits=args.num_bits,
                            sub_vectors=args.sub_vectors)
    build_s = time.perf_counter() - t0
    print(f"index built in {build_s:.1f} s: {table.list_indices()}", file=sys.stderr)

    picks = rng.integers(0, args.n, args.queries)
    queries = unit(vectors[picks] + 0.3 / np.sqrt(args.dim) * rng.standard_normal((args.queries, args.dim)))
    t0 = time.perf_counter()
    truth = exact_top(vectors, queries, args.k)
    exact_ms = (time.perf_counter() - t0) * 1000 / args.queries
    del vectors

    default_probes, default_refine = tune_query(args.n)
    nprobes = [int(x) for x in args.nprobes.split(",")] if args.nprobes else [default_probes]
    refines = [int(x) for x in args.refine_factor.split(",")] if args.refine_factor else [default_refine]
    efs = [int(x) for x in args.ef.split(",")] if args.ef else [None]
    index_type = (args.index_type or defaults.ANN_INDEX_TYPE).upper()
    base = {"n": args.n, "dim": args.dim, "data": args.data, "build_s": round(build_s, 1),
            "exact_numpy_ms": round(exact_ms, 1)}
    results = []
    if args.exact:
        row = {**base, "index_type": "none (exact scan)",
               **measure(table, queries, truth, args.k, None, None, None, ["exact"])["exact"]}
        results.append(row)
        print(json.dumps(row), flush=True)
    for probes, refine, ef in ((p, r, e) for p in nprobes for r in refines for e in efs):
        # HNSW's search width is only on LanceDB's synchronous query builder
        apis = ["sync"] if ef else ["blipkit", "sync"] if args.sync_api else ["blipkit"]
        for api, figures in measure(table, queries, truth, args.k, probes, refine, ef, apis).items():
            row = {**base, "index_type": index_type, "nprobes": probes, "refine_factor": refine, "ef": ef,
                   "query_api": "lancedb sync" if api == "sync" else api, **figures}
            results.append(row)
            print(json.dumps(row), flush=True)
    goal_ok = [r for r in results if r["p50_ms"] <= 20 and r[f"recall@{args.k}"] >= 0.95]
    print(f"goal (p50 <= 20 ms, recall@{args.k} >= 0.95) met by {len(goal_ok)} of {len(results)} settings; "
          f"ANN threshold in blipkit: {defaults.ANN_INDEX_MIN_ROWS:,} rows", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if args.db is None and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def measure(table, queries: np.ndarray, truth: np.ndarray, k: int, nprobes: int | None,
            refine: int | None, ef: int | None, apis: list[str]) -> dict[str, dict[str, float]]:
    """p50/p99 latency of one top-k query and recall@k against ``truth``, for each query API of ``apis``:
    ``blipkit`` (its own query path, as ``blipkit search`` runs it), ``sync`` (LanceDB's synchronous
    API) or ``exact`` (a scan that bypasses the index). The APIs take turns query by query, so that a
    change in the machine's speed hits them alike."""
    from blipkit.index.ann import nearest

    latencies: dict[str, list[float]] = {api: [] for api in apis}
    hits = dict.fromkeys(apis, 0)
    for i, q in enumerate(queries):
        for api in apis:
            t0 = time.perf_counter()
            if api == "blipkit":
                got = nearest(table, q, k, columns=["id"], nprobes=nprobes, refine_factor=refine)["id"]
            else:
                query = table.search(q, vector_column_name="vector").distance_type("cosine").limit(k)
                if api == "exact":
                    query = query.bypass_vector_index()
                if nprobes:
                    query = query.nprobes(nprobes)
                if refine:
                    query = query.refine_factor(refine)
                if ef:
                    query = query.ef(ef)
                got = query.select(["id", "_distance"]).to_arrow()["id"]
            latencies[api].append((time.perf_counter() - t0) * 1000)
            hits[api] += len(set(got.to_numpy().tolist()) & set(truth[i].tolist()))
    out = {}
    for api, times in latencies.items():
        lat = np.array(times[min(5, len(times) - 1) :])  # the first queries warm the caches
        out[api] = {
            "p50_ms": round(float(np.percentile(lat, 50)), 2),
            "p99_ms": round(float(np.percentile(lat, 99)), 2),
            f"recall@{k}": round(hits[api] / (k * len(queries)), 4),
        }
    return out


def _starts(chunks):
    start = 0
    for chunk in chunks:
        yield start, chunk
        start += len(chunk)


if __name__ == "__main__":
    sys.exit(main())
