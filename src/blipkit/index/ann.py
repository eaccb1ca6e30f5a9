"""The approximate-nearest-neighbour (ANN) vector index of large image collections.

Below :data:`blipkit.defaults.ANN_INDEX_MIN_ROWS` rows LanceDB's exact (flat) search is fast enough and
always right, so no vector index is built. Past it, an IVF-PQ index is built; queries probe
``nprobes`` partitions and re-score ``refine_factor * k`` PQ candidates with the exact vectors, which
is what brings recall back up to exact search's (figures in docs/search.md, from benchmarks/ann_index.py).
"""

from __future__ import annotations

import math
from typing import Any

from blipkit import defaults

VECTOR_COLUMN = "vector"
METRIC = "cosine"
# k-means training of the IVF centroids: LanceDB's defaults (50 iterations on 256 vectors per partition)
# cost several minutes of one core per million rows; these halve that or better (recall is unchanged
# in benchmarks/ann_index.py, because the refine step re-scores candidates exactly anyway).
TRAIN_ITERATIONS = 20
TRAIN_SAMPLE_RATE = 64


def partitions_for(rows: int) -> int:
    """IVF partitions: about sqrt(rows), the usual balance between probe cost and partition scan cost."""
    return max(1, min(4096, round(math.sqrt(rows))))


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
    m: int | None = None, ef_construction: int | None = None,
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
        kwargs["num_sub_vectors"] = sub_vectors_for(dim)
    if "HNSW" in index_type:
        kwargs.update({k: v for k, v in (("m", m), ("ef_construction", ef_construction)) if v})
    table.create_index(**kwargs)


def has_vector_index(table: Any) -> bool:
    return any(VECTOR_COLUMN in idx.columns and idx.index_type != "FTS" for idx in table.list_indices())
