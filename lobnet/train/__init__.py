"""Training: the walk-forward loop, the LightningModule, the losses."""
