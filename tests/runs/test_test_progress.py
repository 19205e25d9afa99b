"""Progress of the test loop (importance-weighted NLL: seconds per batch at K = 5000): Lightning's bar moves
on every test batch whatever its refresh rate, and in a sweep (LogProgress) train.log / eval.log get a
line every tenth of the loop."""

from __future__ import annotations

import logging

import torch
from conftest import quiet_trainer, tiny_vae

from vae_lab.runs.progress import LogProgress, TQDMBar


def loader(batches: int):
    x = torch.bernoulli(torch.full((batches * 4, 6), 0.5), generator=torch.Generator().manual_seed(0))
    return torch.utils.data.DataLoader(x, batch_size=4)


def test_the_bar_counts_every_test_batch_at_any_refresh_rate(capsys):
    bar = TQDMBar(refresh_rate=20)
    trainer = quiet_trainer(callbacks=[bar], enable_progress_bar=True)
    trainer.test(tiny_vae(iw_samples=4, iw_chunk=2), dataloaders=loader(5), verbose=False)
    assert bar.test_progress_bar.n == 5
    assert "5/5" in capsys.readouterr().out


def test_a_sweep_job_logs_the_test_loop_every_tenth(caplog):
    trainer = quiet_trainer(callbacks=[LogProgress(every_n_steps=100)], enable_progress_bar=True)
    with caplog.at_level(logging.INFO, logger="vae_lab.progress"):
        trainer.test(tiny_vae(iw_samples=4, iw_chunk=2), dataloaders=loader(20), verbose=False)
    lines = [r.getMessage() for r in caplog.records if "batch" in r.getMessage()]
    assert (
        len(lines) == 10
        and lines[0].startswith("test: batch 2/20")
        and lines[-1].startswith("test: batch 20/20")
    )
