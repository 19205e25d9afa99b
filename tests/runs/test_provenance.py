"""Which code made a result (vae_lab/runs/provenance.py): the commit of a checkout, its dirty flag, an
installed copy, one entry per segment of a resumed run (the report's use: tests/report/test_tables.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from vae_lab.runs import provenance
from vae_lab.runs.provenance import code_label, code_record
from vae_lab.runs.summary import Summary, read_summary


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def checkout(tmp_path):
    """A git checkout holding a stand-in vae_lab/ and conf/, one commit."""
    repo = tmp_path / "repo"
    (repo / "vae_lab").mkdir(parents=True)
    (repo / "conf").mkdir()
    (repo / "vae_lab" / "a.py").write_text("x = 1\n")
    (repo / "conf" / "train.yaml").write_text("seed: 0\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    return repo


def test_the_commit_of_a_checkout_and_its_dirty_flag(checkout):
    record = code_record(checkout)
    assert record["git_commit"] == _git(checkout, "rev-parse", "HEAD").strip()
    assert record["git_dirty"] is False
    (checkout / "outputs").mkdir()
    (checkout / "outputs" / "new.csv").write_text("1\n")  # untracked results: still clean
    (checkout / "notes.txt").write_text("x\n")
    assert code_record(checkout)["git_dirty"] is False
    (checkout / "conf" / "train.yaml").write_text("seed: 1\n")  # a tracked config changed: dirty
    assert code_record(checkout)["git_dirty"] is True
    assert code_label(code_record(checkout)) == record["git_commit"][:10] + "+dirty"


def test_an_installed_copy_inside_another_checkout_records_no_commit(checkout):
    """site-packages inside a repository (a virtual environment in the checkout) is not that checkout."""
    inner = checkout / ".venv" / "lib" / "site-packages"
    inner.mkdir(parents=True)
    record = code_record(inner)
    assert record["git_commit"] is None and record["git_dirty"] is None
    assert code_label(record) == f"vae-lab {record['vae_lab']}"


def test_this_checkout_is_recorded():
    """From an editable install (how the tests run from a clone) the commit is the checkout's HEAD; from
    anything else (an unpacked archive, an installed copy) there is none."""
    top = subprocess.run(
        ["git", "-C", str(provenance.SOURCE), "rev-parse", "--show-toplevel"], capture_output=True, text=True
    )
    if top.returncode == 0 and Path(top.stdout.strip()).resolve() == provenance.SOURCE.resolve():
        assert code_record()["git_commit"] == _git(provenance.SOURCE, "rev-parse", "HEAD").strip()
    else:
        assert code_record()["git_commit"] is None


def test_a_resumed_run_appends_its_segment(tmp_path, monkeypatch):
    records = iter(
        [{"git_commit": "a" * 40, "git_dirty": False}, {"git_commit": "b" * 40, "git_dirty": True}]
    )
    monkeypatch.setattr(provenance, "code_record", lambda: next(records))
    first = Summary.start(tmp_path, ["seed=0"])
    first.interrupt("SIGINT", None, steps=5, duration_s=1.0)
    Summary.start(tmp_path, ["seed=0"], resuming=True)
    code = read_summary(tmp_path).code
    assert [code_label(c) for c in code] == ["aaaaaaaaaa", "bbbbbbbbbb+dirty"]


def test_a_new_run_in_a_used_directory_starts_its_own_record(tmp_path, monkeypatch):
    monkeypatch.setattr(provenance, "code_record", lambda: {"git_commit": "c" * 40})
    Summary.start(tmp_path, [])
    Summary.start(tmp_path, [])
    assert len(read_summary(tmp_path).code) == 1


def test_code_label_of_damaged_entries():
    assert code_label("abc") == "?"
    assert code_label({}) == "vae-lab ?"
