"""The end of a joblib sweep (vae_lab/launchers.py, vae_lab/cli.py): its idle workers are ended at once
instead of tearing down torch while the main process waits, and only after a joblib sweep."""

from __future__ import annotations

import os

import pytest

from vae_lab import cli, launchers

JOBLIB = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]


def test_idle_workers_are_ended_and_a_new_sweep_gets_new_ones():
    from joblib import Parallel, delayed

    first = set(Parallel(n_jobs=2, backend="loky")(delayed(os.getpid)() for _ in range(4)))
    from joblib.externals.loky import reusable_executor

    processes = list(reusable_executor._executor._processes.values())
    assert {p.pid for p in processes} >= first and all(p.is_alive() for p in processes)
    launchers.stop_joblib_workers()
    assert not any(p.is_alive() for p in processes)  # ended, not left for the process's exit
    again = set(Parallel(n_jobs=2, backend="loky")(delayed(os.getpid)() for _ in range(4)))
    assert again and not again & first  # the next sweep in this process starts workers of its own
    launchers.stop_joblib_workers()


@pytest.mark.parametrize("launcher, expected", [(JOBLIB, 1), ([], 0)])
def test_the_cli_ends_the_workers_after_a_joblib_sweep_only(monkeypatch, launcher, expected):
    order: list[str] = []
    monkeypatch.setattr(launchers, "warm_joblib_workers", lambda settings, before_hydra=False: None)
    monkeypatch.setattr(launchers, "stop_joblib_workers", lambda: order.append("stop"))

    def invoke(task, argv, config_name="train"):
        order.append("sweep")
        return 0

    monkeypatch.setattr(cli, "_invoke_hydra", invoke)
    assert cli.main(["train", "-m", *launcher, "seed=0,1"]) == 0
    assert order == ["sweep"] + ["stop"] * expected  # after the jobs, never before
