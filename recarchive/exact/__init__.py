"""Exact arithmetic: counter-based random numbers, quantile tables and integer layers whose
results are bit-identical across batch sizes, thread counts and devices."""
