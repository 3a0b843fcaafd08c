"""Training one stage: the model, the LightningModule, its datamodule, callbacks and loggers."""
