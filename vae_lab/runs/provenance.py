"""Which code made a result: vae-lab's version, its git commit (and whether the working tree differed from
it), torch's and Python's versions, and when the segment started. The train task records one such entry
per segment of a run in ``summary.json`` (``code``: a resumed run appends to its earlier segments'), and
`vae-lab report` lists the versions a sweep ran on (``jobs.csv``'s ``code``; ``summary.md`` says so when
its jobs ran on more than one).

The commit is read with ``git`` from the checkout vae-lab runs from, and only when vae-lab is imported
from a checkout's top level (an editable install, ``pip install -e .``); an installed copy records its
version alone. ``git_dirty`` counts changes to tracked files under ``vae_lab/`` and ``conf/``, what a run
executes (results under ``outputs/`` are ignored files).
"""

from __future__ import annotations

import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["code_record", "code_label"]

#: the directory that holds the ``vae_lab`` package: a checkout's top level for an editable install
SOURCE = Path(__file__).resolve().parents[2]
_GIT_TIMEOUT_S = 5.0


def _git(source: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(source), *args], capture_output=True, text=True, timeout=_GIT_TIMEOUT_S
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _version() -> str | None:
    try:
        return metadata.version("vae-lab")
    except metadata.PackageNotFoundError:
        return None


def code_record(source: Path = SOURCE) -> dict[str, Any]:
    """The code running now: ``started`` (UTC, ISO 8601), ``vae_lab`` (the installed version),
    ``git_commit`` and ``git_dirty`` (None outside a checkout's top level, or without git), ``torch``,
    ``python``."""
    import torch

    commit = dirty = None
    top = _git(source, "rev-parse", "--show-toplevel")
    if top is not None and Path(top).resolve() == source.resolve():
        commit = _git(source, "rev-parse", "HEAD")
        status = _git(source, "status", "--porcelain", "--untracked-files=no", "--", "vae_lab", "conf")
        dirty = None if status is None else bool(status)
    return {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "vae_lab": _version(),
        "git_commit": commit,
        "git_dirty": dirty,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def code_label(record: Any) -> str:
    """A short name of one entry of ``code``: the commit's first 10 hex digits (``+dirty`` where the tree
    differed), else ``vae-lab <version>``; ``?`` for an entry that is not a record."""
    if not isinstance(record, dict):
        return "?"
    commit = record.get("git_commit")
    if isinstance(commit, str) and commit:
        return commit[:10] + ("+dirty" if record.get("git_dirty") else "")
    return f"vae-lab {record.get('vae_lab') or '?'}"
