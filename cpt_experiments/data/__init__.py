"""Data layer (no Lightning): corpora, tokenizer, token caches, windows, mixture plans, replay, sampler."""
