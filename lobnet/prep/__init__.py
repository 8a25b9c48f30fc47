"""Preparing data for models: labels and their thresholds, walk-forward splits with purging and embargo,
normalisation, windows (the dataset and its samplers), and the prepared table (the cache)."""
