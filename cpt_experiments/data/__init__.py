"""Data layer: corpora, tokenizer, token caches, replay mixing, datamodule."""
