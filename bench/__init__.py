"""Benchmarks (`make bench`); not timed tests."""
