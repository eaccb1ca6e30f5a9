"""Batch jobs: caption, embed, index or CapFilt a whole dataset, locally or scaled out on Ray.

A job is reader -> model op -> writer over deterministic shards of the input (see
:mod:`blipkit.jobs.shards`). Each shard's rows are committed as one part file, atomically, so a job is
resumable (a re-run skips the shards already written) and its output rows are exact-once. The same job
definition (:class:`~blipkit.jobs.runner.ShardRunner`) runs in this process (``engine="local"``, the
default, which needs no Ray) or in a pool of Ray actors (``engine="ray"``).

    from blipkit.jobs import JobSpec, run_job
    run_job(JobSpec("caption", input="photos/", output="captions/"), engine="ray", workers=4)
"""

from blipkit.jobs.job import ENGINES, JobSummary, run_job
from blipkit.jobs.shards import Shard, plan_shards
from blipkit.jobs.spec import FORMATS, OPS, JobSpec
from blipkit.jobs.writers import read_output

__all__ = [
    "ENGINES", "FORMATS", "OPS", "JobSpec", "JobSummary", "Shard", "plan_shards", "read_output", "run_job",
]
