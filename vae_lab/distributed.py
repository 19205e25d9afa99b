"""Data-parallel training (`vae-lab train trainer=ddp`): how the other ranks of a run are started.

Lightning's own launcher restarts the command line for each further rank; `vae-lab train` is not a file
it can restart (it ran ``python 'vae-lab train'`` and waited for it forever). Here rank 0 starts each
other local rank as ``python -m vae_lab.distributed <the job's overrides> hydra.run.dir=<its run
directory>``: the same composed config (also for a job of a sweep, and with ``resume=true``), the same
run directory, which only rank 0 writes to (summary.json, metrics.csv, TensorBoard, checkpoints,
train.log). A rank that exits with an error ends the run with an error line within seconds
(:class:`_RankObserver`); one that never joins ends it when the process group's ``timeout_s`` runs out.

On a cluster that starts every rank itself (SLURM through submitit, torchrun) nothing is started here:
Lightning reads the ranks from the environment, and :func:`global_rank` tells this code which one it is.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from pytorch_lightning.strategies import DDPStrategy as _LightningDDP
from pytorch_lightning.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

#: Hydra settings of a further rank: no .hydra/ record and no log file of its own in the run directory
_RANK_HYDRA_ARGS = (
    "hydra.output_subdir=null",
    "~hydra.job_logging.handlers.file",
    "hydra.job_logging.root.handlers=[console]",
)


def global_rank() -> int:
    """This process's global rank, read from the environment before Lightning sets up (0 outside DDP):
    ``RANK`` (torchrun), ``SLURM_PROCID`` (SLURM), else ``NODE_RANK`` and ``LOCAL_RANK`` (the ranks this
    module and Lightning start, one node's worth per ``LOCAL_WORLD_SIZE``)."""
    for name in ("RANK", "SLURM_PROCID"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    local = int(os.environ.get("LOCAL_RANK", "0") or 0)
    node = int(os.environ.get("NODE_RANK", "0") or 0)
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", "0") or 0)
    return local + node * (per_node or 1024)


def is_rank_zero() -> bool:
    return global_rank() == 0


class DDPStrategy(_LightningDDP):
    """Lightning's DDP strategy with vae-lab's launcher and a process-group ``timeout_s`` (seconds a rank
    waits for the others, at start-up and at every collective: a rank that never joins ends the run after
    that long instead of hanging; keep it above the longest probe, which runs on rank 0 alone)."""

    def __init__(self, timeout_s: float = 300.0, **kwargs: Any) -> None:
        super().__init__(timeout=timedelta(seconds=float(timeout_s)), **kwargs)

    def _configure_launcher(self) -> None:
        super()._configure_launcher()
        if isinstance(self._launcher, _SubprocessScriptLauncher):
            self._launcher = _RankLauncher(self.cluster_environment, self.num_processes, self.num_nodes)


class _RankLauncher(_SubprocessScriptLauncher):
    """Starts local ranks 1 ... N-1 as ``python -m vae_lab.distributed`` with the job's overrides."""

    def launch(self, function: Any, *args: Any, trainer: Any = None, **kwargs: Any) -> Any:
        # torch's threads stay as `threads` set them (Lightning would set cpu_count / processes)
        self.cluster_environment.validate_settings(num_devices=self.num_processes, num_nodes=self.num_nodes)
        if not self.cluster_environment.creates_processes_externally:
            self._call_children_scripts()
            self._observer = _RankObserver(self.procs, _run_dir())
            self._observer.start()
            atexit.register(self._end_children)  # also when rank 0 fails before Lightning stops the others
        return function(*args, **kwargs)

    def kill(self, signum: Any) -> None:
        """Stop the other ranks (rank 0 failed or was stopped): ``signum`` now, SIGKILL to a rank still
        running ``KILL_AFTER_S`` later (one blocked in a collective cannot handle a signal; one that
        handles it takes part in saving the interrupt checkpoint meanwhile). Their exit is then rank 0's
        doing, not a failure: the observer stops watching first, so that a rank killed here does not end
        rank 0 while it still writes its checkpoint and summary."""
        observer = getattr(self, "_observer", None)
        if observer is not None:
            observer.stopped = True
        super().kill(signum)
        threading.Thread(target=_kill_later, args=(list(self.procs),), daemon=True).start()

    def _end_children(self) -> None:
        """At rank 0's exit: a further rank still running 2 s later (e.g. one that never joined) is killed."""
        self._observer.stopped = True
        for proc in self.procs:
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()

    def _call_children_scripts(self) -> None:
        self._check_can_spawn_children()
        env = self.cluster_environment
        os.environ["MASTER_ADDR"] = env.main_address
        os.environ["MASTER_PORT"] = str(env.main_port)
        os.environ["NODE_RANK"] = str(env.node_rank())
        os.environ["LOCAL_RANK"] = str(env.local_rank())
        os.environ["LOCAL_WORLD_SIZE"] = str(self.num_processes)
        os.environ["WORLD_SIZE"] = str(self.num_processes * self.num_nodes)
        for local_rank in range(1, self.num_processes):
            child_env = {**os.environ, "LOCAL_RANK": str(local_rank)}
            self.procs.append(subprocess.Popen(rank_command(local_rank), env=child_env))


#: seconds a further rank has to exit after rank 0 stopped it. Rank 0 has written its interrupt checkpoint
#: before it waits for the others; a further rank that Lightning's SIGTERM reaches after its own stop
#: signal is left in a broadcast of Lightning's SIGTERM handler that rank 0 never joins.
KILL_AFTER_S = 5.0


def _kill_later(procs: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + KILL_AFTER_S
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()


def _run_dir() -> Path:
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


def rank_command(local_rank: int) -> list[str]:
    """The command of a further rank of the current Hydra job: its overrides, its run directory."""
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    run_dir = str(Path(hc.runtime.output_dir).resolve())
    return [
        sys.executable,
        "-m",
        "vae_lab.distributed",
        *hc.overrides.task,
        f"hydra.run.dir={_quoted(run_dir)}",
        f"hydra.job.name=train_rank_{local_rank}",
        *_RANK_HYDRA_ARGS,
    ]


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class _RankObserver(threading.Thread):
    """Watches the ranks rank 0 started: when one exits with an error, the run ends at once with status
    ``failed`` in summary.json and an error line (rank 0 may be blocked in a collective that would
    otherwise wait for the process group's timeout)."""

    def __init__(self, procs: list[subprocess.Popen], run_dir: Path, period_s: float = 1.0) -> None:
        super().__init__(daemon=True, name="vae-lab-rank-observer")
        self.procs, self.run_dir, self.period_s = procs, run_dir, period_s
        self.stopped = False

    def run(self) -> None:
        while True:
            time.sleep(self.period_s)
            if self.stopped:
                return
            for rank, proc in enumerate(self.procs, start=1):
                code = proc.poll()
                if code is None or code == 0:
                    continue
                if self.stopped:  # rank 0 stopped the ranks (an interrupt) meanwhile
                    return
                error = f"DDP rank {rank} exited with status {code} (its output is above)"
                for other in self.procs:
                    if other.poll() is None:
                        other.kill()
                self._record(error)
                print(f"vae-lab train: error: {error}", file=sys.stderr, flush=True)
                os._exit(1)
            if all(p.poll() == 0 for p in self.procs):
                return

    def _record(self, error: str) -> None:
        from vae_lab.runs.summary import read_summary

        try:
            summary = read_summary(self.run_dir)
            if summary is not None:
                summary.fail(error)
        except Exception:  # noqa: BLE001 - the error line is printed all the same
            pass


def _rank_task(cfg: Any) -> float:
    """The train task on a further rank. Rank 0 prints the run's outcome; this one only its own error."""
    from vae_lab.import_gc import import_without_gc

    import_without_gc("vae_lab.train")
    from vae_lab.runs.signals import Interrupted
    from vae_lab.train import train

    try:
        return train(cfg)
    except Interrupted as stop:
        sys.exit(stop.exit_code)
    except Exception as err:  # noqa: BLE001 - one line; rank 0 reports the run as failed
        print(f"vae-lab train: rank {global_rank()}: error: {type(err).__name__}: {err}", file=sys.stderr)
        sys.exit(1)


def main(argv: list[str] | None = None) -> int:
    """A further rank: :func:`vae_lab.train.train` with the overrides rank 0 passed."""
    import hydra

    from vae_lab.config import CONF_DIR

    args = list(sys.argv[1:] if argv is None else argv)
    app = hydra.main(config_path=str(CONF_DIR), config_name="train", version_base="1.3")(_rank_task)
    sys.argv = ["vae-lab train", *args]
    try:
        app()
    except SystemExit as exit_:
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else 1
    return 0


if __name__ == "__main__":
    from vae_lab.fast_exit import exit_now

    exit_now(main())  # rank 0 waits for this rank's exit: skip the interpreter's teardown of torch
