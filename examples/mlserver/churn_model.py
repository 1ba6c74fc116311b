"""The example's churn model, NumPy only (shared by train.py and the MLServer runtime)."""

import numpy as np


def predict(x, mean, std, coef, bias):
    """Standardised log1p features -> logistic regression -> churn probability."""
    z = (np.log1p(np.maximum(x, 0)) - mean) / std
    return 1.0 / (1.0 + np.exp(-(z @ coef + bias)))
