"""`resume=` on the command line, and the command that continues a stopped run (vae_lab/runs/command.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from vae_lab.runs.command import ContinueCommand, hydra_value, resolve_resume
from vae_lab.runs.locate import ResumeError


def run_dir(root: Path, overrides: list[str], status: str, best: float | None = None) -> Path:
    path = root / "outputs" / "2030-01-01" / "10-00-00"
    (path / ".hydra").mkdir(parents=True)
    (path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    summary = {"status": status, "run_dir": str(path), "overrides": overrides}
    if best is not None:
        summary["best"] = {"val/elbo": best}
    (path / "summary.json").write_text(json.dumps(summary))
    return path


def test_without_resume_nothing_is_added():
    assert resolve_resume(["seed=1"], multirun=False).args == []
    assert resolve_resume(["seed=1", "resume=false"], multirun=False).args == []


def test_resume_true_points_hydra_at_the_matching_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = run_dir(tmp_path, ["seed=1"], "interrupted")
    resolved = resolve_resume(["seed=1", "resume=true"], multirun=False)
    assert resolved.completed is None
    assert resolved.args == [f"hydra.run.dir={Path('outputs/2030-01-01/10-00-00')}"]
    by_dir = resolve_resume([f"resume={path}"], multirun=False)  # the run's own overrides taken over
    assert by_dir.args == ["seed=1", f"hydra.run.dir={path}"]


def test_a_completed_run_is_reported_not_resumed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_dir(tmp_path, ["seed=1"], "completed", best=-21.5)
    resolved = resolve_resume(["seed=1", "resume=true"], multirun=False)
    assert resolved.args == []
    assert resolved.completed.endswith("completed already; best val/elbo -21.5000; nothing to resume")


def test_two_different_directories_are_refused(tmp_path):
    with pytest.raises(ResumeError, match="name different directories"):
        resolve_resume([f"resume={tmp_path / 'a'}", f"hydra.run.dir={tmp_path / 'b'}"], multirun=False)


def test_the_continue_command():
    single = ContinueCommand(("seed=1", "resume=false"), ("seed=1", "resume=false"))
    assert single.for_run(Path("outputs/x")) == ["vae-lab", "train", "seed=1", "resume=true"]
    by_dir = ContinueCommand(("resume=outputs/x",), ("resume=outputs/x",))
    assert by_dir.for_run(Path("outputs/x")) == ["vae-lab", "train", "resume=outputs/x"]
    sweep = ContinueCommand(("-m", "seed=0,1"), ("seed=0,1",), multirun=True)
    assert sweep.for_run(Path("outputs/multirun/d/t/1")) == [
        "vae-lab",
        "train",
        "-m",
        "seed=0,1",
        "hydra.sweep.dir=outputs/multirun/d/t",  # outside a Hydra job: the run directory's parent
        "resume=true",
    ]


def test_paths_are_quoted_where_hydra_would_misread_them():
    assert hydra_value(Path("outputs/2030-01-01/10-00-00")) == "outputs/2030-01-01/10-00-00"
    assert hydra_value(Path("my runs/a=b")) == "'my runs/a=b'"


def test_resume_true_with_an_explicit_directory_that_holds_nothing_starts_there(tmp_path, monkeypatch):
    """A reproduction's later part that never started (``make reproduce-... ARGS=resume=true``): its
    ``hydra.sweep.dir`` is missing or empty, so the sweep starts there, with a notice. Anything already
    there is still checked; ``resume=<dir>`` naming nothing is still an error."""
    monkeypatch.chdir(tmp_path)
    missing, empty = tmp_path / "parts" / "seeds", tmp_path / "empty"
    empty.mkdir()
    for where in (missing, empty):
        resolved = resolve_resume(["seed=0,1", f"hydra.sweep.dir={where}", "resume=true"], multirun=True)
        assert resolved.args == [] and resolved.completed is None
        assert resolved.notice == f"resume: nothing in {where} yet; starting the sweep there"
    single = resolve_resume(["seed=1", f"hydra.run.dir={missing}", "resume=true"], multirun=False)
    assert single.args == [] and single.notice.endswith("starting the run there")
    (empty / "0").mkdir()  # a job's directory, but no multirun.yaml: not a sweep, not nothing
    with pytest.raises(ResumeError, match="is not a sweep directory"):
        resolve_resume(["seed=0,1", f"hydra.sweep.dir={empty}", "resume=true"], multirun=True)
    with pytest.raises(ResumeError, match="is not a sweep directory"):
        resolve_resume([f"resume={missing}"], multirun=True)
