"""Evaluation: metrics, the backtest (and its regimes), per-fold figures."""
