"""Training of the correspondence network: synthetic data, datasets, losses, the training loop."""
