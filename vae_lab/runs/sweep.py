"""The last line of a sweep: how many of its jobs failed (``conf/hydra/default.yaml`` registers
:class:`SweepStatus` as a Hydra callback)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from vae_lab.runs.summary import SUMMARY, Status, SummaryError, read_summary
from vae_lab.runs.sweep_stop import record_sweep_dir, stop_requested

log = logging.getLogger("vae_lab.runs")


def job_statuses(sweep_dir: Path) -> dict[str, str]:
    """The status of each job under ``sweep_dir`` that has a summary.json (``unreadable`` where it
    cannot be read), by the job's folder name."""
    statuses = {}
    for path in sorted(sweep_dir.glob(f"*/{SUMMARY}")):
        try:
            summary = read_summary(path.parent)
        except SummaryError:
            summary = None
        statuses[path.parent.name] = summary.status.value if summary is not None else "unreadable"
    return statuses


class SweepStatus(Callback):
    """Hydra callback: at the end of a multirun, say how many jobs did not complete (their summary.json
    says so) on the last line; if any, the command exits with status 1 (``SystemExit``, which Hydra lets
    through to the CLI)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        signum = stop_requested()
        if signum is not None:  # stopped by a signal: the CLI's last line says how to continue
            record_sweep_dir(sweep_dir)
            raise SystemExit(128 + signum)
        statuses = job_statuses(sweep_dir)
        failed = [f"{job} ({status})" for job, status in statuses.items() if status != Status.COMPLETED.value]
        if not statuses:  # the jobs wrote elsewhere (a relative sweep dir on a Ray cluster's workers)
            msg = (
                f"no job wrote a summary.json under {sweep_dir}; on a cluster, give hydra.sweep.dir as an "
                "absolute path that every node mounts"
            )
            log.info(msg)
            print(msg, file=sys.stderr)
            raise SystemExit(1)
        if failed:
            msg = f"{len(failed)} of {len(statuses)} jobs failed: {', '.join(failed)}; outputs in {sweep_dir}"
        else:
            msg = f"all {len(statuses)} jobs completed; outputs in {sweep_dir}"
        print(msg, file=sys.stderr if failed else sys.stdout)
        if failed:
            raise SystemExit(1)
