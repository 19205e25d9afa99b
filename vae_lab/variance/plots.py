"""The plots of `vae-lab variance`: ``variance.png`` (per family the variance, the bias in standard errors
and the mean squared error against the concentration) and ``gaussian.png`` (variance against N)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from vae_lab.variance.stats import bias_in_standard_errors
from vae_lab.variance.tables import estimator_label

#: Rows of the family plot: (column, y label). bias_z is bias / bias_se, on a linear scale (symmetric-log
#: beyond +-10 where some |bias_z| exceeds 30); the others on a log scale.
PANELS = [
    ("variance", "variance of a single-sample gradient"),
    ("bias_z", "bias / standard error (|.| < 4 shaded)"),
    ("mse", "mean squared error (variance + bias$^2$)"),
]


def plot_families(frame: pd.DataFrame, path: Path) -> None:
    """Against the concentration (log scale), one column of panels per family and one line per estimator
    (and B): the variance, the bias in standard errors and the MSE (rows :data:`PANELS`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = frame.assign(bias_z=bias_in_standard_errors(frame))
    families = list(dict.fromkeys(frame["family"]))
    fig, axes = plt.subplots(
        len(PANELS), len(families), figsize=(5.5 * len(families), 3.6 * len(PANELS)), squeeze=False
    )
    xlabels = {"dirichlet": r"concentration $\alpha_1$", "vonmises": r"concentration $\kappa$"}
    for column, family in zip(axes.T, families, strict=True):
        sub = frame[frame["family"] == family]
        labels = pd.Series(
            [estimator_label(e, b) for e, b in zip(sub["estimator"], sub["B"], strict=True)], index=sub.index
        )
        for ax, (value, ylabel) in zip(column, PANELS, strict=True):
            for label in dict.fromkeys(labels):
                line = sub[labels == label].dropna(subset=[value]).sort_values("concentration")
                ax.plot(line["concentration"], line[value], marker="o", ms=3, label=label)
            ax.set_xscale("log")
            if value != "bias_z":
                ax.set_yscale("log")
            else:
                ax.axhspan(-4.0, 4.0, color="0.9", zorder=0)
                lo, hi = ax.get_ylim()
                ax.set_ylim(min(lo, -8.0), max(hi, 8.0))
                if sub[value].abs().max() > 30:
                    ax.set_yscale("symlog", linthresh=10.0)
            ax.set_title(family)
            ax.set_xlabel(xlabels.get(family, "concentration"))
            ax.set_ylabel(ylabel)
            ax.grid(True, which="both", alpha=0.3)
        column[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_gaussian(frame: pd.DataFrame, path: Path) -> None:
    """Log-log variance vs N of the N-sample average, measured (markers) and theory (dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for name, sub in frame.groupby("estimator", sort=False):
        (line,) = ax.loglog(sub["N"], sub["variance"], marker="o", label=f"{name} (measured)")
        ax.loglog(sub["N"], sub["theory_variance"], ls="--", color=line.get_color(), label=f"{name} (theory)")
    ax.set_xlabel("N (samples averaged)")
    ax.set_ylabel("variance over repetitions")
    ax.set_title(r"$\nabla_\theta E_{N(\theta,1)}[z^2]$")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
