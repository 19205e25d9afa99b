"""The last line of a sweep (vae_lab/runs/sweep.py)."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from vae_lab.runs.sweep import SweepStatus, job_statuses


def sweep(tmp_path, statuses: dict[str, str | None]):
    for job, status in statuses.items():
        (tmp_path / job).mkdir()
        text = json.dumps({"status": status}) if status else "{broken"
        (tmp_path / job / "summary.json").write_text(text)
    return OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})


def test_all_completed_is_one_line_on_stdout(tmp_path, capsys):
    SweepStatus().on_multirun_end(sweep(tmp_path, {"0": "completed", "1": "completed"}))
    assert capsys.readouterr().out == f"all 2 jobs completed; outputs in {tmp_path}\n"


def test_failed_jobs_are_named_and_the_command_exits_1(tmp_path, capsys):
    config = sweep(tmp_path, {"0": "completed", "1": "failed", "2": None, "3": "running"})
    assert job_statuses(tmp_path) == {"0": "completed", "1": "failed", "2": "unreadable", "3": "running"}
    with pytest.raises(SystemExit) as info:
        SweepStatus().on_multirun_end(config)
    assert info.value.code == 1
    assert capsys.readouterr().err.startswith("3 of 4 jobs failed: 1 (failed), 2 (unreadable), 3 (running);")


def test_a_sweep_whose_jobs_wrote_nothing_here_is_a_failure(tmp_path, capsys):
    """Jobs that wrote elsewhere (a relative sweep dir on a Ray cluster's workers) are not 'all 0 jobs
    completed': the line says so and the command exits 1."""
    with pytest.raises(SystemExit) as info:
        SweepStatus().on_multirun_end(sweep(tmp_path, {}))
    assert info.value.code == 1
    assert capsys.readouterr().err.startswith(f"no job wrote a summary.json under {tmp_path};")
