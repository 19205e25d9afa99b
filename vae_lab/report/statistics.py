"""Statistics over seeds: :func:`summarize` groups the completed jobs of a :class:`~.loading.Sweep` by
their overrides other than the ignored keys (:data:`~.loading.IGNORED_KEYS`: the seed and purely
technical settings) and gives, per group and final metric, the mean, the sample standard deviation
(ddof = 1) over seeds and n. Failed and unfinished jobs never enter the statistics and are never dropped
either: they are counted per group."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from vae_lab.report.loading import COMPLETED, EPOCHS, MEAN_PREFIX, MINUTES, Sweep, natural_value

DEFAULT_METRICS = ("test/elbo", "test/nll", "test/perplexity", "best/val/elbo")
GRAD_VAR = re.compile(r"^grad/var/(.+)$")


def default_metrics(sweep: Sweep) -> list[str]:
    """test/elbo, test/nll, test/perplexity, best/val/elbo, mean/grad/var/<group> (the mean of the
    gradient-variance measurements over training), epochs and minutes (wall time), where present."""
    present = set(sweep.metric_names)
    names = [m for m in DEFAULT_METRICS if m in present]
    names += sorted(m for m in present if m.startswith(MEAN_PREFIX) and GRAD_VAR.match(m[len(MEAN_PREFIX) :]))
    names += [m for m in (EPOCHS, MINUTES) if m in present]
    if not names and "val/elbo" in present:
        names.append("val/elbo")
    return names


def mean_std(values: Iterable[float]) -> tuple[float, float, int]:
    """(mean, sample standard deviation with ddof = 1, n) of the finite values; std is NaN for n < 2."""
    arr = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    n = arr.size
    if n == 0:
        return math.nan, math.nan, 0
    return float(arr.mean()), float(arr.std(ddof=1)) if n > 1 else math.nan, n


def summarize(sweep: Sweep, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per group: its override values, ``n`` (completed jobs), ``failed``, ``unfinished``,
    ``seeds`` and, for each metric m, ``m_mean``, ``m_std`` (ddof = 1, over the completed jobs) and ``m_n``
    (completed jobs with a finite value of m)."""
    metrics = list(default_metrics(sweep) if metrics is None else metrics)
    jobs = sweep.jobs
    rows = []
    groups = jobs.groupby(sweep.keys, sort=False, dropna=False) if sweep.keys else [(None, jobs)]
    for _, group in groups:
        done = group[group["outcome"] == COMPLETED]
        row: dict[str, Any] = {k: group[k].iloc[0] for k in sweep.keys}
        row["group"] = group["group"].iloc[0]
        row["n"] = len(done)
        row["failed"] = int((group["outcome"] == "failed").sum())
        row["unfinished"] = int((group["outcome"] == "unfinished").sum())
        row["seeds"] = ",".join(str(s) for s in _sorted_seeds(done["seed"]))
        for m in metrics:
            mean, std, n = mean_std(done[m] if m in done else [])
            row[f"{m}_mean"], row[f"{m}_std"], row[f"{m}_n"] = mean, std, n
        rows.append(row)
    frame = pd.DataFrame(rows)
    if len(frame):
        frame = frame.set_index("group", drop=False).loc[sweep.groups]
    return frame.reset_index(drop=True)


def _sorted_seeds(seeds: Iterable[Any]) -> list[Any]:
    return sorted((s for s in seeds if s is not None and s == s), key=natural_value)
