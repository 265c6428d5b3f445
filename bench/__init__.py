"""Benchmarks of Provider Admin (see bench/README.md and docs/PERFORMANCE.md)."""
