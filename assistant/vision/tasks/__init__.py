"""BLIP's tasks, each a set of functions over a :class:`~assistant.vision.runtime.checkpoint.Checkpoint`."""
