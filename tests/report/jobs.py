"""Job directories made by hand, as `vae-lab train` leaves them (summary.json, metrics.csv,
.hydra/overrides.yaml), with known numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd


def make_job(
    root: Path,
    name: str,
    overrides: list[str],
    status: str | None = "completed",
    metrics: dict[str, float] | None = None,
    best: float | None = None,
    error: str | None = None,
    curves: dict[str, list[float]] | None = None,
    **record: float,
) -> Path:
    """A job directory like `vae-lab train` leaves; status None: no summary.json (died before writing)."""
    job = root / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if status is not None:
        summary: dict = {"status": status, "run_dir": str(job), "overrides": overrides}
        if metrics is not None:
            summary["metrics"] = metrics
        if best is not None:
            summary["best"] = {"val/elbo": best}
        if error is not None:
            summary["error"] = error
        summary.update(record)  # epochs, duration_s, ...
        (job / "summary.json").write_text(json.dumps(summary))
    if curves:
        steps = len(next(iter(curves.values())))
        frame = pd.DataFrame({"epoch": [0] * steps, "step": range(steps), **curves})
        frame.to_csv(job / "metrics.csv", index=False)
    return job


def make_latent_grid(root: Path, nll: dict[tuple[str, int], list[float]]) -> None:
    """Completed jobs of a posterior x model.latent_dim sweep: one per seed (0, 1, ...) of each cell's
    test/nll values."""
    for (posterior, dim), values in nll.items():
        for seed, value in enumerate(values):
            make_job(
                root,
                f"{posterior}-{dim}-{seed}",
                [f"posterior={posterior}", f"model.latent_dim={dim}", f"seed={seed}"],
                metrics={"test/nll": value},
            )
