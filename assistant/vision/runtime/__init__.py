"""Turning a model name into loaded weights: finding checkpoints, loading them, encoding images, and
the CPU fast path."""
