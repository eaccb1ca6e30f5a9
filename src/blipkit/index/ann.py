"""The approximate-nearest-neighbour (ANN) vector index of large image collections.

Below :data:`blipkit.defaults.ANN_INDEX_MIN_ROWS` rows LanceDB's exact (flat) search is fast enough and
always right, so no vector index is built. Past it, an IVF index with RaBitQ codes is built (3 bits a
dimension); queries probe ``nprobes`` partitions (every one, up to about a million rows) and re-score
``refine_factor * k`` candidates with the exact vectors. Figures in docs/search.md, from
benchmarks/ann_index.py; ``index_type`` still takes LanceDB's other kinds (IVF_PQ, IVF_HNSW_SQ...).
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from blipkit import defaults

VECTOR_COLUMN = "vector"
METRIC = "cosine"
# k-means training of the IVF centroids: LanceDB's defaults (50 iterations on 256 vectors per partition)
# cost several minutes of one core per million rows; these halve that or better (recall is unchanged
# in benchmarks/ann_index.py, because the refine step re-scores candidates exactly anyway).
TRAIN_ITERATIONS = 20
TRAIN_SAMPLE_RATE = 64


def partitions_for(rows: int) -> int:
    """IVF partitions: one per :data:`~blipkit.defaults.ANN_ROWS_PER_PARTITION` rows. Few and large, because
    a query scans whole partitions of compact codes: it is the partitions it skips that cost recall."""
    return max(1, min(4096, math.ceil(rows / defaults.ANN_ROWS_PER_PARTITION)))


def sub_vectors_for(dim: int) -> int:
    """PQ sub-vectors of 8 dimensions each (a divisor of ``dim``, so every sub-vector is the same size)."""
    for width in (8, 4, 2, 1):
        if dim % width == 0 and dim // width >= 1:
            return dim // width
    return dim


def tune_query(rows: int) -> tuple[int, int]:
    """(nprobes, refine_factor) for a table of ``rows`` rows: the defaults, never more probes than
    partitions."""
    return min(defaults.ANN_NPROBES, partitions_for(rows)), defaults.ANN_REFINE_FACTOR


def create_vector_index(
    table: Any, rows: int, *, index_type: str | None = None, partitions: int | None = None,
    m: int | None = None, ef_construction: int | None = None, num_bits: int | None = None,
    sub_vectors: int | None = None,
) -> None:
    """Build (or rebuild) the vector index of ``table`` for ``rows`` rows."""
    index_type = (index_type or defaults.ANN_INDEX_TYPE).upper()
    dim = table.schema.field(VECTOR_COLUMN).type.list_size
    kwargs: dict[str, Any] = {
        "metric": METRIC, "vector_column_name": VECTOR_COLUMN, "index_type": index_type, "replace": True,
        "num_partitions": partitions or partitions_for(rows), "max_iterations": TRAIN_ITERATIONS,
        "sample_rate": TRAIN_SAMPLE_RATE,
    }
    if "PQ" in index_type:
        kwargs["num_sub_vectors"] = sub_vectors or sub_vectors_for(dim)
    if "RQ" in index_type:
        kwargs["num_bits"] = num_bits or defaults.ANN_NUM_BITS
    elif num_bits:
        kwargs["num_bits"] = num_bits
    if "HNSW" in index_type:
        kwargs.update({k: v for k, v in (("m", m), ("ef_construction", ef_construction)) if v})
    table.create_index(**kwargs)


def has_vector_index(table: Any) -> bool:
    return any(VECTOR_COLUMN in idx.columns and idx.index_type != "FTS" for idx in table.list_indices())


_loops = threading.local()


def nearest(
    table: Any, vector: np.ndarray, limit: int, *, columns: Sequence[str], nprobes: int | None = None,
    refine_factor: int | None = None, where: str | None = None,
) -> pa.Table:
    """The ``limit`` rows nearest to ``vector`` (``columns`` and ``_distance``), best first.

    The query runs on this thread's own event loop over the table's native async handle: LanceDB's
    synchronous API hands every call to a background loop thread, which costs 2-3 ms of thread
    switching a query on one core (measured against the same query, same results). Inside a running
    event loop, or where the handle is missing, the synchronous API runs it.
    """
    native = getattr(table, "_table", None)
    if native is None or not hasattr(native, "search") or _in_event_loop():
        query = table.search(vector, vector_column_name=VECTOR_COLUMN)
        if where:
            query = query.where(where, prefilter=True)
        return _shape(query, limit, columns, nprobes, refine_factor).to_arrow()

    async def run() -> pa.Table:
        query = await native.search(vector, vector_column_name=VECTOR_COLUMN)
        if where:
            query = query.where(where)  # the async API filters before the vector search by default
        return await _shape(query, limit, columns, nprobes, refine_factor).to_arrow()

    loop = getattr(_loops, "loop", None)
    if loop is None:
        loop = _loops.loop = asyncio.new_event_loop()
    return loop.run_until_complete(run())


def _shape(query: Any, limit: int, columns: Sequence[str], nprobes: int | None, refine_factor: int | None
           ) -> Any:
    query = query.distance_type(METRIC).limit(limit)
    if nprobes:
        query = query.nprobes(nprobes)
    if refine_factor:
        query = query.refine_factor(refine_factor)
    return query.select([*columns, "_distance"])


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
