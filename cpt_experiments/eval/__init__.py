"""Measuring models: per-domain validation loss, the lm-eval harness wrapper (task resolution, checkpoint
loading, the in-process run), held-out tasks, offline task YAMLs."""
