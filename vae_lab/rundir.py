"""What a run directory records about its run (DESIGN.md section 5): ``summary.json`` (status, final
metrics, error) and the overrides it was started with (Hydra's ``.hydra/overrides.yaml``).

Written by the train task, read by ``resume=`` and by ``vae-lab report``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

SUMMARY = "summary.json"


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    """Write ``summary.json`` atomically (a reader never sees half a file)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / f"{SUMMARY}.tmp"
    tmp.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    tmp.replace(run_dir / SUMMARY)


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    """A run's summary.json, or None where it is missing or unreadable."""
    try:
        summary = json.loads((run_dir / SUMMARY).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return summary if isinstance(summary, dict) else None


def run_overrides(run_dir: Path) -> list[str] | None:
    """The task overrides a run was started with: Hydra's ``.hydra/overrides.yaml``, else summary.json's."""
    try:
        overrides = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())
    except (OSError, yaml.YAMLError):
        overrides = (read_summary(run_dir) or {}).get("overrides")
    return [str(o) for o in overrides] if isinstance(overrides, list) else None
