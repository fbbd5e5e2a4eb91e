"""Benchmarks of the ALBERT encoder (see `benchmarks/README.md`)."""
