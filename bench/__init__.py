"""Benchmark scripts: run as ``python -m bench.<name>``; each prints Markdown tables."""
