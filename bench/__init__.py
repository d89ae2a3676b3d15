"""Benchmarks (``make bench``). Figures go to BENCHMARKS.md with date and machine."""
