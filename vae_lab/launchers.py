"""What a job needs to know about the launcher that runs it, and what a sweep on Ray needs before its
jobs start.

Hydra's Ray launcher (``hydra/launcher=ray``, ``conf/hydra/launcher/ray.yaml``) runs each job of a sweep
as a Ray task that asks for ``hydra.launcher.ray.remote.num_cpus`` CPUs. A job that then ran the
configured ``threads`` (1 by default) would leave CPUs idle that Ray keeps from other jobs, or
oversubscribe the node when it ran more; so a Ray job runs as many torch threads as the CPUs Ray
assigned to it (:func:`ray_threads`), read from Ray itself rather than from the launcher's config,
which the job's own config cannot see.

:class:`RaySweepStart` (a Hydra callback, ``conf/hydra/default.yaml``) makes a Ray sweep stoppable as a
whole, as joblib's is (:mod:`vae_lab.runs.sweep_stop`). Before Hydra's Ray launcher starts the jobs, it
starts Ray itself with what the launcher would pass, plus:

- the jobs' environment: Ray's workers are started by Ray's own processes, which did not inherit the
  sweep's main process's environment when they ran already (``ray start``, a cluster); so the variables
  of :func:`~vae_lab.runs.sweep_stop.sweep_env` reach every job through ``runtime_env.env_vars``;
- the main process's signal handlers: ``ray.init`` installs a SIGTERM handler that exits at once, which
  would leave the jobs without their checkpoints; the sweep's handlers are put back after it;
- where the jobs run: on a Ray instance whose nodes are all this machine, a signal stops every job at its
  next step with a checkpoint (status ``interrupted``) and the main process waits for them. With other
  machines the stop file cannot reach every job: the main process then stops at once, Ray ends the jobs,
  and ``resume=true`` continues them from ``last.ckpt``.
"""

from __future__ import annotations

import logging
import math
import sys
import threading
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict

RAY_LAUNCHER = "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher"
JOBLIB_LAUNCHER = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"

log = logging.getLogger("vae_lab.launchers")


def ray_job_cpus() -> int | None:
    """The CPUs Ray assigned to the task this code runs in (fractions rounded down, at least 1), or
    None outside a Ray task: Ray not imported (it never is outside a Ray worker or driver), not
    initialized, in the driver, or a task that asked for no CPU."""
    ray = sys.modules.get("ray")  # a Ray worker has imported it; nobody else needs to pay for that
    if ray is None or not ray.is_initialized():
        return None
    context = ray.get_runtime_context()
    if context.get_task_id() is None:  # the driver, not a task
        return None
    cpus = context.get_assigned_resources().get("CPU", 0)
    return max(1, math.floor(cpus)) if cpus > 0 else None


def ray_threads(threads: int) -> int:
    """The torch threads of a job: the CPUs Ray assigned to it when it runs as a Ray task, else
    ``threads`` (as computed from the config)."""
    cpus = ray_job_cpus()
    return threads if cpus is None else cpus


class RaySweepStart(Callback):
    """Hydra callback: starts Ray for a sweep with ``hydra/launcher=ray`` (the module's docstring); the
    launcher then finds it running. Does nothing with other launchers."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.hydra.launcher.get("_target_") != RAY_LAUNCHER:
            return
        import ray
        from hydra_plugins.hydra_ray_launcher._launcher_util import start_ray

        from vae_lab.runs import sweep_stop

        init = config.hydra.launcher.ray.init
        env = sweep_stop.sweep_env()
        if env and not ray.is_initialized():
            runtime_env = init.get("runtime_env")
            runtime_env = OmegaConf.to_container(runtime_env, resolve=True) if runtime_env is not None else {}
            assert isinstance(runtime_env, dict)
            runtime_env["env_vars"] = {**(runtime_env.get("env_vars") or {}), **env}
            with open_dict(init):
                init.runtime_env = runtime_env
        start_ray(init)
        sweep_stop.reclaim_signals()
        if sweep_stop.SweepStop.active is not None:
            sweep_stop.SweepStop.active.stop_at_once = not _only_this_machine(ray)


def _only_this_machine(ray: Any) -> bool:
    """Whether every live node of the Ray instance is this machine (then the stop file reaches each job)."""
    here = ray.util.get_node_ip_address()
    return all(node.get("NodeManagerAddress") == here for node in ray.nodes() if node.get("Alive"))


class JoblibWarmStart(Callback):
    """Hydra callback: with ``hydra/launcher=joblib``, start joblib's workers when the sweep starts and
    have each import what a job imports (torch, Lightning: seconds), while the main process still
    composes the sweep's config; the launcher then finds them running (joblib reuses workers started
    with the same arguments) and its jobs start at once. Does nothing with other launchers, nor where
    `vae-lab train -m` has started them already (:func:`warm_joblib_workers`, a second earlier)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        global _warm_started
        if _warm_started:  # by the CLI for this sweep
            _warm_started = False
            return
        if (settings := joblib_launcher(config)) is not None:
            warm_joblib_workers(settings)


