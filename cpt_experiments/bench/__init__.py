"""Benchmarks: ``python -m cpt_experiments.bench data|train`` prints throughput figures side by side."""
