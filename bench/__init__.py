"""DDGAN-Bench harness: datasets, training and sampling CLIs, metrics, timing and benchmarks."""
