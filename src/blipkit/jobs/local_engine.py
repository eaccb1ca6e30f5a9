"""The local engine: every shard in this process, one after the other, with a progress bar.

It needs nothing beyond blipkit itself (no Ray), loads the model once, and is what ``blipkit job`` runs
unless told ``--engine ray``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from blipkit.jobs.runner import ShardReport, ShardRunner
from blipkit.jobs.shards import Shard
from blipkit.jobs.spec import JobSpec


def run_local(spec: JobSpec, shards: Sequence[Shard], *, staging: str | None = None,
              progress: bool = True, on_report: Callable[[ShardReport], object] | None = None
              ) -> list[ShardReport]:
    """Run ``shards`` in order in this process; their parts go to ``staging`` (default: the output).

    ``on_report`` is called with each shard's report once its part is committed."""
    from tqdm import tqdm

    if not shards:
        return []
    sizes = [s.size for s in shards]
    total = None if any(n is None for n in sizes) else sum(sizes)  # type: ignore[arg-type]
    runner = ShardRunner(spec, staging)
    reports = []
    with tqdm(total=total, unit="img", disable=not progress, file=sys.stderr, dynamic_ncols=True) as bar:
        for shard in shards:
            reports.append(runner.run(shard, on_images=bar.update))
            if on_report:
                on_report(reports[-1])
            bar.set_postfix(shards=f"{len(reports)}/{len(shards)}", refresh=False)
    return reports
