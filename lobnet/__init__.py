"""lobnet: deep-learning forecasting on limit-order-book data."""

__version__ = "0.1.0"
