"""`vae-lab`: the command-line entry point. Dispatches to subcommands; `train` is a Hydra app.

Before Hydra starts, every combination of the overrides is composed once (`_preflight`), so a typo in
a group option or key fails at once with one line that names it and what is allowed, instead of
inside a sweep or after a traceback. `resume=true` is resolved here too
(:func:`vae_lab.runs.command.resolve_resume`): Hydra's run (or sweep) directory is pointed at the run to
continue before Hydra creates a new one. What a job needs of the command line (the command that continues
it after a signal) travels in the task object (:class:`TrainTask`), not in module or class state.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import shlex
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from vae_lab.config import CONF_DIR
from vae_lab.errors import ConfigError
from vae_lab.import_gc import import_without_gc
from vae_lab.preflight import FirstConfig, hydra_revalidation_skipped, sweep_without_multirun
from vae_lab.preflight import override_values as _override_values
from vae_lab.preflight import preflight as _preflight
from vae_lab.runs.command import ContinueCommand, resolve_resume
from vae_lab.runs.console import job_line
from vae_lab.runs.locate import KEY as RESUME_KEY
from vae_lab.runs.sweep import job_statuses

log = logging.getLogger("vae_lab.cli")

COMMANDS: dict[str, str] = {
    "train": "train a VAE; Hydra overrides select data, model, posterior, prior, estimator, ... "
    "(`vae-lab train --help` lists them; -m sweeps)",
    "eval": "re-score a checkpoint, rebuilt from its own config: ELBO terms, importance-weighted NLL, "
    "perplexity (`vae-lab eval ckpt=PATH [split=test] [overrides]`)",
    "variance": "toy gradient-variance experiments: Dirichlet / von Mises estimators vs concentration, and "
    "the Gaussian score-vs-pathwise example (`vae-lab variance --help`)",
    "report": "aggregate sweeps: mean ± std over seeds per group, failed/unfinished jobs, plots "
    "(`vae-lab report DIR [DIR ...]`, `vae-lab report --help`)",
}

# Hydra's own flags; those in the first set take a value.
_FLAGS_WITH_VALUE = {
    "--cfg",
    "-c",
    "--package",
    "-p",
    "--config-path",
    "-cp",
    "--config-name",
    "-cn",
    "--config-dir",
    "-cd",
    "--experimental-rerun",
}
_INFO_FLAGS = {
    "--help",
    "-h",
    "--hydra-help",
    "--version",
    "--cfg",
    "-c",
    "--info",
    "-i",
    "--shell-completion",
    "-sc",
    "--experimental-rerun",
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [
        "usage: vae-lab <command> [args]",
        "",
        "Gradient estimators for variational autoencoders.",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {text}" for name, text in COMMANDS.items()]
    lines += [
        "",
        "Outputs go to outputs/<date>/<time>/ (sweeps: outputs/multirun/...); "
        "view them with `tensorboard --logdir outputs`.",
    ]
    return "\n".join(lines)


def run() -> NoReturn:
    """The console script `vae-lab`: :func:`main`, then the process ends without the interpreter's 1-1.4 s
    teardown of torch and Lightning (:func:`vae_lab.fast_exit.exit_now`: threads, atexit, files flushed)."""
    from vae_lab.fast_exit import exit_now

    exit_now(main())


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    command, rest = args[0], args[1:]
    if command == "train":
        return _run_train(rest)
    if command == "eval":
        return _run_eval(rest)
    if command == "variance":
        return _run_variance(rest)
    if command == "report":
        from vae_lab.report import main as report_main

        return report_main(rest)
    print(
        f"vae-lab: error: unknown command {command!r}; choose one of: {', '.join(COMMANDS)}", file=sys.stderr
    )
    return 2


# -- train ---------------------------------------------------------------------------------------
def _split_flags(args: list[str]) -> tuple[list[str], list[str]]:
    flags, overrides, i = [], [], 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("-"):
            flags.append(arg)
            if arg in _FLAGS_WITH_VALUE and i + 1 < len(args):
                flags.append(args[i + 1])
                i += 1
        else:
            overrides.append(arg)
        i += 1
    return flags, overrides


def _run_train(args: list[str]) -> int:
    flags, overrides = _split_flags(args)
    multirun = "-m" in flags or "--multirun" in flags
    hydra_args = [*flags, *overrides]  # flags first: argparse takes the overrides as one run of positionals
    checked = not _INFO_FLAGS.intersection(flags)  # every job's config passes the preflight first
    joblib: list[dict[str, Any]] = []  # a sweep's joblib settings, to start its workers early
    first = FirstConfig(then=(lambda cfg: _joblib_settings(cfg, joblib)) if multirun else None)
    if checked:
        error = _preflight(overrides, first=first) or sweep_without_multirun("train", flags, overrides, first)
        if error:
            print(f"vae-lab train: error: {error}", file=sys.stderr)
            return 2
        try:
            resumed = resolve_resume(overrides, multirun)
        except ConfigError as err:
            print(f"vae-lab train: error: {err}", file=sys.stderr)
            return 2
        if resumed.completed:
            print(f"vae-lab train: {resumed.completed}")
            return 0
        if resumed.notice:
            print(f"vae-lab train: {resumed.notice}", flush=True)
        if any(not o.startswith("hydra") for o in resumed.args):  # the run's own overrides, taken over
            error = _preflight([*overrides, *resumed.args])
            if error:
                print(f"vae-lab train: error: {RESUME_KEY}: {error}", file=sys.stderr)
                return 2
        hydra_args = [*flags, *overrides, *resumed.args]
        if any("hydra.mode" in arg for arg in resumed.args):
            first.forget()
    task = TrainTask(ContinueCommand(tuple(args), tuple(overrides), multirun))
    known = first.known(flags, overrides)  # the preflight composed the config: Hydra need not again
    try:
        if multirun:
            with known, hydra_revalidation_skipped() if checked else contextlib.nullcontext():
                return _run_sweep(task, ["vae-lab train", *hydra_args], joblib[0] if joblib else None)
        # a sweep with failed jobs ends with SystemExit(1) from vae_lab.runs.sweep.SweepStatus
        with known:
            return _invoke_hydra(task, ["vae-lab train", *hydra_args])
    except KeyboardInterrupt:  # Ctrl-C before a job had its own handlers (torch still importing)
        print("vae-lab train: interrupted while starting a job", file=sys.stderr)
        return 128 + signal.SIGINT


def _joblib_settings(cfg: DictConfig, found: list[dict[str, Any]]) -> None:
    from vae_lab.launchers import joblib_launcher

    if (settings := joblib_launcher(cfg)) is not None:
        found.append(settings)


def _run_sweep(task: TrainTask, argv: list[str], joblib: dict[str, Any] | None = None) -> int:
    """A sweep that SIGINT or SIGTERM stops as a whole, also with jobs in other processes
    (:mod:`vae_lab.runs.sweep_stop`): the main process waits for every job to stop with a checkpoint,
    then prints one line with the command that continues the sweep. ``joblib``: the settings of its
    joblib launcher, whose workers start importing before Hydra starts (a second earlier than Hydra's
    multirun callback would start them)."""
    from vae_lab.runs import sweep_stop

    with sweep_stop.SweepStop() as stop:
        if joblib is not None:  # inside SweepStop: the workers inherit its environment
            from vae_lab.launchers import warm_joblib_workers

            warm_joblib_workers(joblib, before_hydra=True)
        code = _invoke_hydra(task, argv)
        if joblib is not None:  # every job has returned: its idle workers need not tear down torch
            from vae_lab.launchers import stop_joblib_workers

            stop_joblib_workers()
        signum, sweep_dir = stop.received, sweep_stop.stopped_sweep_dir()
    if signum is None or sweep_dir is None:  # no stop, or jobs in this process, which reported it
        return code
    statuses = list(job_statuses(sweep_dir).values())
    counts = ", ".join(f"{statuses.count(s)} {s}" for s in dict.fromkeys(sorted(statuses)))
    command = " ".join(shlex.quote(a) for a in task.continue_command.for_sweep(sweep_dir))
    name = signal.Signals(signum).name
    print(
        f"vae-lab train: sweep stopped by {name} ({counts or 'no job started'}); continue with: {command}",
        file=sys.stderr,
        flush=True,
    )
    return 128 + signum


def _invoke_hydra(task: Callable[[DictConfig], Any], argv: list[str], config_name: str = "train") -> int:
    import hydra

    app = hydra.main(config_path=str(CONF_DIR), config_name=config_name, version_base="1.3")(task)
    saved = sys.argv
    sys.argv = argv
    try:
        app()
    except SystemExit as exit_:
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else 1
    finally:
        sys.argv = saved
    return 0


@dataclass(frozen=True)
class TrainTask:
    """The Hydra task of `vae-lab train`: :func:`vae_lab.train.train`, its failures as one line and an
    exit status. ``continue_command`` is the command that continues a job stopped by a signal. A module-
    level class, so that launchers that run jobs in other processes (joblib, submitit) can pickle it."""

    continue_command: ContinueCommand

    def __call__(self, cfg: DictConfig) -> float:
        from vae_lab.runs import sweep_stop

        if HydraConfig.get().mode == RunMode.MULTIRUN and sweep_stop.in_worker():
            return _sweep_job(self, cfg)
        return self.run(cfg)

    def run(self, cfg: DictConfig) -> float:
        import_without_gc("vae_lab.train")  # torch and Lightning: 0.5 s less without the collector
        from vae_lab.runs import sweep_stop
        from vae_lab.runs.signals import Interrupted
        from vae_lab.train import train

        multirun = HydraConfig.get().mode == RunMode.MULTIRUN
        try:
            if multirun:  # one line per job (job_line) instead of train's own
                with contextlib.redirect_stdout(io.StringIO()) as printed:
                    best = train(cfg)
                text = printed.getvalue().strip()
                log.info(text)
                skipped = "completed already" in text  # resume=true: that line says it all
                print(text if skipped else job_line(Path(cfg.paths.output_dir)), flush=True)
                return best
            return train(cfg)
        except Interrupted as stop:  # a sweep stops too: the signal was meant for all of it
            if multirun and sweep_stop.in_worker():
                raise  # _sweep_job reports it
            command = self.continue_command.for_run(stop.run_dir) if multirun or not stop.completed else None
            print(f"vae-lab train: {stop.message(command)}", file=sys.stderr)
            sys.exit(stop.exit_code)
        except Exception as err:  # noqa: BLE001 - reported as one line; the traceback is in train.log
            if multirun:  # the sweep goes on; SweepStatus counts the failure
                print(job_line(Path(cfg.paths.output_dir)), file=sys.stderr, flush=True)
                return math.nan
            where = Path(cfg.paths.output_dir) / "train.log"
            if isinstance(err, ConfigError):
                print(f"vae-lab train: error: {err}", file=sys.stderr)
                sys.exit(2)
            text = f"{type(err).__name__}: {err} (traceback in {where})"
            print(f"vae-lab train: error: {text}", file=sys.stderr)
            sys.exit(1)


def _sweep_job(task: TrainTask, cfg: DictConfig) -> float:
    """A job of a sweep in a worker process (joblib, submitit_local, Ray): it stops when the sweep is
    stopped or its main process dies (:mod:`vae_lab.runs.sweep_stop`), and an interrupted job returns
    to the launcher (NaN) after its line, so that the main process can wait for every job."""
    from vae_lab.runs import sweep_stop
    from vae_lab.runs.signals import Interrupted

    if sweep_stop.stop_requested() is not None:  # left for resume=true, which starts it afresh
        print(
            f"vae-lab train: job {HydraConfig.get().job.num} not started: the sweep is stopping", flush=True
        )
        return math.nan
    with sweep_stop.JobWatch() as watch:
        try:
            return task.run(cfg)
        except Interrupted as stop:
            sweep_stop.request_stop(stop.signum)
            print(job_line(stop.run_dir), file=sys.stderr, flush=True)
            if watch.orphaned:  # nobody to return to; the launcher's worker would linger
                logging.shutdown()
                os._exit(stop.exit_code)
            return math.nan


# -- eval ----------------------------------------------------------------------------------------
def _run_eval(args: list[str]) -> int:
    """`vae-lab eval`: check ckpt and split, put the checkpoint's config in Hydra's config store (the
    option ``run: checkpoint`` of conf/eval.yaml), then run the eval task. Bad input fails with one line
    before Hydra creates a directory."""
    from hydra.core.config_store import ConfigStore

    from vae_lab.checkpoint import read_config
    from vae_lab.eval import NOT_USED, SPLITS

    flags, overrides = _split_flags(args)
    info = bool(_INFO_FLAGS.intersection(flags))
    ckpts = _override_values(overrides, "ckpt")
    error = None
    if len(ckpts) > 1:
        error = f"ckpt: one checkpoint per command, got {', '.join(map(str, ckpts))}"
    elif not ckpts and not info:
        error = "ckpt=PATH is required: the checkpoint to score, e.g. ckpt=<run dir>/checkpoints/best.ckpt"
    elif ckpts:
        try:
            config = read_config(str(ckpts[0]))
        except ConfigError as err:
            error = str(err)
        else:
            node = {k: v for k, v in config.items() if k not in NOT_USED}
            ConfigStore.instance().store(group="run", name="checkpoint", node=node, package="_global_")
    first = FirstConfig()
    if error is None and not info:
        error = _preflight(overrides, config_name="eval", first=first)
        error = error or sweep_without_multirun("eval", flags, overrides, first)
        unknown = [s for s in _override_values(overrides, "split") if s not in SPLITS]
        if error is None and unknown:
            error = f"split={unknown[0]}: unknown split; choose one of: {', '.join(SPLITS)}"
        not_bool = [v for v in _override_values(overrides, "per_example") if not isinstance(v, bool)]
        if error is None and not_bool:
            error = f"per_example={not_bool[0]}: expected true or false"
    if error:
        print(f"vae-lab eval: error: {error}", file=sys.stderr)
        return 2
    with first.known(flags, overrides, "eval"):
        return _invoke_hydra(_eval_task, ["vae-lab eval", *flags, *overrides], config_name="eval")


def _eval_task(cfg: DictConfig) -> dict[str, Any]:
    from vae_lab.eval import evaluate

    import_without_gc("pytorch_lightning", "vae_lab.build")

    try:
        return evaluate(cfg)
    except ConfigError as err:
        print(f"vae-lab eval: error: {err}", file=sys.stderr)
        sys.exit(2)
    except Exception as err:  # noqa: BLE001 - reported as one line; the traceback is in eval.log
        log.info("eval failed", exc_info=True)
        where = Path(cfg.paths.output_dir) / "eval.log"
        print(f"vae-lab eval: error: {type(err).__name__}: {err} (traceback in {where})", file=sys.stderr)
        sys.exit(1)


# -- variance ------------------------------------------------------------------------------------
def _run_variance(args: list[str]) -> int:
    import_without_gc("vae_lab.variance")
    from vae_lab.variance import task

    flags, overrides = _split_flags(args)
    first = FirstConfig()
    if not _INFO_FLAGS.intersection(flags):
        error = _preflight(overrides, config_name="variance", first=first)
        error = error or sweep_without_multirun("variance", flags, overrides, first)
        if error:
            print(f"vae-lab variance: error: {error}", file=sys.stderr)
            return 2
    with first.known(flags, overrides, "variance"):
        return _invoke_hydra(task, ["vae-lab variance", *args], config_name="variance")


if __name__ == "__main__":  # pragma: no cover
    run()
