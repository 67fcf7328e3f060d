"""tierwise: wallet tier, calibrated churn and next-best-product scoring for retail banks."""

__version__ = "0.1.0"
