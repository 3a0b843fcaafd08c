"""Evaluation: lm-eval harness wrapper and offline task YAMLs."""
