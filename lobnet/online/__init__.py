"""One-pass estimators (EW mean, variance, regression), the factors built on them and alpha calibration.
Convention: alpha in (0, 1] is the weight kept on the old estimate; alpha near 1 is long memory."""

from lobnet.online.estimators import EWMean, EWRegression, EWVar, ew_mean, ew_regression, ew_var

__all__ = ["EWMean", "EWRegression", "EWVar", "ew_mean", "ew_regression", "ew_var"]