#: set where the CLI has started the workers of the sweep that Hydra is about to run
_warm_started = False


def joblib_launcher(config: DictConfig) -> dict[str, Any] | None:
    """The settings of the joblib launcher in a composed config (with ``hydra``), or None for another."""
    launcher = config.hydra.launcher
    if launcher.get("_target_") != JOBLIB_LAUNCHER:
        return None
    settings = OmegaConf.to_container(launcher, resolve=True)
    assert isinstance(settings, dict)
    return settings


def warm_joblib_workers(settings: dict[str, Any], before_hydra: bool = False) -> None:
    """Start the joblib workers of a sweep with these launcher ``settings`` (:func:`joblib_launcher`) in a
    thread, each importing what a job imports. ``before_hydra``: called by the CLI before Hydra starts
    (after the preflight, inside the sweep's :class:`~vae_lab.runs.sweep_stop.SweepStop`, whose
    environment the workers must inherit), so :class:`JoblibWarmStart` does not start them again."""
    global _warm_started
    from hydra_plugins.hydra_joblib_launcher._core import process_joblib_cfg

    joblib_cfg = dict(settings)
    joblib_cfg.pop("_target_", None)
    joblib_cfg["backend"] = "loky"  # as the launcher's own launch() sets them
    process_joblib_cfg(joblib_cfg)
    _warm_started = before_hydra
    threading.Thread(target=_warm_workers, args=(joblib_cfg,), daemon=True).start()


def _warm_workers(joblib_cfg: dict[str, Any]) -> None:
    from joblib import Parallel, cpu_count, delayed

    n_jobs = int(joblib_cfg.get("n_jobs") or 1)
    workers = n_jobs if n_jobs > 0 else max(1, cpu_count() + 1 + n_jobs)
    try:
        Parallel(**joblib_cfg)(delayed(warm_worker)() for _ in range(workers))
    except Exception:  # noqa: BLE001 - only a head start: the jobs import what they need themselves
        log.debug("joblib workers not warmed", exc_info=True)


def warm_worker() -> None:
    """Runs in a joblib worker: the imports of a `vae-lab train` job. Lightning, imported where the root
    logger has no handler yet (Hydra sets up a job's logging later), would print its records itself and
    keep them from the job's train.log; a placeholder handler keeps them going to the root logger."""
    root, placeholder = logging.getLogger(), logging.NullHandler()
    root.addHandler(placeholder)
    try:
        from vae_lab.import_gc import import_without_gc

        import_without_gc("vae_lab.cli", "vae_lab.train")  # the task's module, and torch and Lightning
    finally:
        root.removeHandler(placeholder)


def stop_joblib_workers() -> None:
    """End the idle joblib (loky) workers of a finished sweep at once.

    Left alone, they end at the main process's exit, and it waits for them: each one's interpreter tears
    down torch and Lightning, 1.8-2.1 s in all on 2 cores (0.1 s killed). Only for a sweep whose jobs have
    all returned: a job flushes what it writes (its logs per record, the job line, loggers and checkpoints
    closed) before it returns, so nothing is lost. loky's reusable executor is private state of joblib;
    where it is missing nothing is done.
    """
    from joblib.externals.loky import reusable_executor

    executor = getattr(reusable_executor, "_executor", None)
    if executor is not None and hasattr(executor, "shutdown"):
        executor.shutdown(wait=True, kill_workers=True)
