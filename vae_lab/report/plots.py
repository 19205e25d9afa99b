"""The plots of a report: learning curves (``curves.png``), gradient variance per parameter group against
step (``grad_variance.png``, log scale) and the final metrics per group (``final.png``; with ``--columns
KEY`` against the values of KEY, one line per row of the two-way table); each group has one colour in
every plot, lines are means over seeds with a band of ± 1 standard deviation; on the gradient variance's
log scale the geometric mean, with a band from dividing to multiplying it by the geometric standard
deviation (mean and sd of the logarithms), which stays above zero."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from vae_lab.report.loading import BEST_PREFIX, Sweep, natural_value
from vae_lab.report.statistics import GRAD_VAR
from vae_lab.report.tables import by_column, row_colors, split_groups

PLOTS = ("curves.png", "grad_variance.png", "final.png")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _group_curves(sweep: Sweep, metric: str, geometric: bool = False) -> list[tuple[str, pd.DataFrame]]:
    """Per group (completed jobs): step, mean and count of ``metric`` over seeds and the band [lo, hi],
    mean ± std. With ``geometric`` (for a log scale) the statistics of the logarithms of the positive
    values: mean = exp(m), band [exp(m - s), exp(m + s)], for m and s the mean and sd of the logs (an
    arithmetic mean - sd of a skewed positive quantity such as a variance often falls below zero, where a
    log scale has nothing to draw)."""
    done = sweep.completed[["job", "group"]]
    curves = sweep.curves[sweep.curves["metric"] == metric].merge(done, on="job")
    out = []
    for label in sweep.groups:
        part = curves[curves["group"] == label]
        if part.empty:
            continue
        per_job = part.groupby(["job", "step"], as_index=False)["value"].mean()
        if geometric:
            per_job = per_job[per_job["value"] > 0].assign(value=lambda d: np.log(d["value"]))
        stats = per_job.groupby("step")["value"].agg(["mean", "std", "count"]).reset_index()
        out.append((label, _band(stats, geometric)))
    return out


def _band(stats: pd.DataFrame, geometric: bool) -> pd.DataFrame:
    """lo, hi = mean -+ std (a single run: no width); ``geometric``: mean, std are of the logs, and mean,
    lo, hi come back exponentiated."""
    std = stats.pop("std").fillna(0.0)  # the band replaces it (smoothing then keeps the two consistent)
    stats = stats.assign(lo=stats["mean"] - std, hi=stats["mean"] + std)
    if geometric:
        stats[["mean", "lo", "hi"]] = np.exp(stats[["mean", "lo", "hi"]])
    return stats


def _line_with_band(ax, stats: pd.DataFrame, label: str, color: str, show_n: bool = True) -> None:
    (line,) = ax.plot(
        stats["step"],
        stats["mean"],
        marker="o" if len(stats) < 20 else None,
        ms=3,
        color=color,
        label=f"{label} (n={int(stats['count'].max())})" if show_n else label,
    )
    band = stats["count"] > 1
    if band.any():
        ax.fill_between(
            stats["step"][band], stats["lo"][band], stats["hi"][band], color=line.get_color(), alpha=0.2, lw=0
        )


#: panels per row of a figure: a sweep with many metrics (a probe's ``compare``) wraps into rows
PANELS_PER_ROW = 4


def _panels(plt, n: int, width: float, height: float):
    """A figure of ``n`` panels, at most :data:`PANELS_PER_ROW` a row, and its used axes in order (the
    rest of the last row hidden)."""
    cols = min(n, PANELS_PER_ROW)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _legend_below(fig, axes) -> None:
    """One legend for the figure, under its panels: group labels are long, and a legend inside a panel
    hides its lines."""
    handles, labels = {}, []
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in handles:
                handles[label] = handle
                labels.append(label)
    if labels:
        rows = 1 if len(labels) <= 4 else len(labels)
        fig.legend(
            [handles[label] for label in labels],
            labels,
            loc="lower center",
            fontsize="small",
            ncol=len(labels) if rows == 1 else 1,
            frameon=False,
        )
        bottom = (0.2 + 0.18 * rows) / fig.get_size_inches()[1]  # the legend's lines, in inches
        fig.tight_layout(rect=(0, bottom, 1, 1))
    else:
        fig.tight_layout()


def plot_curves(sweep: Sweep, path: Path, column: str | None = None) -> bool:
    """train/elbo and val/elbo against step (:func:`_curve_panels`). The y axis shows the curves from 5%
    of their steps on (the first steps, often hundreds of nats lower, would flatten the rest); nothing
    is dropped."""
    metrics = [m for m in ("train/elbo", "val/elbo") if (sweep.curves["metric"] == m).any()]
    series = {m: _group_curves(sweep, m) for m in metrics}
    return _curve_panels(sweep, series, column, path, log=False)


def plot_grad_variance(sweep: Sweep, path: Path, column: str | None = None) -> bool:
    """grad/var/<parameter group> against step on a log scale (:func:`_curve_panels`): one panel per
    parameter group (and value of ``column``), one line per run group (estimator, family, ...)."""
    names = sorted(m for m in sweep.curves["metric"].unique() if GRAD_VAR.match(str(m)))
    # a group with no positive variance (e.g. a frozen prior) has nothing to draw on a log scale
    series = {m: [(g, st) for g, st in _group_curves(sweep, m, geometric=True) if len(st)] for m in names}
    return _curve_panels(sweep, series, column, path, log=True)


#: curves with more points than this are drawn smoothed (:func:`_curve_panels`)
SMOOTH_ABOVE = 500


def _curve_panels(
    sweep: Sweep, series: dict[str, list[tuple[str, pd.DataFrame]]], column: str | None, path: Path, log: bool
) -> bool:
    """Metrics against step, mean over seeds per group with a band of ± 1 std, one panel per metric, the
    legend below. With ``column`` (``--columns``) one panel per metric and value of that override, one
    line per row of its two-way table, coloured as in final.png. A curve of more than
    :data:`SMOOTH_ABOVE` points is drawn as its running mean over 1% of them (said in the title):
    per-batch ELBOs and gradient variances scatter widely. False if there is nothing to draw."""
    series = {m: groups for m, groups in series.items() if groups}
    if not series:
        return False
    split: dict[str, tuple[str, object]] = {}
    if column:
        split = split_groups(sweep, column)
        colors = row_colors(sweep, column)
        values = sorted({v for _, v in split.values()}, key=natural_value)
        panels = [(m, v) for m in series for v in values if any(split[g][1] == v for g, _ in series[m])]
    else:
        panels = [(m, None) for m in series]
    plt = _pyplot()
    fig, axes = _panels(plt, len(panels), 6, 4.2)
    for ax, (m, value) in zip(axes, panels, strict=True):
        drawn, smoothed = [], False
        for group, stats in series[m]:
            if column and split[group][1] != value:
                continue
            if len(stats) > SMOOTH_ABOVE:
                stats, smoothed = _running_mean(stats, len(stats) // 100, log), True
            if column:
                _line_with_band(ax, stats, split[group][0], colors[split[group][0]], show_n=False)
            else:
                _line_with_band(ax, stats, group, sweep.color(group))
            drawn.append(stats)
        spread = "geometric mean ×/÷ geometric sd" if log else "mean ± std"
        title = f"{m}: {spread} over seeds" if not column else f"{m}, {column}={value}"
        title += f"\n(running {'geometric ' if log else ''}mean over 1% of the points)" if smoothed else ""
        ax.set(xlabel="step", title=title)
        if log:
            ax.set_yscale("log")
            ax.set_ylabel("gradient variance")
        else:
            ax.set_ylabel(f"{m} (nats per data point)")
            _focus_on_convergence(ax, drawn)
        ax.grid(alpha=0.3, which="both" if log else "major")
    _legend_below(fig, axes)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def _running_mean(stats: pd.DataFrame, window: int, geometric: bool = False) -> pd.DataFrame:
    """``mean`` and its band ``lo``, ``hi`` as running means over ``window`` points (the first ones over
    fewer); ``geometric``: running means of their logarithms, exponentiated."""
    out = stats.copy()
    for col in ("mean", "lo", "hi"):
        values = np.log(stats[col]) if geometric else stats[col]
        smooth = values.rolling(window, min_periods=1).mean()
        out[col] = np.exp(smooth) if geometric else smooth
    return out


def _focus_on_convergence(ax, curves: Sequence[pd.DataFrame], skip: float = 0.05) -> None:
    """y limits around the mean ± std bands after the first ``skip`` of each curve's points."""
    lows, highs = [], []
    for stats in curves:
        rest = stats.iloc[int(len(stats) * skip) :]
        lows.append(rest["lo"].min())
        highs.append(rest["hi"].max())
    lo, hi = np.nanmin(lows, initial=np.inf), np.nanmax(highs, initial=-np.inf)
    if np.isfinite(lo) and np.isfinite(hi):
        pad = 0.05 * (hi - lo) if hi > lo else 1.0
        ax.set_ylim(lo - pad, hi + pad)


