"""The printed tables of `vae-lab variance`: per family a row per concentration and a column per
estimator (and RSVI's B) for one statistic, and the Gaussian example's table."""

from __future__ import annotations

import math

import pandas as pd

from vae_lab.variance.stats import bias_in_standard_errors

#: The family tables printed, in order: (column, title); ``bias_z`` is bias / bias_se.
FAMILY_TABLES = (
    ("variance", "Variance"),
    ("bias_z", "Bias in standard errors (|bias| / bias_se > 4: biased)"),
    ("mse", "Mean squared error"),
)


def estimator_label(estimator: str, B: float) -> str:
    """``rsvi B=3`` for an RSVI row with a shape augmentation, else the estimator's name."""
    return (
        f"rsvi B={int(B)}"
        if estimator == "rsvi" and not (isinstance(B, float) and math.isnan(B))
        else estimator
    )


def family_table(frame: pd.DataFrame, value: str = "variance") -> str:
    """One column as compact text tables, one per family: a row per concentration, a column per estimator.
    ``value`` is a column of the frame or ``bias_z`` (bias / bias_se)."""
    frame = frame.assign(
        label=[estimator_label(e, b) for e, b in zip(frame["estimator"], frame["B"], strict=True)],
        bias_z=bias_in_standard_errors(frame),
    )
    parts = []
    for family, sub in frame.groupby("family", sort=False):
        table = sub.pivot_table(
            index="concentration", columns="label", values=value, sort=False, dropna=False
        )
        table = table[list(dict.fromkeys(sub["label"]))].sort_index()
        table.insert(0, "exact grad", sub.groupby("concentration")["exact"].first())
        table.index = [f"{c:.4g}" for c in table.index]
        table.index.name = f"{family}: concentration"
        table.columns.name = None
        parts.append(table.to_string(float_format=lambda v: f"{v:.3g}", na_rep="-"))
    return "\n\n".join(parts)


def family_tables(frame: pd.DataFrame) -> str:
    """The tables of :data:`FAMILY_TABLES`, each under its title."""
    return "\n\n".join(f"{title}:\n{family_table(frame, value)}" for value, title in FAMILY_TABLES)


def gaussian_table(frame: pd.DataFrame) -> str:
    return frame.drop(columns=["repetitions"]).to_string(index=False, float_format=lambda v: f"{v:.4g}")
