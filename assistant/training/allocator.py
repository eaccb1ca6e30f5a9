"""Run long training jobs on jemalloc when the machine has it.

A training step allocates and frees hundreds of activation tensors of every size. In a process that has
been training for a while, glibc's malloc spends a quarter to a third of each step on its own bookkeeping
(py-spy on the built-in recipe: 30% of samples in libc under ``empty_generic``), and the step time grew
from about 3.7 to 6.5 s. jemalloc keeps that under a tenth. The allocator must be chosen before the
process starts, so the training commands re-execute themselves once with jemalloc preloaded, as
PyTorch's own CPU launcher (``torch.backends.xeon.run_cpu``) does. ``BLIP_ASSISTANT_ALLOCATOR=system`` turns
this off; ``BLIP_ASSISTANT_ALLOCATOR=/path/to/lib.so`` names the library.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

ALLOCATOR_ENV = "BLIP_ASSISTANT_ALLOCATOR"
# Set in the re-executed process, so that it never re-executes again.
_PRELOADED_ENV = "BLIP_ASSISTANT_ALLOCATOR_PRELOADED"
# Where Debian/Ubuntu (`apt install libjemalloc2`), Fedora and Homebrew put it.
JEMALLOC_PATHS = (
    "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
    "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2",
    "/usr/lib64/libjemalloc.so.2",
    "/usr/lib/libjemalloc.so.2",
    "/usr/local/lib/libjemalloc.so.2",
)
# jemalloc's own page decay is kept. With it off (MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1) a
# 40-step A/B had cut page faults 7x with no gain in step time, but a caption-only run then grew by about
# 40 MB a step (3.3 GB to 6.8 GB in 142 steps) until the kernel killed it at 23 GB; with the default
# decay it stays at 3.3-3.5 GB. A MALLOC_CONF of the user's own passes through.

# Commands that run long enough for the allocator to matter.
TRAINING_COMMANDS = frozenset({"pretrain", "finetune"})


def allocator_library(env: Mapping[str, str]) -> str | None:
    """The allocator library to preload, or None (asked not to, none found, or already preloaded)."""
    choice = env.get(ALLOCATOR_ENV, "")
    if choice == "system" or env.get(_PRELOADED_ENV) or not sys.platform.startswith("linux"):
        return None
    candidates = [choice] if choice else list(JEMALLOC_PATHS)
    found = next((c for c in candidates if Path(c).is_file()), None)
    if found is None or found in env.get("LD_PRELOAD", "").split(":"):
        return None
    return found


def preload_env(env: Mapping[str, str], library: str) -> dict[str, str]:
    """``env`` with ``library`` first in ``LD_PRELOAD``."""
    out = dict(env)
    out["LD_PRELOAD"] = ":".join(p for p in (library, env.get("LD_PRELOAD", "")) if p)
    out[_PRELOADED_ENV] = "1"
    return out


def reexec_for_training(argv: Sequence[str]) -> None:
    """Re-execute this command with jemalloc preloaded when it is a training command and jemalloc is
    there; otherwise return and let the command run as it is."""
    words = list(argv[1:3])
    command = words[1] if words[:1] == ["model"] and len(words) > 1 else (words[0] if words else "")
    if command not in TRAINING_COMMANDS:
        return
    library = allocator_library(os.environ)
    if library is None:
        return
    note = f"blip-assistant: training on jemalloc ({library}); {ALLOCATOR_ENV}=system turns this off"
    print(note, file=sys.stderr)
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *argv], preload_env(os.environ, library))
