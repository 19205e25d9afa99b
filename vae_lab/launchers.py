"""What a job needs to know about the launcher that runs it.

Hydra's Ray launcher (``hydra/launcher=ray``, ``conf/hydra/launcher/ray.yaml``) runs each job of a sweep
as a Ray task that asks for ``hydra.launcher.ray.remote.num_cpus`` CPUs. A job that then ran the
configured ``threads`` (1 by default) would leave CPUs idle that Ray keeps from other jobs, or
oversubscribe the node when it ran more; so a Ray job runs as many torch threads as the CPUs Ray
assigned to it (:func:`ray_threads`), read from Ray itself rather than from the launcher's config,
which the job's own config cannot see.
"""

from __future__ import annotations

import math
import sys


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
