"""benchmarks/bench_train.py --blocks: the split of a Lightning batch into its training step and the rest."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

_DIR = Path(__file__).resolve().parents[2] / "benchmarks"


def _bench_train():
    sys.path.insert(0, str(_DIR))  # bench_train imports _common as the scripts do
    try:
        spec = importlib.util.spec_from_file_location("bench_train", _DIR / "bench_train.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(_DIR))
    return module


@pytest.mark.parametrize("steps_per_batch", [1, 3])
def test_blocks_alternate_lightning_batches_with_bare_steps_that_train(tmp_path, steps_per_batch):
    bench = _bench_train()
    torch.manual_seed(0)
    x = torch.bernoulli(torch.rand(1500, bench.D) * 0.3)  # 30 batches of 50
    blocks = bench.Blocks(x, batch_size=50, size=3, warmup=6)
    bench.vae_lab_epoch(x, 50, str(tmp_path), False, "cpu", [], extra=blocks, steps_per_batch=steps_per_batch)
    marks = len(range(6, 31, 3))  # a bare block after steps 6, 9, ..., 30 of Lightning's loop
    assert len(blocks.bare) == marks and len(blocks.lightning) == len(blocks.inside) == marks - 1
    # a block's training steps are part of its Lightning batches: they take less time than the batches
    assert all(0 < step < batch for step, batch in zip(blocks.inside, blocks.lightning, strict=True))
    assert len(blocks.plain) == marks and all(t > 0 for t in blocks.bare + blocks.plain)
    # the bare steps are optimizer steps of the same fit, on top of its 30 batches
    assert blocks.steps == 30 + 3 * marks


def test_the_bare_loop_counts_its_steps_and_logs_every_log_every_n_steps(tmp_path):
    bench = _bench_train()
    torch.manual_seed(0)
    x = torch.bernoulli(torch.rand(1500, bench.D) * 0.3)  # 30 batches of 50: steps 10, 20, 30 log a row
    times: list[tuple[float, float]] = []
    bench.vae_lab_epoch(x, 50, str(tmp_path), False, "cpu", times, bare=True)
    assert len(times) == 1
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [row["train/elbo"] != "" for row in rows].count(True) == 3
