"""cpt-experiments: continual pre-training ablations with Hydra and PyTorch Lightning."""

__version__ = "0.1.0"
