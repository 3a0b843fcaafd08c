"""Measuring models: per-domain validation loss, the lm-eval harness wrapper, held-out tasks, offline task YAMLs."""