def plot_final(sweep: Sweep, table: pd.DataFrame, metrics: Sequence[str], path: Path) -> bool:
    """One panel per final metric: the group means with ± 1 std error bars."""
    metrics = [m for m in metrics if f"{m}_mean" in table and table[f"{m}_mean"].notna().any()]
    if not metrics or table.empty:
        return False
    plt = _pyplot()
    width = max(4.0, 0.4 * len(table) + 2)
    fig, axes = _panels(plt, len(metrics), width, 4.5)
    x = np.arange(len(table))
    groups = [f"{i + 1}: {group}" for i, group in enumerate(table["group"])]  # long: named in the legend
    for ax, m in zip(axes, metrics, strict=True):
        for i in x:
            ax.errorbar(
                x[i],
                table[f"{m}_mean"].iloc[i],
                yerr=np.nan_to_num(table[f"{m}_std"].iloc[i]),
                fmt="o",
                capsize=4,
                color=sweep.color(table["group"].iloc[i]),
                label=groups[i],
            )
        ax.set_xlim(-0.5, len(table) - 0.5)
        ax.set_xticks(x, [str(i + 1) for i in x])
        ax.set(title=m, ylabel=m, xlabel="group")
        _log_scale_for_variance(ax, m, table[f"{m}_mean"])
        ax.grid(alpha=0.3, axis="y")
    _legend_below(fig, axes)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def _log_scale_for_variance(ax, metric: str, means: pd.Series) -> None:
    if GRAD_VAR.match(metric.removeprefix(BEST_PREFIX)) and (means.dropna() > 0).all():
        ax.set_yscale("log")


