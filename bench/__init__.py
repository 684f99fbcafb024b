"""Benchmarks; each prints JSON and measures its own baseline in the same run."""
