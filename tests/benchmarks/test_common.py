"""The benchmarks' statistics (benchmarks/_common.py): the median's distribution-free interval, checked
against SciPy's binomial distribution and by its coverage in simulation."""

from __future__ import annotations

import importlib.util
import statistics
from pathlib import Path

import pytest
import torch
from scipy.stats import binom

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "_common.py"
_spec = importlib.util.spec_from_file_location("bench_common", _PATH)
common = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(common)


@pytest.mark.parametrize("n", [1, 2, 5, 6, 7, 9, 12, 20, 31])
def test_interval_is_the_widest_order_statistics_that_keep_the_level(n):
    values = [float(v) for v in torch.randperm(n, generator=torch.Generator().manual_seed(n)) * 0.5]
    median, low, high, cover = common.median_interval(values, level=0.95)
    xs = sorted(values)
    assert median == statistics.median(values)
    j = xs.index(low) + 1  # low is x_(j), high x_(n+1-j)
    assert high == xs[n - j]
    assert cover == pytest.approx(1 - 2 * binom.cdf(j - 1, n, 0.5), abs=1e-12)
    if n >= 6:  # enough values for 95%: the level holds, and one step narrower it would not
        assert cover >= 0.95
        if j + 1 <= (n + 1) // 2:
            assert 1 - 2 * binom.cdf(j, n, 0.5) < 0.95
    else:  # too few: the range, with its coverage below the level
        assert (low, high) == (xs[0], xs[-1]) and cover < 0.95


def test_interval_covers_the_median_as_often_as_it_says():
    """20,000 samples of 9 exponential timings (skewed, as timings are): the interval (x_(2), x_(8)),
    coverage 96.1%, holds the population median ln 2 in 96.1% of them, within 3 standard errors."""
    gen = torch.Generator().manual_seed(0)
    samples = torch.empty(20_000, 9).exponential_(generator=gen).tolist()
    hits, cover = 0, None
    for values in samples:
        _, low, high, cover = common.median_interval(values)
        hits += low <= 0.6931471805599453 <= high
    se = (cover * (1 - cover) / len(samples)) ** 0.5
    assert abs(hits / len(samples) - cover) < 3 * se


def test_verdict_only_where_the_interval_decides():
    assert common.ratio_verdict(1.02, 1.08, 1.10) == "ok"
    assert common.ratio_verdict(1.12, 1.30, 1.10) == "MISSED"
    assert common.ratio_verdict(1.05, 1.15, 1.10).startswith("undecided")
    assert common.ratio_verdict(1.6, 1.9, 1.5, at_most=False) == "ok"  # a speed-up: at least the goal
    assert common.ratio_verdict(1.2, 1.4, 1.5, at_most=False) == "MISSED"


def test_no_values_is_an_error():
    with pytest.raises(ValueError, match="no values"):
        common.median_interval([])
