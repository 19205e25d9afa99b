r"""Bias and mean squared error beside the variance, for `vae-lab variance`
(:mod:`vae_lab.variance.experiment`).

From M independent estimates g_1, ..., g_M of a gradient whose exact value g* is known:

.. math::

    \bar g = \frac{1}{M}\sum_m g_m, \qquad s^2 = \frac{1}{M-1}\sum_m (g_m - \bar g)^2, \qquad
    \mathrm{SE} = s / \sqrt{M},

    \mathrm{bias} = \bar g - g^*, \qquad \mathrm{bias\_se} = s / \sqrt{M}, \qquad
    \mathrm{mse} = \frac{1}{M}\sum_m (g_m - g^*)^2 = \frac{M-1}{M} s^2 + \mathrm{bias}^2.

g* is a constant, so the bias has the standard error of the mean. For an unbiased estimator
bias / bias_se is about standard normal (central limit theorem), so |bias| > 4 bias_se flags a biased one;
for a biased estimator the ratio grows like sqrt(M). ``mse`` is the unbiased estimate of
E(g - g*)^2 = Var g + (E g - g*)^2: the error of one estimate, noise and bias together, the figure that
ranks a biased but quiet estimator against an unbiased but noisy one. Where g* is unknown (NaN) the three
columns are NaN.
"""

from __future__ import annotations

import math

import pandas as pd
import torch

#: The statistics of :func:`gradient_stats`, in the order of the CSV columns.
STAT_COLUMNS = ["mean", "variance", "std_error", "bias", "bias_se", "mse"]


def gradient_stats(grads: torch.Tensor, exact: float = math.nan) -> dict[str, float]:
    """Mean, unbiased variance, standard error of the mean and, where ``exact`` is finite, bias, its
    standard error and the mean squared error of the estimates ``grads`` (any shape; float64 inside)."""
    g = grads.detach().reshape(-1).to(torch.float64)
    m = g.numel()
    variance = float(g.var(unbiased=True))
    std_error = math.sqrt(variance / m)
    stats = {"mean": float(g.mean()), "variance": variance, "std_error": std_error}
    if math.isfinite(exact):
        stats.update(bias=stats["mean"] - exact, bias_se=std_error, mse=float((g - exact).square().mean()))
    else:
        stats.update(bias=math.nan, bias_se=math.nan, mse=math.nan)
    return stats


def bias_in_standard_errors(frame: pd.DataFrame) -> pd.Series:
    """bias / bias_se per row: within about +-4 for an unbiased estimator (NaN where unknown)."""
    return frame["bias"] / frame["bias_se"]
