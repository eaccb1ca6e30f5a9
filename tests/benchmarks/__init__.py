"""the engine's CPU benchmarks: plain transformers against the engine's default and fast paths."""
