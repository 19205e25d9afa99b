"""What the benchmarks share: Lightning's output drawn to nowhere, a figure's verdict against its goal, and
the median of per-round ratios with a distribution-free interval."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import statistics
import time
from collections.abc import Iterator, Sequence


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Lightning's progress bar and messages drawn to nowhere: their cost stays, their output goes."""
    logging.disable(logging.WARNING)
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)


@contextlib.contextmanager
def clock(times: list[tuple[float, float]]) -> Iterator[None]:
    """Appends (wall seconds, CPU seconds of this process) of the block to ``times``. The CPU time counts
    what the process itself did, so it moves less than the wall time when other jobs share the cores."""
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    times.append((time.perf_counter() - wall, time.process_time() - cpu))


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def median_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float, float]:
    """The median of ``values`` and a distribution-free confidence interval for the median of the
    population they were drawn from: the order statistics (x_(j), x_(n+1-j)) with the largest j whose
    coverage 1 - 2 P(B <= j - 1), B ~ Binomial(n, 1/2), is still at least ``level`` (Conover, Practical
    Nonparametric Statistics, 3.2). With too few values for ``level`` (fewer than 6 at 95%) the interval
    is (min, max) and its coverage below ``level``. Returns (median, low, high, coverage).

    Timings on a shared machine are skewed and jump (another job starts, the clock steps down): a median
    and an interval over rounds say what a minimum of a few runs cannot, whether a difference is there.
    """
    xs = sorted(values)
    n = len(xs)
    if n == 0:
        raise ValueError("median_interval: no values")

    def coverage(j: int) -> float:  # 1 - 2 P(B <= j - 1)
        return 1.0 - 2.0 * sum(math.comb(n, i) for i in range(j)) / 2.0**n

    j = 1
    while j + 1 <= (n + 1) // 2 and coverage(j + 1) >= level:
        j += 1
    return statistics.median(xs), xs[j - 1], xs[n - j], coverage(j)


def ratio_verdict(low: float, high: float, goal: float, at_most: bool = True) -> str:
    """Met where the whole interval is on the goal's side, missed where none of it is, else undecided."""
    inside = (high <= goal) if at_most else (low >= goal)
    outside = (low > goal) if at_most else (high < goal)
    return "ok" if inside else "MISSED" if outside else "undecided (the interval spans the goal)"


def ratio_line(name: str, ratios: Sequence[float], goal: float, at_most: bool = True) -> str:
    """One line: the median of per-round ratios, its interval and coverage, the goal and the verdict."""
    median, low, high, cover = median_interval(ratios)
    sign = "<=" if at_most else ">="
    return (
        f"  {name}: {median:.3f} (median of {len(ratios)} rounds; {cover:.0%} interval {low:.3f}-{high:.3f}; "
        f"goal {sign} {goal}) {ratio_verdict(low, high, goal, at_most)}"
    )
