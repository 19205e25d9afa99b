"""bench_startup.py's account of a sweep's wall time: the parts read from the jobs' summary.json files
(start-up to the first job, the jobs' span, the tail) and the ceiling of the joblib speed-up they imply."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

_DIR = Path(__file__).resolve().parents[2] / "benchmarks"
_spec = importlib.util.spec_from_file_location("bench_startup", _DIR / "bench_startup.py")
bench = importlib.util.module_from_spec(_spec)
sys.modules["bench_startup"] = bench  # dataclasses look their module up
_spec.loader.exec_module(bench)


def _job(sweep: Path, num: int, start: float, end: float) -> None:
    """A job directory whose summary.json says it ran from ``start`` to ``end`` (its mtime)."""
    summary = sweep / str(num) / "summary.json"
    summary.parent.mkdir(parents=True)
    summary.write_text(json.dumps({"status": "completed", "duration_s": end - start}))
    os.utime(summary, (end, end))


def test_parts_of_a_sequential_sweep(tmp_path):
    t0 = 1_000_000.0
    for num, (start, end) in enumerate([(6.0, 10.0), (10.5, 13.5), (14.0, 17.0), (17.5, 20.5)]):
        _job(tmp_path, num, t0 + start, t0 + end)
    parts = bench.sweep_parts(tmp_path, t0, t0 + 21.0)
    assert parts.wall == pytest.approx(21.0)
    assert parts.first == pytest.approx(6.0, abs=1e-3)
    assert parts.span == pytest.approx(14.5, abs=1e-3)
    assert parts.tail == pytest.approx(0.5, abs=1e-3)
    assert parts.job == pytest.approx(3.0, abs=1e-3)  # median of 4, 3, 3, 3
    # the jobs' 14.5 s two at a time: 6 + 7.25 + 0.5
    assert bench.ceiling(parts) == pytest.approx(21.0 / 13.75, abs=1e-3)
    assert bench.ceiling(parts, n_jobs=1) == pytest.approx(1.0, abs=1e-3)


def test_parts_of_overlapping_jobs_and_their_medians(tmp_path):
    t0 = 2_000_000.0
    for num, (start, end) in enumerate([(7.5, 12.0), (8.0, 12.5), (12.5, 16.5), (13.0, 17.0)]):
        _job(tmp_path, num, t0 + start, t0 + end)
    par = bench.sweep_parts(tmp_path, t0, t0 + 17.5)
    assert (par.first, par.span, par.tail) == pytest.approx((7.5, 9.5, 0.5), abs=1e-3)
    other = bench.SweepParts(wall=20.0, first=9.0, span=10.5, tail=0.5, job=5.0)
    third = bench.SweepParts(wall=16.0, first=7.0, span=8.5, tail=0.5, job=4.4)
    middle = bench.median_parts([par, other, third])
    assert middle.wall == pytest.approx(17.5) and middle.first == pytest.approx(7.5, abs=1e-3)
    assert par.job == pytest.approx(4.25, abs=1e-3) and middle.job == pytest.approx(4.4, abs=1e-3)
    assert "first job after 7.5 s, jobs 9.5 s (4.4 s each), 0.5 s after the last" in middle.line("joblib")


def test_a_sweep_without_summaries_is_an_error(tmp_path):
    with pytest.raises(SystemExit, match="no job's summary.json"):
        bench.sweep_parts(tmp_path, 0.0, 1.0)
