"""BLIP's tasks, each a set of functions over a :class:`~blipkit.runtime.checkpoint.Checkpoint`."""
