"""summary.json (vae_lab/runs/summary.py): the keys each status writes, reading damaged files, overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vae_lab.runs.summary import (
    Status,
    Summary,
    SummaryError,
    read_summary,
    run_overrides,
    status_of,
    write_json,
)


def keys(run_dir: Path) -> list[str]:
    return list(json.loads((run_dir / "summary.json").read_text()))


def test_status_values_are_the_strings_in_the_file():
    assert [s.value for s in Status] == ["running", "completed", "failed", "interrupted"]
    assert [s for s in Status if s.unfinished] == [Status.RUNNING, Status.INTERRUPTED]


def test_a_completed_run_writes_the_keys_of_design_section_5_in_order(tmp_path):
    summary = Summary.start(tmp_path, ["seed=1"])
    written = json.loads((tmp_path / "summary.json").read_text())
    code = written.pop("code")
    assert written == {"status": "running", "run_dir": str(tmp_path), "overrides": ["seed=1"]}
    assert len(code) == 1 and list(code[0]) == [
        "started",
        "vae_lab",
        "git_commit",
        "git_dirty",
        "torch",
        "python",
    ]
    summary.resumed_from = str(tmp_path / "last.ckpt")
    summary.complete(
        metrics={"test/elbo": -20.0},
        best={"val/elbo": -21.0},
        best_checkpoint=None,
        steps=10,
        epochs=1,
        duration_s=1.5,
    )
    assert keys(tmp_path) == [
        "status",
        "run_dir",
        "overrides",
        "resumed_from",
        "metrics",
        "best",
        "best_checkpoint",  # null when there is none, as before
        "steps",
        "epochs",
        "duration_s",
        "code",  # which code ran, one entry per segment (runs/provenance.py)
    ]
    again = read_summary(tmp_path)
    assert again == summary and again.status is Status.COMPLETED and again.best_score == -21.0


def test_failed_and_interrupted_runs_write_their_error_and_checkpoint(tmp_path):
    failed = Summary.start(tmp_path / "a", [])
    failed.fail("ValueError: bad", steps=3, duration_s=0.5)
    assert keys(tmp_path / "a") == ["status", "run_dir", "overrides", "steps", "duration_s", "error", "code"]
    stopped = Summary.start(tmp_path / "b", [])
    stopped.interrupt("SIGTERM", None, steps=5, duration_s=0.5)
    data = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert data["status"] == "interrupted" and data["error"] == "SIGTERM" and data["checkpoint"] is None
    with pytest.raises(TypeError, match="no field"):
        stopped.complete(nonsense=1)


def test_earlier_duration_is_what_a_stopped_run_trained_and_nothing_else(tmp_path):
    stopped = Summary.start(tmp_path / "stopped", [])
    stopped.interrupt("SIGTERM", None, steps=5, duration_s=12.25)
    assert Summary.earlier_duration(tmp_path / "stopped") == 12.25
    done = Summary.start(tmp_path / "done", [])
    done.complete(steps=9, duration_s=30.0)
    assert Summary.earlier_duration(tmp_path / "done") == 0.0  # a completed run is not continued
    assert Summary.earlier_duration(tmp_path / "nothing") == 0.0
    (tmp_path / "damaged").mkdir()
    (tmp_path / "damaged" / "summary.json").write_text("{not json")
    assert Summary.earlier_duration(tmp_path / "damaged") == 0.0


def test_reading_missing_damaged_and_foreign_summaries(tmp_path):
    assert read_summary(tmp_path) is None and status_of(tmp_path) is None
    (tmp_path / "summary.json").write_text("{not json")
    with pytest.raises(SummaryError):
        read_summary(tmp_path)
    assert status_of(tmp_path) is None
    (tmp_path / "summary.json").write_text('{"status": "exploded"}')
    with pytest.raises(SummaryError, match="unknown status 'exploded'"):
        read_summary(tmp_path)
    (tmp_path / "summary.json").write_text("[1, 2]")
    with pytest.raises(SummaryError, match="not a JSON object"):
        read_summary(tmp_path)
    (tmp_path / "summary.json").write_text('{"status": "failed", "later_key": 1}')  # unknown keys: ignored
    assert read_summary(tmp_path).status is Status.FAILED


def test_run_overrides_come_from_hydra_else_from_the_summary(tmp_path):
    assert run_overrides(tmp_path) is None
    Summary.start(tmp_path, ["seed=2"])
    assert run_overrides(tmp_path) == ["seed=2"]
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "overrides.yaml").write_text("- seed=3\n- test=false\n")
    assert run_overrides(tmp_path) == ["seed=3", "test=false"]


def test_write_json_leaves_no_temporary_file(tmp_path):
    write_json(tmp_path / "deep" / "x.json", {"a": Path("/p")})
    assert json.loads((tmp_path / "deep" / "x.json").read_text()) == {"a": "/p"}
    assert [p.name for p in (tmp_path / "deep").iterdir()] == ["x.json"]
