"""Benchmarks for cio_async; see README.md in this folder."""
