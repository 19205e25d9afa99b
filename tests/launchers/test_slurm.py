"""hydra/launcher=submitit_slurm writes the sbatch script the user asked for. No cluster is needed:
stand-ins for `srun` (which submitit looks for) and `sbatch` (which keeps the script it is given, then
refuses) come first on PATH, so nothing is submitted and no job runs."""

from __future__ import annotations

import os
import re

FAKE_SBATCH = """#!/bin/sh
cp "$1" "$SBATCH_RECORD"
echo "sbatch: error: no SLURM cluster here (test stand-in); script kept" >&2
exit 1
"""
FAKE_SRUN = """#!/bin/sh
echo "srun: no SLURM cluster here (test stand-in)" >&2
exit 1
"""


def sbatch_flags(script: str) -> dict[str, str]:
    return dict(re.findall(r"^#SBATCH --([\w-]+)(?:=(.*))?$", script, flags=re.MULTILINE))


def test_the_sbatch_script_has_the_partition_time_cpus_and_gpus_the_user_set(cli, tmp_path):
    bin_dir = tmp_path / "fake_slurm"
    bin_dir.mkdir()
    for name, text in {"sbatch": FAKE_SBATCH, "srun": FAKE_SRUN}.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    record = tmp_path / "submitted.sh"

    proc = cli(
        "train",
        "-m",
        "hydra/launcher=submitit_slurm",
        "hydra.launcher.partition=gpu-short",
        "hydra.launcher.timeout_min=90",
        "hydra.launcher.cpus_per_task=4",
        "hydra.launcher.gpus_per_task=1",
        "trainer=gpu",
        "threads=4",
        "seed=0,1",
        env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "SBATCH_RECORD": str(record)},
        timeout=120,
    )
    assert "no SLURM cluster here (test stand-in); script kept" in proc.stderr, proc.stderr[-3000:]
    assert record.is_file(), proc.stderr[-3000:]
    flags = sbatch_flags(record.read_text())
    assert flags["partition"] == "gpu-short"
    assert flags["time"] == "90"
    assert flags["cpus-per-task"] == "4"
    assert flags["gpus-per-task"] == "1"
    assert flags["array"] == "0-1%2"  # both jobs of the sweep, in one array
    assert not any(k in flags for k in ("gres", "gpus-per-node", "mem"))  # nothing the user did not set
    assert "-m submitit.core._submit" in record.read_text()
