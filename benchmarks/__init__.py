"""blipkit's CPU benchmarks: plain transformers against blipkit's default and fast paths."""
