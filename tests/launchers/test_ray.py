"""hydra/launcher=ray: a sweep on a local Ray instance records its jobs as the joblib launcher does, and
a Ray job knows the CPUs Ray assigned it (its torch threads).

Ray must start here: a machine where it cannot is a failure that says why, never a skip.
"""

from __future__ import annotations

import json
import subprocess

import pytest

RAY_START_TIMEOUT_S = 300  # a local instance starts in about 8 s on 2 busy cores


def job_summaries(root) -> dict[str, dict]:
    """summary.json of each job under ``root``'s sweeps, by the job's first override."""
    summaries = {}
    for path in root.glob("outputs/multirun/*/*/*/summary.json"):
        summary = json.loads(path.read_text())
        summaries[summary["overrides"][0]] = summary
    return summaries


def test_a_two_job_ray_sweep_records_a_failed_job_as_joblib_does(cli):
    try:
        proc = cli(
            "train",
            "-m",
            "hydra/launcher=ray",
            "hydra.launcher.ray.init.address=local",  # a new instance even where `ray start` runs one
            "hydra.launcher.ray.init.num_cpus=2",
            "posterior=gaussian,dirichlet",
            "estimator=reparam",  # the Dirichlet job fails inside the job: no explicit reparameterization
            "+debug=fast",
            "test=false",
            timeout=RAY_START_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"the Ray sweep did not finish in {err.timeout:.0f} s:\n{str(err.stderr or '')[-3000:]}")
    output = proc.stdout + proc.stderr
    summaries = job_summaries(cli.cwd)
    if "Ray Launcher is launching 2 jobs" not in output or not summaries:
        pytest.fail(f"no job ran: could Ray not start here? (exit {proc.returncode}):\n{output[-3000:]}")

    assert {k: s["status"] for k, s in summaries.items()} == {
        "posterior=gaussian": "completed",
        "posterior=dirichlet": "failed",
    }, output[-3000:]
    error = summaries["posterior=dirichlet"]["error"]
    assert "estimators for the dirichlet posterior: implicit, rsvi, score" in error
    assert proc.returncode == 1
    assert "1 of 2 jobs failed" in proc.stderr.strip().splitlines()[-1]
    assert "validated against ConfigStore schema" not in output  # ray.yaml replaces the plugin's option


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray instance with 2 CPUs in this process."""
    try:
        import ray
    except ImportError as err:
        pytest.fail(f"Ray is not installed ({err}); `pip install -e '.[dev]'` installs it")
    try:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    except Exception as err:  # noqa: BLE001 - any reason Ray cannot start is the failure's message
        pytest.fail(f"Ray cannot start a local instance here: {type(err).__name__}: {err}")
    yield ray
    ray.shutdown()


def test_a_ray_job_knows_the_cpus_ray_assigned_it(local_ray):
    from vae_lab.launchers import ray_job_cpus, ray_threads

    @local_ray.remote
    def job_cpus():
        from vae_lab.launchers import ray_job_cpus, ray_threads

        return ray_job_cpus(), ray_threads(1)

    got = {n: local_ray.get(job_cpus.options(num_cpus=n).remote()) for n in (1, 2, 0.5, 0)}
    assert got == {1: (1, 1), 2: (2, 2), 0.5: (1, 1), 0: (None, 1)}
    assert (ray_job_cpus(), ray_threads(3)) == (None, 3)  # the driver is no Ray task


def test_a_ray_job_runs_as_many_torch_threads_as_cpus_ray_assigned_it(local_ray):
    @local_ray.remote(num_cpus=2)
    def job_threads():
        import torch

        from vae_lab.build import set_threads

        set_threads(1)  # the default `threads`
        return torch.get_num_threads()

    assert local_ray.get(job_threads.remote()) == 2
