"""Which run or sweep `resume=` continues (vae_lab/runs/locate.py), on run directories made by hand."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from vae_lab.errors import ConfigError
from vae_lab.runs.locate import ResumeError, canonical, check_run, completed_run, find_run, find_sweep
from vae_lab.runs.summary import Status


def fake_run(root: Path, name: str, overrides: list[str], status: str | None, mtime: float) -> Path:
    run_dir = root / "outputs" / "2030-01-01" / name
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if status:
        summary = {"status": status, "run_dir": str(run_dir), "overrides": overrides}
        (run_dir / "summary.json").write_text(json.dumps(summary))
    for path in (run_dir / ".hydra", run_dir / "summary.json"):
        if path.exists():
            os.utime(path, (mtime, mtime))
    return run_dir


def test_overrides_compare_as_hydra_reads_them():
    assert canonical(["test=false", "seed=1"]) == canonical(["seed=1", "test=False", "resume=true"])
    assert canonical(["~callbacks.progress_bar"]) == canonical(["~callbacks.progress_bar=null"])
    assert canonical(["seed=1"]) != canonical(["seed=2"])
    assert canonical(["seed=0,1"]) == canonical(["seed=0, 1"])


def test_find_run_takes_the_latest_unfinished_match_else_the_latest_completed(tmp_path):
    old = fake_run(tmp_path, "10-00-00", ["seed=1"], "interrupted", 1000)
    newer_done = fake_run(tmp_path, "11-00-00", ["seed=1"], "completed", 2000)
    fake_run(tmp_path, "12-00-00", ["seed=2"], "interrupted", 3000)
    found = find_run(["seed=1", "resume=true"], tmp_path / "outputs")
    assert found.path == old and found.status is Status.INTERRUPTED
    (old / "summary.json").write_text(json.dumps({"status": "completed"}))
    os.utime(old / "summary.json", (1000, 1000))
    found = find_run(["seed=1"], tmp_path / "outputs")
    assert found.path == newer_done and found.completed
    with pytest.raises(ResumeError, match=r"^resume=true: no run .* 'seed=3'") as info:
        find_run(["seed=3"], tmp_path / "outputs")
    assert isinstance(info.value, ConfigError) and info.value.key == "resume"  # one validation style


def test_check_run_names_what_is_wrong(tmp_path):
    run = fake_run(tmp_path, "10-00-00", ["seed=1"], "failed", 1000)
    assert check_run(run, []).overrides == ["seed=1"]
    with pytest.raises(ResumeError, match="no such directory"):
        check_run(tmp_path / "nowhere", [])
    with pytest.raises(ResumeError, match="not a vae-lab run directory"):
        check_run(tmp_path, [])
    with pytest.raises(ResumeError, match="was started with 'seed=1', not 'seed=2'"):
        check_run(run, ["seed=2", "resume=true"])


def test_find_sweep_matches_multirun_yaml(tmp_path):
    for name, sweep_overrides in (("a", ["seed=0,1", "test=false"]), ("b", ["seed=0,1"])):
        sweep_dir = tmp_path / "2030-01-01" / name
        sweep_dir.mkdir(parents=True)
        config = {"hydra": {"overrides": {"task": sweep_overrides}}}
        (sweep_dir / "multirun.yaml").write_text(yaml.safe_dump(config))
    found = find_sweep(["test=False", "seed=0,1", "resume=true"], None, tmp_path)
    assert found.path == tmp_path / "2030-01-01" / "a"
    assert find_sweep([], tmp_path / "2030-01-01" / "b", tmp_path).overrides == ["seed=0,1"]
    with pytest.raises(ResumeError, match="was started with"):
        find_sweep(["seed=0,2"], tmp_path / "2030-01-01" / "b", tmp_path)
    with pytest.raises(ResumeError, match="no sweep"):
        find_sweep(["seed=5"], None, tmp_path)


def test_completed_run_inside_a_job(tmp_path):
    assert completed_run(tmp_path, ["seed=1"]) is None  # nothing there yet
    run = fake_run(tmp_path, "10-00-00", ["seed=1"], "interrupted", 1000)
    assert completed_run(run, ["seed=1", "resume=true"]) is None  # continue it
    done = fake_run(tmp_path, "11-00-00", ["seed=1"], "completed", 1000)
    assert completed_run(done, ["seed=1"]).status is Status.COMPLETED
    with pytest.raises(ResumeError, match="started with other overrides: seed=1"):
        completed_run(done, ["seed=2"])
