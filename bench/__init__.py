"""Benchmarks: each runs ragserve and a baseline in one process and prints ratios."""
