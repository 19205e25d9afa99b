"""The head start of a joblib sweep's workers (vae_lab/launchers.py, vae_lab/cli.py): started once per
sweep, by the CLI right after the preflight, inside the sweep's SweepStop (whose environment the workers
inherit), and by Hydra's multirun callback only where the CLI did not."""

from __future__ import annotations

import os
import types

import pytest

from vae_lab import cli, launchers, preflight
from vae_lab.runs import sweep_stop

JOBLIB = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]


class _Now:
    """threading.Thread that runs its target at start(), so that the test sees the call at once."""

    def __init__(self, target, args=(), daemon=None):
        self.target, self.args = target, args

    def start(self):
        self.target(*self.args)


@pytest.fixture
def started(monkeypatch):
    calls: list[tuple[dict, str | None]] = []
    monkeypatch.setattr(launchers, "threading", types.SimpleNamespace(Thread=_Now))
    monkeypatch.setattr(
        launchers, "_warm_workers", lambda cfg: calls.append((cfg, os.environ.get(sweep_stop.PID_ENV)))
    )
    monkeypatch.setattr(launchers, "_warm_started", False)
    return calls


def _fake_hydra(overrides, seen, started):
    """Stands in for Hydra's multirun: notes how many warm-ups came before it, then runs the callback."""

    def invoke(task, argv, config_name="train"):
        seen.append(len(started))
        _, cfg = next(preflight.configs(overrides))
        launchers.JoblibWarmStart().on_multirun_start(cfg)
        return 0

    return invoke


@pytest.mark.parametrize("launcher, expected", [(JOBLIB, 1), ([], 0)])
def test_the_cli_starts_a_joblib_sweeps_workers_once_before_hydra(monkeypatch, started, launcher, expected):
    seen: list[int] = []
    overrides = [*launcher, "seed=0,1"]
    monkeypatch.setattr(cli, "_invoke_hydra", _fake_hydra([*launcher, "seed=0"], seen, started))
    assert cli.main(["train", "-m", *overrides]) == 0
    assert len(started) == expected and seen == [expected]  # before Hydra, and not again in its callback
    if expected:
        settings, pid = started[0]
        assert settings["n_jobs"] == 2 and settings["backend"] == "loky"
        assert pid == str(os.getpid())  # inside SweepStop: the workers inherit the sweep's environment
    assert launchers._warm_started is False  # the next sweep in this process is warmed again


def test_hydras_callback_starts_them_where_the_cli_did_not(started):
    _, cfg = next(preflight.configs([*JOBLIB, "seed=0"]))
    launchers.JoblibWarmStart().on_multirun_start(cfg)
    assert len(started) == 1 and started[0][0]["n_jobs"] == 2
    _, basic = next(preflight.configs(["seed=0"]))
    assert launchers.joblib_launcher(basic) is None