def plot_final_by(sweep: Sweep, table: pd.DataFrame, metrics: Sequence[str], column: str, path: Path) -> bool:
    """The two-way tables of ``--columns KEY`` drawn: one panel per final metric against the values of
    KEY (evenly spaced in the tables' order: 2, 3, 5, 10), one line per row (the other group keys, one
    colour each in every panel), the means over seeds with ± 1 std error bars; cells without a completed
    job are left out."""
    metrics = [m for m in metrics if f"{m}_mean" in table and table[f"{m}_mean"].notna().any()]
    if not metrics or table.empty:
        return False
    colors = row_colors(sweep, column)
    plt = _pyplot()
    fig, axes = _panels(plt, len(metrics), 5, 4.2)
    for ax, m in zip(axes, metrics, strict=True):
        labels, values, cells = by_column(table, sweep, m, column)
        for label in labels:
            points = [(j, *cells[label, v][:2]) for j, v in enumerate(values) if (label, v) in cells]
            points = [p for p in points if np.isfinite(p[1])]
            if points:
                x, mean, std = zip(*points, strict=True)
                ax.errorbar(
                    x,
                    mean,
                    yerr=np.nan_to_num(std),
                    fmt="o-",
                    ms=4,
                    capsize=3,
                    color=colors[label],
                    label=label,
                )
        ax.set_xticks(range(len(values)), [str(v) for v in values])
        ax.set_xlim(-0.5, len(values) - 0.5)
        ax.set(title=m, ylabel=m, xlabel=column)
        _log_scale_for_variance(ax, m, table[f"{m}_mean"])
        ax.grid(alpha=0.3)
    _legend_below(fig, axes)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
